"""The README picture script works on a run (the TensorBoard screenshot needs chromium: skipped)."""

import os
import subprocess
import sys

import pytest
import tensorflow as tf

pytestmark = pytest.mark.slow  # trains and renders the README pictures

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_readme_images_from_a_run(trained_smoke_run, tmp_path):
    run = trained_smoke_run
    out = tmp_path / "images"
    result = subprocess.run(
        [sys.executable, "scripts/readme_images.py", "--run", run, "--out", str(out), "--no_screenshot"]
        + ["--steps", "8"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    strip = tf.io.decode_png(tf.io.read_file(str(out / "reconstructions.png"))).numpy()
    assert strip.shape == (2 * 96 + 2, 4 * 96 + 3 * 2, 3)  # two probes in the smoke config
    for name in ("top9_conv2.png", "top9_conv3.png"):
        assert tf.io.decode_png(tf.io.read_file(str(out / name))).numpy().std() > 5
    for name in ("optimized_conv1_fourier.png", "optimized_conv2_fourier.png", "optimized_conv2_pixel.png"):
        grid = tf.io.decode_png(tf.io.read_file(str(out / name))).numpy()
        assert grid.shape == (4 * 72 + 3 * 2, 16 * 72 + 15 * 2, 3) and grid.std() > 5, name  # 64 maps of 24 px
