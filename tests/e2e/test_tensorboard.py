"""A real TensorBoard server over a short run shows the reconstruction images at the expected steps."""

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import pytest
import tensorflow as tf

pytestmark = pytest.mark.slow  # a TensorBoard server


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        return response.read()


def test_tensorboard_serves_reconstructions_at_each_summary_step(trained_smoke_run, tmp_path):
    logdir = tmp_path / "logs"
    shutil.copytree(trained_smoke_run, logdir / "smoke")
    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tensorboard.main",
            "--logdir",
            str(logdir),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--load_fast=false",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        tags = {}
        for _ in range(120):  # TensorBoard reads the logs in the background after it starts
            try:
                tags = json.loads(_get(port, "/data/plugin/images/tags"))
                if "reconstructions" in tags.get("smoke/train", {}):
                    break
            except OSError:
                pass
            time.sleep(0.5)
        run_tags = tags["smoke/train"]
        assert {"reconstructions", "top_features/conv1", "top_features/conv2", "top_features/conv3"} <= set(run_tags)
        assert "original | conv1 | conv2 | conv3" in run_tags["reconstructions"]["description"]
        query = urllib.parse.urlencode({"run": "smoke/train", "tag": "reconstructions", "sample": 1})
        entries = json.loads(_get(port, f"/data/plugin/images/images?{query}"))
        assert [entry["step"] for entry in entries] == [0, 3, 6]
        blob = _get(port, f"/data/plugin/images/individualImage?{entries[-1]['query']}")
        assert blob[:8] == b"\x89PNG\r\n\x1a\n"
        image = tf.io.decode_png(blob).numpy()
        panel = 24 * 4
        assert image.shape == (panel, 4 * panel + 3 * 2, 3)
        assert image.std() > 10  # not a flat picture
    finally:
        server.terminate()
        server.wait(timeout=30)
