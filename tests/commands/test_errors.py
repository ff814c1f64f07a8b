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


def test_a_users_error_is_one_line_on_standard_error_without_tensorflows_start_up_chatter(tmp_path):
    # TensorFlow 2.21 writes absl's banner and INFO lines at import whatever TF_CPP_MIN_LOG_LEVEL says, and on
    # a machine without an NVIDIA driver "failed call to cuInit" when it looks for devices
    import os
    import subprocess
    import sys

    from tests.support.builders import ROOT

    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    missing = str(tmp_path / "nowhere")
    for command, program in (([os.path.join(ROOT, "train.py"), "--data_dir", missing], "train.py"),
                             (["-m", "vizdeconv", "explore", "--run", missing], "vizdeconv explore")):  # fmt: skip
        result = subprocess.run([sys.executable, *command], capture_output=True, text=True, env=env, cwd=ROOT,
                                timeout=300)  # fmt: skip
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith(f"{program}: error:"), result.stderr
    # level 0 asks for everything: TensorFlow's own lines pass
    result = subprocess.run([sys.executable, os.path.join(ROOT, "train.py"), "--data_dir", missing], env=dict(
        env, TF_CPP_MIN_LOG_LEVEL="0"), capture_output=True, text=True, cwd=ROOT, timeout=300)  # fmt: skip
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) > 1


def test_only_the_early_absl_lines_and_a_driverless_cuinit_are_left_out():
    assert cli.ABSL_EARLY_NOISE.match("WARNING: All log messages before absl::InitializeLog() is called are written")
    assert cli.ABSL_EARLY_NOISE.match("I0000 00:00:1796424231.136716    9313 port.cc:153] oneDNN custom operations")
    for kept in ("W0000 00:00:1.2  1 gpu_device.cc:2] Cannot dlopen some GPU libraries.",
                 "E0000 00:00:1.2  1 cuda_dnn.cc:5] Loaded runtime CuDNN library: 8.1.0 but source was compiled",
                 "UserWarning: something", "Illegal instruction"):  # fmt: skip
        assert not cli.ABSL_EARLY_NOISE.match(kept)


def test_an_out_folder_with_a_file_in_the_way_is_one_line_and_the_file_is_kept(cifar_session, tmp_path):
    layers = keras.layers
    model = keras.Sequential([keras.Input((32, 32, 3)), layers.Conv2D(4, 3, activation="relu", name="c1"),
                              layers.GlobalAveragePooling2D(), layers.Dense(10)])  # fmt: skip
    model.save(tmp_path / "m.keras")
    blocker = tmp_path / "taken"
    blocker.write_text("mine")
    image = tmp_path / "cat.png"
    tf.io.write_file(str(image), tf.io.encode_png(tf.zeros((32, 32, 3), tf.uint8)))
    common = ["--model", str(tmp_path / "m.keras")]
    for name, args, what in (
        ("explore", [*common, "--data_dir", cifar_session, "--layer", "c1", "--out", str(blocker)], "explorer output"),
        ("analyze", ["attribute", *common, "--images", str(image), "--out", str(blocker)], "output"),
        ("analyze", ["occlusion", *common, "--data_dir", cifar_session, "--out", str(blocker / "sub")], "output"),
    ):
        code, _, stderr = in_process(name, *args)
        lines = stderr.strip().splitlines()
        assert code == 2 and len(lines) == 1, stderr
        assert f"cannot create {what} folder {blocker}" in lines[0] and "pass another --out" in lines[0], lines[0]
    assert blocker.read_text() == "mine"


def test_tensorflow_is_imported_uncaptured_on_a_cpu_without_avx(monkeypatch, capsys):
    # TensorFlow's binaries need AVX and abort at import without it, after saying so on standard error
    from vizdeconv.hardware import cpu

    captured = []
    monkeypatch.setattr(cli, "import_tensorflow_quietly", lambda: captured.append(True))
    monkeypatch.setattr(cpu, "configure_onednn", lambda choice: None)  # TensorFlow is imported here already
    for flags, expected in (({"sse4_2", "avx", "avx2"}, [True]), ({"sse4_2"}, [])):
        captured.clear()
        monkeypatch.setattr(cpu, "cpu_flags", lambda flags=flags: flags)
        code = cli.run_command("shapes", ["--input", "8", "--kernel", "3", "--stride", "1"], "shapes")
        assert code == 0, capsys.readouterr().err
        assert captured == expected, flags


def test_the_start_up_capture_passes_on_tensorflows_other_lines_also_when_its_import_fails(tmp_path):
    import os
    import subprocess
    import sys

    from tests.support.builders import ROOT

    fake = tmp_path / "tensorflow"
    fake.mkdir()
    (fake / "__init__.py").write_text(
        "import os\n"
        "os.write(2, b'WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\\n')\n"
        "os.write(2, b'I0000 00:00:1.5   7 port.cc:153] oneDNN custom operations are on.\\n')\n"
        "os.write(2, b'E0000 00:00:1.5   7 loader.cc:9] libfoo.so: cannot open shared object file\\n')\n"
        "raise ImportError('the fake TensorFlow is broken')\n"
    )
    code = "from vizdeconv import cli; cli.import_tensorflow_quietly()"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), ROOT]))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 1 and "ImportError: the fake TensorFlow is broken" in result.stderr
    assert "libfoo.so: cannot open shared object file" in result.stderr
    assert "absl::InitializeLog" not in result.stderr and "oneDNN custom operations" not in result.stderr
