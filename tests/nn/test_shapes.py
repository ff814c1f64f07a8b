"""Shape arithmetic against brute force over TensorFlow, and the documented examples."""

import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from vizdeconv.nn import ops, shapes


def test_documented_examples():
    assert list(shapes.transpose_output_sizes(126, 4, 2, "VALID")) == [254, 255]
    assert list(shapes.transpose_output_sizes(126, 4, 2, "SAME")) == [251, 252]
    with pytest.raises(ValueError, match="SAME to 255 needs an input of 128"):
        shapes.check_transpose_output(126, 255, 4, 2, "SAME")
    shapes.check_transpose_output(126, 255, 4, 2, "VALID")


@pytest.mark.parametrize("padding", ["SAME", "VALID"])
@pytest.mark.parametrize("kernel, stride, dilation", [(3, 1, 1), (4, 2, 1), (3, 3, 1), (3, 1, 2), (2, 2, 3), (5, 2, 2)])
def test_forward_and_transpose_sizes_match_tensorflow(padding, kernel, stride, dilation):
    column = tf.ones([kernel, 1, 1, 1])  # one spatial dimension is enough
    for size in range(1, 14):
        span = shapes.effective_kernel(kernel, dilation)
        if padding == "VALID" and size < span:
            with pytest.raises(ValueError, match="impossible"):
                shapes.conv_output_size(size, kernel, stride, padding, dilation)
            continue
        expected = tf.nn.conv2d(tf.ones([1, size, 1, 1]), column, [stride, 1], padding, dilations=[dilation, 1]).shape[
            1
        ]
        assert shapes.conv_output_size(size, kernel, stride, padding, dilation) == expected
    for size in range(1, 6):
        legal = set(shapes.transpose_output_sizes(size, kernel, stride, padding, dilation))
        brute = {
            m
            for m in range(1, 40)
            if m >= (span if padding == "VALID" else 1)
            and shapes.conv_output_size(m, kernel, stride, padding, dilation) == size
        }
        assert legal == brute and len(legal) == stride
        for m in legal:  # the checked op (TensorFlow underneath) accepts every legal size ...
            y = ops.conv2d_transpose(
                tf.ones([1, size, size, 1]), tf.ones([kernel, kernel, 1, 1]), [1, m, m, 1], stride, padding, dilation
            )
            assert y.shape[1:3] == (m, m) and np.isfinite(y.numpy()).all()


def test_command_line_prints_legal_sizes_and_errors_in_one_line():
    ok = subprocess.run(
        [
            sys.executable,
            "-m",
            "vizdeconv.shapes",
            "--input",
            "126",
            "--kernel",
            "4",
            "--stride",
            "2",
            "--padding",
            "VALID",
        ],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0 and "254, 255" in ok.stdout and "forward from 126: 62" in ok.stdout
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "vizdeconv.shapes",
            "--input",
            "126",
            "--kernel",
            "4",
            "--stride",
            "2",
            "--padding",
            "SAME",
            "--output",
            "255",
        ],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1 and "needs an input of 128" in bad.stderr


def test_the_vizdeconv_console_command_lists_and_dispatches_its_subcommands():
    import shutil

    program = shutil.which("vizdeconv")
    assert program, "pip install -e . installs the vizdeconv console command"
    listing = subprocess.run([program, "--help"], capture_output=True, text=True)
    assert listing.returncode == 0
    assert [line.split()[0] for line in listing.stdout.splitlines()[3:]] == [
        "train", "explore", "analyze", "export", "bench", "shapes"]  # fmt: skip
    ok = subprocess.run([program, "shapes", "--input", "126", "--kernel", "4", "--stride", "2", "--padding", "VALID"],
                        capture_output=True, text=True)  # fmt: skip
    assert ok.returncode == 0 and "254, 255" in ok.stdout
    bad = subprocess.run([program, "shapes", "--input", "126", "--kernel", "4", "--stride", "2", "--output", "255"],
                         capture_output=True, text=True)  # fmt: skip
    assert bad.returncode == 2 and bad.stderr.startswith("vizdeconv shapes: error: conv2d_transpose cannot produce")
    unknown = subprocess.run([program, "nope"], capture_output=True, text=True)
    assert unknown.returncode == 2 and "unknown command 'nope'" in unknown.stderr


def test_every_subcommand_has_help():
    from tests.support.commands import in_process
    from vizdeconv import cli

    for name in cli.COMMANDS:
        code, out, _ = in_process(name, "--help")
        assert code == 0 and ("usage:" in out or "--steps" in out), name
