"""Latency of the tab's "Your image" panel, through TensorBoard's WSGI app in-process, beside bench_plugin.py.

    python scripts/bench_live.py --logdir logs --run ref3000 --image photo.jpg [--repeats 10] [--layer conv1]

Times, cold (the first request of a fresh app: the network loads and its functions trace) and warm (median
of --repeats): an upload to its predictions, then the first layer's tiles (`/activations`), the two
together (the goal: 0.5 s for the reference run, 2 s for ResNet50 at 224x224), and a channel click (the
deconvnet projection of the strongest channel through `/project`) beside one projection of the engine alone
(`Deconvnet.channels` on the same inputs). Then 20 uploads and layer requests at once from 20 threads: the
wall time and this process's peak RSS. Prints the CPU and a JSON summary (milliseconds).
"""

import argparse
import io
import json
import resource
import threading
import time

import numpy as np
from PIL import Image
from werkzeug.test import Client

from vizdeconv.hardware.cpu import cpu_model
from vizdeconv.viz.plugin.plugin import standalone_app


def _post(client, run: str, body: bytes) -> dict:
    response = client.post("/data/plugin/vizdeconv/image", query_string={"run": run}, data=body,
                           content_type="application/octet-stream", headers={"X-XSRF-Protected": "1"})  # fmt: skip
    if response.status_code != 200:
        raise SystemExit(response.get_data(as_text=True))
    return json.loads(response.get_data())


def _get(client, route: str, **parameters) -> dict:
    response = client.get(f"/data/plugin/vizdeconv/{route}", query_string=parameters)
    if response.status_code != 200:
        raise SystemExit(response.get_data(as_text=True))
    return json.loads(response.get_data())


def _variant(contents: bytes, seed: int) -> bytes:
    """The image with one pixel changed: a new upload (uploads of the same bytes share a token)."""
    image = np.array(Image.open(io.BytesIO(contents)).convert("RGB"))
    image[0, 0] = np.random.default_rng(seed).integers(0, 256, 3)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--logdir", default="logs")
    parser.add_argument("--run", required=True, help="a run of the logdir the tab lists")
    parser.add_argument("--image", required=True, help="an image file to upload")
    parser.add_argument("--layer", default=None, help="the layer to light up (default: the model's first)")
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    contents = open(args.image, "rb").read()
    app, plugin = standalone_app(args.logdir)
    client = Client(app)

    def upload_and_layer(body: bytes, layer: str | None) -> tuple[float, float, dict, dict]:
        started = time.perf_counter()
        reply = _post(client, args.run, body)
        uploaded = time.perf_counter()
        layer = layer or _get(client, "model_layers", run=args.run)["layers"][0]["name"]
        tiles = _get(client, "activations", run=args.run, image=reply["image"], layer=layer)
        return (uploaded - started) * 1000, (time.perf_counter() - started) * 1000, reply, tiles

    cold_upload, cold_both, reply, tiles = upload_and_layer(contents, args.layer)
    layer = tiles["layer"]
    warm = [upload_and_layer(_variant(contents, i), layer)[:2] for i in range(args.repeats)]
    channel = int(np.argmax(tiles["maxima"]))
    clicks, engine = [], []
    (loaded,) = plugin.projector._loaded.values()  # the run's network, loaded by the first upload
    deconvnet = loaded.deconvnet("deconvnet")
    inputs = plugin.uploads.get(reply["image"])["inputs"]
    for _ in range(args.repeats + 1):
        started = time.perf_counter()
        _get(client, "project", run=args.run, image=reply["image"], layer=layer, channel=channel)
        clicks.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        deconvnet.project(inputs, layer, [channel]).numpy()
        engine.append((time.perf_counter() - started) * 1000)
    results = {
        "cpu": cpu_model(),
        "run": args.run,
        "layer": layer,
        "shape": tiles["shape"],
        "cold": {"upload_to_predictions": round(cold_upload, 1), "upload_and_first_layer": round(cold_both, 1)},
        "warm": {
            "upload_to_predictions": round(float(np.median([w[0] for w in warm])), 1),
            "upload_and_first_layer": round(float(np.median([w[1] for w in warm])), 1),
            "channel_click_projection": round(float(np.median(clicks[1:])), 1),
            "engine_projection_alone": round(float(np.median(engine[1:])), 1),
        },
    }
    errors, started = [], time.perf_counter()

    def work(i):
        try:
            local = Client(app)
            token = _post(local, args.run, _variant(contents, 1000 + i))["image"]
            _get(local, "activations", run=args.run, image=token, layer=layer)
        except BaseException as error:  # noqa: BLE001  (counted and printed)
            errors.append(repr(error))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results["concurrent_20"] = {
        "seconds": round(time.perf_counter() - started, 2),
        "errors": errors[:3],
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "uploads_held": len(plugin.uploads),
    }
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
