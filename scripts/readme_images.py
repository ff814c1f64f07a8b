"""Makes the README's pictures from a real run: a reconstruction strip, top-9 grids beside the image
optimized for the same feature map, grids of optimized images (Fourier and pixel methods), a TensorBoard shot.

  python scripts/readme_images.py --run logs/fast [--out docs/images] [--no_screenshot] [--steps 256]

The screenshot needs Debian's `chromium` (apt-get install chromium); the other pictures need nothing
beyond the project's own dependencies.
"""

import argparse
import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import numpy as np
import tensorflow as tf

from vizdeconv import cli, explore
from vizdeconv.viz import pictures
from vizdeconv.viz.pictures import write_png


def latest_images(run: str, tag: str) -> tuple[int, list[np.ndarray]]:
    """(step, decoded PNGs) of the newest `tag` image summary in `<run>/train`."""
    best = (-1, [])
    for file in sorted(glob.glob(os.path.join(run, "train", "events.*"))):
        for record in tf.data.TFRecordDataset(file):
            event = tf.compat.v1.Event.FromString(record.numpy())
            for value in event.summary.value:
                if value.tag == tag and event.step >= best[0]:
                    blobs = tf.make_ndarray(value.tensor)[2:]
                    best = (event.step, [tf.io.decode_png(blob).numpy() for blob in blobs])
    if best[0] < 0:
        raise ValueError(f"{run} has no {tag!r} images; train it with python train.py first")
    return best


def screenshot(run: str, path: str) -> None:
    """TensorBoard's image dashboard over one run folder, rendered by headless Chromium."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        raise FileNotFoundError(
            "chromium is not installed (apt-get install chromium); pass --no_screenshot to skip the TensorBoard picture"
        )
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    spec = f"{os.path.basename(os.path.abspath(run))}:{os.path.abspath(run)}"
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tensorboard.main",
            "--logdir_spec",
            spec,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--samples_per_plugin=images=100",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/data/plugin/images/tags", timeout=5)
                break
            except OSError:
                time.sleep(0.5)
        profile = tempfile.mkdtemp(prefix="vizdeconv-chromium-")
        subprocess.run(
            [
                browser,
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                "--window-size=1400,1000",
                "--virtual-time-budget=20000",
                f"--screenshot={os.path.abspath(path)}",
                f"http://127.0.0.1:{port}/?darkMode=false#images&tagFilter=reconstructions",
            ],
            check=True,
            capture_output=True,
            timeout=180,
        )
        shutil.rmtree(profile, ignore_errors=True)
    finally:
        server.terminate()
        server.wait(timeout=30)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="README pictures from a real run.")
    parser.add_argument("--run", required=True, help="a finished run folder, e.g. logs/fast")
    parser.add_argument("--out", default=os.path.join("docs", "images"))
    parser.add_argument("--no_screenshot", action="store_true", help="skip the TensorBoard screenshot")
    parser.add_argument("--steps", type=int, default=None, help="feature visualization steps (default 256)")
    args = parser.parse_args(argv)
    if not os.path.isdir(args.run):
        raise FileNotFoundError(f"run folder {args.run} does not exist")
    os.makedirs(args.out, exist_ok=True)
    step, strips = latest_images(args.run, "reconstructions")
    write_png(
        os.path.join(args.out, "reconstructions.png"), pictures.grid(np.stack(strips[:4]).astype(np.float32) / 255.0, 1)
    )
    options = explore.ExploreOptions(
        run=args.run, layers=["conv1", "conv2", "conv3"], top_k=9, optimize=True, method="fourier", steps=args.steps
    )
    report = explore.explore(options)
    with open(os.path.join(report["out"], "index.json")) as handle:
        index = json.load(handle)["layers"]
    for layer in ("conv2", "conv3"):  # show the feature map with the strongest top-9 on average
        strongest = max(index[layer], key=lambda channel: np.mean(index[layer][channel]["values"]))
        shutil.copy(
            os.path.join(report["out"], layer, f"channel_{int(strongest):03d}.png"),
            os.path.join(args.out, f"top9_{layer}.png"),
        )
    for layer in ("conv1", "conv2"):  # every feature map's optimized image, channels in order
        optimized = np.load(os.path.join(report["out"], layer, "optimized.npz"))["images"]
        write_png(
            os.path.join(args.out, f"optimized_{layer}_fourier.png"),
            pictures.grid(pictures.upscale(optimized.astype(np.float32) / 255.0, 3), 16),
        )
    from vizdeconv import FeatureVisualization
    from vizdeconv.runs.subject import open_subject

    subject = open_subject(args.run, log=lambda *_: None, need_data=False)
    pixel = FeatureVisualization(subject.model, "pixel", preprocess=subject.pixels)
    result = pixel.optimize("conv2", unit="center", steps=args.steps)
    grid = pictures.grid(pictures.upscale(result.images, 3), 16)
    write_png(os.path.join(args.out, "optimized_conv2_pixel.png"), grid)
    if not args.no_screenshot:
        screenshot(args.run, os.path.join(args.out, "tensorboard.png"))
    print(f"wrote the README pictures of {args.run} (reconstructions at step {step}) to {args.out}")
    return 0


if __name__ == "__main__":
    cli.quiet_tensorflow()
    sys.exit(cli.run(main, sys.argv[1:], "readme_images.py"))
