"""The feature explorer end to end on a short run over synthetic data."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tests.support.commands import in_process
from vizdeconv import explore
from vizdeconv.analyze import explorer_sanity
from vizdeconv.data import cifar10
from vizdeconv.nn import preprocess
from vizdeconv.runs.subject import open_subject


@pytest.fixture
def smoke_run(trained_smoke_run):
    return trained_smoke_run


@pytest.mark.slow
def test_explorer_writes_grids_index_and_summaries(smoke_run, cifar_session):
    lines = []
    options = explore.ExploreOptions(run=smoke_run, layers=["conv2", "conv3"], top_k=4, batch_size=16, compare=True)
    report = explore.explore(options, log=lines.append, after_scan=explorer_sanity("test", log=lines.append))
    out = report["out"]
    assert out == os.path.join(smoke_run, "explore", "test") and report["images"] == 64
    index = json.load(open(os.path.join(out, "index.json")))
    assert sorted(index["layers"]) == ["conv2", "conv3"] and len(index["layers"]["conv2"]) == 64
    entry = index["layers"]["conv3"]["7"]
    assert len(entry["image_ids"]) == 4 and entry["values"] == sorted(entry["values"], reverse=True)
    # The recorded value is what the trained network gives at that image, channel and location.
    model = open_subject(run=smoke_run, log=lambda *_: None, need_data=False).model
    images, labels = cifar10.load_binary(cifar_session, "test")
    activations = model.graph().forward(preprocess.preprocess_eval(images[entry["image_ids"]]))["conv3"].numpy()
    for i, (row, col) in enumerate(entry["locations"]):
        np.testing.assert_allclose(activations[i, row, col, 7], entry["values"][i], rtol=1e-5, atol=1e-6)
        assert activations[i, :, :, 7].max() == pytest.approx(entry["values"][i], rel=1e-5, abs=1e-6)
    assert entry["labels"] == labels[entry["image_ids"]].tolist()
    for name in ("conv2/channel_000.png", "conv3_overview.png", "compare_conv3.png"):
        picture = tf.io.decode_png(tf.io.read_file(os.path.join(out, name))).numpy()
        assert picture.ndim == 3 and picture.std() > 5, name
    assert set(report["sanity"]) == {"conv2", "conv3"}
    for layer in ("conv2", "conv3"):  # the cascade: trained, then conv3, conv2, conv1 redrawn
        figures = report["sanity"][layer]
        assert figures["stages"] == ["trained", "conv3", "conv2", "conv1"]
        assert figures["spearman"][0] == pytest.approx(1.0) and figures["ssim"][0] == pytest.approx(1.0)
    assert report["sanity"]["conv2"]["spearman"][1] == pytest.approx(1.0)  # conv3 sits above conv2
    assert any(line.startswith("sanity conv3: spearman") for line in lines)
    tags = set()
    for file in tf.io.gfile.glob(os.path.join(smoke_run, "explore", "events.*")):
        for event in tf.compat.v1.train.summary_iterator(file):
            tags |= {value.tag for value in event.summary.value}
    assert {"explore/test/conv2", "explore/test/conv3"} <= tags


@pytest.mark.slow
def test_explore_command_line_and_its_errors(smoke_run, tmp_path):
    def run(*args):
        return subprocess.run(
            [sys.executable, "-m", "vizdeconv.explore", *args], capture_output=True, text=True, timeout=300
        )

    ok = run("--run", smoke_run, "--layer", "conv1", "--layer", "conv2", "--limit", "20", "--top_k", "3",
             "--out", str(tmp_path / "out"))  # fmt: skip
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert "scan" in ok.stderr and os.path.isfile(tmp_path / "out" / "conv1" / "channel_063.png")
    assert "project: 100%" in ok.stderr and "2/2" in ok.stderr  # the second pass's progress, layer by layer
    for args, message in [
        (["--run", str(tmp_path / "none")], "does not exist"),
        (["--run", smoke_run, "--layer", "conv7"], "unknown layer 'conv7'"),
        (["--run", smoke_run, "--limit", "2"], "fewer than --top_k"),
        (["--run", smoke_run, "--data_dir", str(tmp_path)], "holds neither"),
    ]:
        code, _, err = in_process("explore", *args)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    bad = run("--run", smoke_run, "--layer", "conv7")  # the real `python -m` path says it the same way
    assert bad.returncode == 2 and "vizdeconv.explore: error: unknown layer 'conv7'" in bad.stderr
    assert "Traceback" not in bad.stderr


@pytest.mark.slow
def test_explorer_shows_an_optimized_image_beside_each_top_k(smoke_run, tmp_path):
    out = str(tmp_path / "out")
    code, stdout, err = in_process(
        "explore", "--run", smoke_run, "--layer", "conv3", "--top_k", "4", "--optimize", "--method", "pixel",
        "--steps", "8", "--out", out,
    )  # fmt: skip
    assert code == 0, err
    stored = np.load(os.path.join(out, "conv3", "optimized.npz"))
    images, activations = stored["images"], stored["activations"]
    assert images.shape == (10, 24, 24, 3) and images.dtype == np.uint8 and str(stored["method"]) == "pixel"
    assert images.std() > 5  # not a flat grey
    # Each recorded activation is what the network gives on the image (read back as 8-bit pixels).
    model = open_subject(run=smoke_run, log=lambda *_: None, need_data=False).model
    maps = model.graph().forward(preprocess.preprocess_eval(images))["conv3"].numpy()
    np.testing.assert_allclose(maps.max(axis=(1, 2))[np.arange(10), np.arange(10)], activations, rtol=0.05, atol=1e-3)
    index = json.load(open(os.path.join(out, "index.json")))
    top1 = np.array([index["layers"]["conv3"][str(c)]["values"][0] for c in range(10)])
    figures = index["report"]["optimize"]["layers"]["conv3"]
    assert figures["exceeds"] == int(np.sum(activations > top1)) and figures["channels"] == 10
    assert figures["median_ratio"] == pytest.approx(float(np.median(activations / top1)), rel=1e-3)
    assert f"conv3: the optimized image beats the top-1 activation on {figures['exceeds']}/10" in stdout
    # The channel's page: projections | patches | its optimized image, enlarged and centred.
    page = tf.io.decode_png(tf.io.read_file(os.path.join(out, "conv3", "channel_004.png"))).numpy()
    factor = page.shape[0] // 24
    big = images[4].repeat(factor, 0).repeat(factor, 1)
    top, left = (page.shape[0] - big.shape[0]) // 2, page.shape[1] - 3 * 2 - big.shape[1]
    assert np.array_equal(page[top : top + big.shape[0], left : left + big.shape[1]], big)
    code, _, err = in_process("explore", "--run", smoke_run, "--optimize", "--steps", "0")
    assert code == 2 and "--steps must be positive" in err and len(err.strip().splitlines()) == 1


def test_channel_tiles_of_large_fields_are_shrunk_to_bytes_for_overviews_and_summaries():
    from vizdeconv.explore.render import TILE_LIMIT, _thumbnail

    rng = np.random.default_rng(0)
    small, tall = rng.uniform(0, 1, (200, 410, 3)), rng.uniform(0, 1, (3 * TILE_LIMIT + 5, 900, 3))
    assert np.array_equal(_thumbnail(small), np.round(small * 255).astype(np.uint8))  # fits: only to bytes
    shrunk = _thumbnail(tall)  # every 4th pixel: the smallest step that fits
    assert shrunk.dtype == np.uint8 and shrunk.shape == (TILE_LIMIT * 3 // 4 + 2, 225, 3)
    assert np.array_equal(shrunk, np.round(tall[::4, ::4] * 255).astype(np.uint8))


@pytest.mark.slow
def test_wide_layers_keep_their_tiles_within_the_byte_budget_in_batches_of_any_size(smoke_run, tmp_path, monkeypatch):
    from vizdeconv.explore import render

    def tiles(out):
        options = explore.ExploreOptions(run=smoke_run, layers=["conv3"], top_k=4, batch_size=32, out=str(out))
        explore.explore(options, log=lambda *_: None)
        with np.load(os.path.join(out, "conv3", "top.npz")) as top:
            return top["projections"], top["patches"], json.load(open(os.path.join(out, "index.json")))

    projections, patches, index = tiles(tmp_path / "whole")
    channels, k, side = projections.shape[:3]
    assert side == 32  # conv3's field (hand arithmetic in test_plugin): within any budget at the default
    # A budget of 16x16 tiles for this layer, and no floor: every 2x2 block becomes one pixel.
    monkeypatch.setattr(render, "SMALLEST_TILE", 1)
    monkeypatch.setattr(render, "LAYER_TILE_BYTES", 2 * 3 * channels * k * 16 * 16)
    small_projections, small_patches, small_index = tiles(tmp_path / "shrunk")
    assert small_projections.shape == small_patches.shape == (channels, k, 16, 16, 3)
    assert small_index["layers"] == index["layers"]  # the same winners, locations and boxes
    for whole, small in ((projections, small_projections), (patches, small_patches)):
        means = whole.astype(np.float64).reshape(channels, k, 16, 2, 16, 2, 3).mean((3, 5))
        assert np.abs(means - small).max() <= 1.0  # the mean of each block (bytes rounded twice)
    assert small_patches.std() > 5
    monkeypatch.undo()  # one unit projected at a time: the same tiles
    monkeypatch.setattr(render, "RENDER_PIXELS", 1)
    one_projections, one_patches, _ = tiles(tmp_path / "one_by_one")
    # the same tiles, to a byte of rounding (oneDNN on AVX2 rounds batches of other sizes differently)
    assert np.abs(one_projections.astype(int) - projections).max() <= 1 and np.array_equal(one_patches, patches)
    picture = tf.io.decode_png(tf.io.read_file(os.path.join(tmp_path / "shrunk", "conv3", "channel_000.png"))).numpy()
    assert picture.std() > 5
