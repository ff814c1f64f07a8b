"""A mistake a user makes answers one line, also when TensorFlow raised it inside a traced function."""

import keras
import tensorflow as tf

from tests.support.commands import in_process
from vizdeconv import cli


def test_an_error_raised_inside_a_tf_data_map_is_reported_by_its_own_last_line():
    def check(x):
        raise ValueError("images are 32x32, smaller than the model's input 64x64: give larger images")

    try:
        tf.data.Dataset.range(2).map(check)  # traced by autograph, as the explorer's preprocessing is
    except Exception as error:  # noqa: BLE001  (what TensorFlow wraps it in)
        raised = error
    else:
        raise AssertionError("the map did not raise")
    assert "in user code:" in str(raised)  # TensorFlow's trace, which the user must not see
    assert cli.reason(raised) == "images are 32x32, smaller than the model's input 64x64: give larger images"
    assert cli.reason(ValueError("a\n  plain   one")) == "a plain one"


def test_a_model_larger_than_the_data_is_one_line_naming_the_fix(cifar_session, tmp_path):
    layers = keras.layers
    model = keras.Sequential([keras.Input((64, 64, 3)), layers.Conv2D(4, 3, activation="relu", name="c1"),
                              layers.GlobalAveragePooling2D(), layers.Dense(10)])  # fmt: skip
    model.save(tmp_path / "big.keras")
    code, _, stderr = in_process("explore", "--model", str(tmp_path / "big.keras"), "--data_dir", cifar_session,
                                 "--out", str(tmp_path / "out"))  # fmt: skip
    lines = stderr.strip().splitlines()
    assert code == 2 and len(lines) == 1, stderr
    assert lines[0].startswith("vizdeconv explore: error: images are 32x32, smaller than the model's input 64x64")
    assert "applications:NAME:SIZE" in lines[0] and "in user code" not in lines[0] and "File " not in lines[0]
