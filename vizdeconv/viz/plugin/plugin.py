"""The Deconvnet tab: TensorBoard plugin routes over a logdir's vizdeconv runs.

Registered under the `tensorboard_plugins` entry point group (pyproject.toml), so `tensorboard --logdir
logs` loads it. The tab is listed when some run holds the plugin's probe summaries (`metadata`).
Requests name runs, layers, channels and steps, which are looked up in what the runs hold; the one
route that takes a file name (`/file`) serves PNGs inside a run folder only.
"""

import base64
import io
import json
import os
import threading

import numpy as np
from tensorboard import plugin_util
from tensorboard.backend import http_util
from tensorboard.data import provider
from tensorboard.plugins import base_plugin
from werkzeug import wrappers

from vizdeconv.viz.plugin import probes
from vizdeconv.viz.plugin import uploads as uploads_lib
from vizdeconv.viz.plugin.projector import Projector
from vizdeconv.viz.plugin.store import Refused, Store
from vizdeconv.viz.plugin.uploads import MAX_BYTES, BadUpload, Uploads

STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
STATIC_FILES = {"/index.js": "text/javascript", "/style.css": "text/css"}


class BadRequest(ValueError):
    """A missing or malformed request parameter."""


def png(image: np.ndarray, fast: bool = False) -> bytes:
    """[H, W, 3] uint8 or float in [0, 1] -> PNG bytes; `fast`: stored without deflate (3-6x faster to write,
    about 20% larger), for the pictures of a click, which travel once and are not kept."""
    from PIL import Image

    from vizdeconv.viz.pictures import to_bytes

    image = np.asarray(image)
    if image.dtype != np.uint8:
        image = to_bytes(image)
    image = image[..., :3] if image.ndim == 3 else image
    if fast:
        import tensorflow as tf  # loaded already: a click has just projected

        return tf.io.encode_png(image if image.ndim == 3 else image[..., None], compression=0).numpy()
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def data_uri(image: np.ndarray, fast: bool = False) -> str:
    """The PNG of `image` ([H, W, 3] uint8 or float in [0, 1]) as a data URI (see `png`)."""
    return "data:image/png;base64," + base64.b64encode(png(image, fast)).decode()


def heat(values: np.ndarray, top: float | None = None) -> np.ndarray:
    """[..., h, w] activations -> [..., h, w, 3] uint8 in the viridis colour map, zero dark, `top` (default:
    their maximum) bright."""
    from matplotlib import colormaps

    top = float(values.max()) if top is None else float(top)
    scaled = np.clip(values / top, 0, 1) if top > 0 else np.zeros_like(values)
    return (colormaps["viridis"](scaled)[..., :3] * 255).astype(np.uint8)


def _integer(request, name: str, default=None) -> int:
    value = request.args.get(name)
    if value is None:
        if default is None:
            raise BadRequest(f"parameter {name!r} is missing")
        return default
    try:
        return int(value)
    except ValueError:
        raise BadRequest(f"parameter {name!r} must be an integer, got {value!r}") from None


def _text(request, name: str) -> str:
    value = request.args.get(name)
    if not value:
        raise BadRequest(f"parameter {name!r} is missing")
    return value


def route(kind: str):
    """Wraps a handler(request) -> body into a WSGI app answering 400 with a message on bad input."""

    def wrap(handler):
        @wrappers.Request.application
        def app(self, request):
            try:
                body = handler(self, request)
            except (BadRequest, Refused, BadUpload) as error:
                return http_util.Respond(request, {"error": str(error)}, "application/json", code=400)
            content_type = {"json": "application/json", "png": "image/png"}[kind]
            return http_util.Respond(request, body, content_type)

        return app

    return wrap


class DeconvnetPlugin(base_plugin.TBPlugin):
    """Feature maps, top-9, evolution, on-demand projections, occlusion and sanity of vizdeconv runs."""

    plugin_name = probes.PLUGIN_NAME

    def __init__(self, context):
        self._data_provider = context.data_provider
        self.store = Store(context.logdir or "")
        self.projector = Projector()
        self.uploads = Uploads()
        self._probes, self._lock = {}, threading.Lock()

    def get_plugin_apps(self):
        apps = {path: self._static for path in STATIC_FILES}
        apps.update(
            {
                "/runs": self._runs_route,
                "/layer": self._layer_route,
                "/top9": self._top9_route,
                "/tile.png": self._tile_route,
                "/evolution": self._evolution_route,
                "/evolution.png": self._evolution_tile_route,
                "/probe.png": self._probe_route,
                "/project": self._project_route,
                "/model_layers": self._model_layers_route,
                "/optimized": self._optimized_route,
                "/attribution": self._attribution_route,
                "/image": self._image_route,
                "/split": self._split_route,
                "/activations": self._activations_route,
                "/file": self._file_route,
            }
        )
        return apps

    def is_active(self):
        return False  # active through the probe summaries (data_plugin_names), never otherwise

    def frontend_metadata(self):
        return base_plugin.FrontendMetadata(es_module_path="/index.js", tab_name="Deconvnet", disable_reload=True)

    @wrappers.Request.application
    def _static(self, request):
        name = request.path[request.path.rindex("/") :]
        with open(os.path.join(STATIC, name.lstrip("/")), "rb") as handle:
            return http_util.Respond(request, handle.read(), STATIC_FILES[name])

    # What the runs hold.

    def _marked(self, request) -> dict[str, dict]:
        if self._data_provider is None:
            return {}
        mapping = self._data_provider.list_tensors(
            plugin_util.context(request.environ),
            experiment_id=plugin_util.experiment_id(request.environ),
            plugin_name=probes.PLUGIN_NAME,
        )
        marked = {}
        for events_run, tags in mapping.items():
            if probes.INPUTS_TAG in tags:
                try:
                    marked[events_run] = probes.parse(tags[probes.INPUTS_TAG].plugin_content)
                except ValueError:
                    continue
        return marked

    def _runs(self, request) -> dict:
        return self.store.runs(self._marked(request))

    def _run(self, request):
        name = _text(request, "run")
        runs = self._runs(request)
        if name not in runs:
            raise Refused(f"no vizdeconv run {name!r} in the logdir")
        return runs[name]

    def _probe_arrays(self, request, run) -> dict[str, np.ndarray]:
        """{inputs, pictures} of the run's probe summaries (newest step), cached per event run."""
        with self._lock:
            if run.events_run in self._probes:
                return self._probes[run.events_run]
        data = self._data_provider.read_tensors(
            plugin_util.context(request.environ),
            experiment_id=plugin_util.experiment_id(request.environ),
            plugin_name=probes.PLUGIN_NAME,
            downsample=1,
            run_tag_filter=provider.RunTagFilter(runs=[run.events_run], tags=[probes.INPUTS_TAG, probes.PICTURES_TAG]),
        )
        tags = data.get(run.events_run, {})
        if probes.INPUTS_TAG not in tags or probes.PICTURES_TAG not in tags:
            raise Refused(f"the probe images of {run.name} are not loaded yet; try again")
        arrays = {
            "inputs": tags[probes.INPUTS_TAG][-1].numpy.astype(np.float32),
            "pictures": tags[probes.PICTURES_TAG][-1].numpy.astype(np.uint8),
        }
        with self._lock:
            self._probes[run.events_run] = arrays
        return arrays

    def _class_names(self, run) -> list[str]:
        """The explorer's --labels names, else a labels.txt in the run folder (one a line), else CIFAR-10's."""
        from vizdeconv.data.cifar10 import CLASS_NAMES
        from vizdeconv.runs.subject import read_labels

        labels = os.path.join(run.root, "labels.txt")
        if not run.content.get("class_names") and os.path.isfile(labels):
            try:
                return read_labels(labels)
            except ValueError:  # empty or not text: the names below
                pass
        return run.content.get("class_names") or list(CLASS_NAMES)

    def _name(self, run, index: int) -> str:
        names = self._class_names(run)
        return names[index] if 0 <= index < len(names) else str(index)

    def _image(self, request, run) -> tuple[str, np.ndarray, np.ndarray]:
        """(key, inputs [1, H, W, C] float32, picture [H, W, 3] uint8) of `image=`: a probe's index, the
        token of an uploaded image, or SPLIT:ID, an image of the run's split (e.g. test:12)."""
        from vizdeconv.config import SPLITS
        from vizdeconv.viz.pictures import to_bytes

        value = request.args.get("image", "")
        split, _, ident = value.partition(":")
        if split in SPLITS:
            if not ident.isdigit():
                raise BadRequest(f"image {value!r}: an image of a split is SPLIT:ID, e.g. test:12")
            inputs, picture = self.projector.split_image(run, split, int(ident))
            return value, inputs, to_bytes(picture)
        if value.startswith("u:"):
            item = self.uploads.get(value)
            if item is None or item["run"] != run.name:
                raise BadRequest(
                    f"image {value} is not held (uploads live in memory, oldest dropped first); upload it again"
                )
            return value, item["inputs"], item["picture"]
        index = self._probe_index(request, run)
        arrays = self._probe_arrays(request, run)
        picture = arrays["pictures"][index]
        picture = np.repeat(picture, 3, axis=-1) if picture.shape[-1] == 1 else picture
        return f"p:{index}", arrays["inputs"][index : index + 1], picture

    @route("json")
    def _runs_route(self, request):
        listing = []
        for name, run in sorted(self._runs(request).items()):
            splits = {}
            for split in self.store.explorations(run):
                try:
                    index = self.store.index(run, split)
                except Refused:
                    continue
                splits[split] = {
                    "layers": list(index["layers"]),
                    "mode": index["report"].get("mode"),
                    "images": index["report"].get("images"),
                }
            listing.append(
                {
                    "name": name,
                    "kind": run.kind,
                    # whether the tab can read the run's images by id: a reference run's data, or the data
                    # source a Keras model was explored on
                    "data": run.kind == "run" or bool(run.content.get("data")),
                    "splits": splits,
                    "analyses": self.store.analyses(run),
                    "probes": [
                        {"index": i, "image_id": image_id, "label": label}
                        for i, (image_id, label) in enumerate(zip(run.content["image_ids"], run.content["labels"]))
                    ],
                    "class_names": self._class_names(run),
                }
            )
        return json.dumps({"runs": listing})

    # Explorer output: feature maps and their top-9.

    @route("json")
    def _layer_route(self, request):
        run = self._run(request)
        split, layer = _text(request, "split"), _text(request, "layer")
        entries = self.store.layer(run, split, layer)
        top = self.store.top(run, split, layer)
        return json.dumps(
            {
                "layer": layer,
                "k": int(top["projections"].shape[1]),
                "channels": [
                    {
                        "channel": int(c),
                        "value": entry["values"][0],
                        "image_id": entry["image_ids"][0],
                        "label": entry["labels"][0],
                    }
                    for c, entry in sorted(entries.items(), key=lambda e: int(e[0]))
                ],
            }
        )

    @route("json")
    def _top9_route(self, request):
        run = self._run(request)
        split, layer = _text(request, "split"), _text(request, "layer")
        entries = self.store.layer(run, split, layer)
        channel = _integer(request, "channel")
        if str(channel) not in entries:
            raise BadRequest(f"channel {channel} is out of range: {layer} has {len(entries)} channels")
        entry, names = entries[str(channel)], self._class_names(run)
        return json.dumps(
            {
                "layer": layer,
                "channel": channel,
                "entries": [
                    {
                        "rank": rank,
                        "image_id": image_id,
                        "label": label,
                        "class_name": names[label] if 0 <= label < len(names) else str(label),
                        "value": value,
                        "location": location,
                        "box": box,
                    }
                    for rank, (image_id, label, value, location, box) in enumerate(
                        zip(entry["image_ids"], entry["labels"], entry["values"], entry["locations"], entry["boxes"])
                    )
                ],
            }
        )

    @route("png")
    def _tile_route(self, request):
        run = self._run(request)
        top = self.store.top(run, _text(request, "split"), _text(request, "layer"))
        what = request.args.get("what", "projection")
        if what not in ("projection", "patch"):
            raise BadRequest(f"what must be 'projection' or 'patch', got {what!r}")
        tiles = top["projections" if what == "projection" else "patches"]
        channel, rank = _integer(request, "channel"), _integer(request, "rank", 0)
        if not (0 <= channel < tiles.shape[0] and 0 <= rank < tiles.shape[1]):
            raise BadRequest(
                f"channel {channel} / rank {rank} out of range ({tiles.shape[0]} channels, top {tiles.shape[1]})"
            )
        return png(tiles[channel, rank])

    # Evolution over kept checkpoints.

    def _evolution(self, request):
        run = self._run(request)
        layer = _text(request, "layer")
        evolution = self.store.evolution(run, layer)
        channel = _integer(request, "channel")
        if not 0 <= channel < evolution["tiles"].shape[0]:
            raise BadRequest(f"channel {channel} is out of range: {layer} has {evolution['tiles'].shape[0]} channels")
        return evolution, channel

    @route("json")
    def _evolution_route(self, request):
        evolution, channel = self._evolution(request)
        return json.dumps({"channel": channel, "steps": [int(s) for s in evolution["steps"]]})

    @route("png")
    def _evolution_tile_route(self, request):
        evolution, channel = self._evolution(request)
        index = _integer(request, "index")
        if not 0 <= index < len(evolution["steps"]):
            raise BadRequest(f"index {index} is out of range: {len(evolution['steps'])} kept steps")
        return png(evolution["tiles"][channel, index])

    # Probe images and on-demand projections.

    def _probe_index(self, request, run) -> int:
        index = _integer(request, "image")
        if not 0 <= index < len(run.content["image_ids"]):
            raise BadRequest(
                f"image {index} is out of range: {run.name} has {len(run.content['image_ids'])} probe images"
            )
        return index

    @route("png")
    def _probe_route(self, request):
        run = self._run(request)
        return png(self._probe_arrays(request, run)["pictures"][self._probe_index(request, run)])

    @route("json")
    def _model_layers_route(self, request):
        return json.dumps(self.projector.layers(self._run(request)))

    @route("json")
    def _project_route(self, request):
        from vizdeconv.viz.pictures import to_display

        run = self._run(request)
        _, inputs, _ = self._image(request, run)
        rows, cols = request.args.get("row"), request.args.get("col")
        unit = None if rows is None and cols is None else (_integer(request, "row"), _integer(request, "col"))
        try:
            result = self.projector.project(
                run,
                inputs,
                _text(request, "layer"),
                _integer(request, "channel"),
                request.args.get("mode", "deconvnet"),
                unit,
            )
        except ValueError as error:  # an unknown mode, or bias_subtract where it does not apply
            raise BadRequest(" ".join(str(error).split())) from None
        feature_map = result["feature_map"]
        return json.dumps(
            {
                "projection": data_uri(to_display(result["projection"][None])[0], fast=True),
                "feature_map": data_uri(heat(feature_map), fast=True),
                "map_shape": list(feature_map.shape),
                "max_activation": float(feature_map.max()),
                "argmax": [int(i) for i in np.unravel_index(np.argmax(feature_map), feature_map.shape)],
                "unit": result["unit"],
                "step": result["step"],
                "milliseconds": round(result["milliseconds"], 1),
            }
        )

    @route("json")
    def _optimized_route(self, request):
        """The image optimized to excite one feature map: the explorer's (`--optimize`) or `analyze
        optimize`'s where one was made with the method, else computed now (and kept) with the run's
        current weights. Parameters: run, layer, channel, method (fourier), split (whose top-1 it is
        compared with), steps (on demand only; default 256, at most 2048)."""
        from vizdeconv.methods import feature_vis

        run = self._run(request)
        layer, channel = _text(request, "layer"), _integer(request, "channel")
        method, split = request.args.get("method", "fourier"), request.args.get("split")
        steps = _integer(request, "steps", feature_vis.DEFAULT_STEPS)
        if method not in feature_vis.METHODS:
            raise BadRequest(f"method must be one of {', '.join(feature_vis.METHODS)}, got {method!r}")
        if not 1 <= steps <= 2048:
            raise BadRequest(f"steps must be between 1 and 2048, got {steps}")
        found = self.store.optimized(run, split, layer, method, channel)
        if found is not None:
            reply = {**found, "seconds": 0.0, "cached": True, "step": None}
        else:
            try:
                reply = {**self.projector.optimize(run, layer, channel, method, steps), "steps": steps}
            except ValueError as error:  # an unknown layer, a channel out of range
                if isinstance(error, Refused):
                    raise
                raise BadRequest(" ".join(str(error).split())) from None
            reply["source"] = "computed on demand"
        top1 = None
        if split:
            try:
                entry = self.store.layer(run, split, layer).get(str(channel))
                top1 = entry["values"][0] if entry else None
            except Refused:
                top1 = None
        return json.dumps(
            {
                "layer": layer,
                "channel": channel,
                "method": method,
                "image": data_uri(reply["image"]),
                "activation": reply["activation"],
                "top1": top1,
                "steps": reply["steps"],
                "step": reply["step"],
                "source": reply["source"],
                "seconds": round(reply["seconds"], 2),
                "cached": reply["cached"],
            }
        )

    @route("json")
    def _attribution_route(self, request):
        """Why the model gave a probe image its classes: the maps of `method` (default gradcam) for the image's
        `top` (default 3, at most 10) most probable classes, and `target` if given, over the image. Computed
        on demand with the run's current weights and kept. Parameters: run, image, method, top, target."""
        from vizdeconv.methods.attribution import METHODS
        from vizdeconv.viz.pictures import overlay

        run = self._run(request)
        key, inputs, picture = self._image(request, run)
        method = request.args.get("method", "gradcam")
        if method not in METHODS:
            raise BadRequest(f"method must be one of {', '.join(METHODS)}, got {method!r}")
        top = _integer(request, "top", 3)
        if not 1 <= top <= 10:
            raise BadRequest(f"top must be between 1 and 10, got {top}")
        target = _integer(request, "target") if request.args.get("target") is not None else None
        result = self.projector.attribute(run, key, inputs, method, top, target)
        picture = picture.astype(np.float32) / 255.0
        return json.dumps(
            {
                "image": request.args.get("image"),
                "method": method,
                "layer": result["layer"],
                "step": result["step"],
                "milliseconds": round(result["milliseconds"], 1),
                "cached": result["cached"],
                "classes": [
                    {
                        "index": entry["index"],
                        "name": self._name(run, entry["index"]),
                        "probability": entry["probability"],
                        "score": entry["score"],
                        "map": data_uri(overlay(picture[None], entry["map"][None])[0]),
                    }
                    for entry in result["classes"]
                ],
            }
        )

    # Your own image: uploaded, then every channel of a layer for it.

    @route("json")
    def _image_route(self, request):
        """POST the bytes of an image file (PNG, JPEG, BMP, GIF's first frame, WebP) as the body, with
        TensorBoard's `X-XSRF-Protected: 1` header: it is decoded as the explorer decodes a folder's files,
        preprocessed as the run's images are, and held in memory. Answers its token (for `image=` of the
        other routes), the picture the model sees and the top-5 predictions."""
        import time

        from vizdeconv.viz.pictures import to_bytes

        started = time.perf_counter()
        if request.method == "GET" and request.args.get("image"):  # an image the tab has: probe, split, upload
            run = self._run(request)
            _, inputs, picture = self._image(request, run)
            return self._image_reply(run, request.args["image"], inputs, picture, "as the run's data", started)
        if request.method != "POST":
            raise BadRequest("POST the image file's bytes as the request body, or GET with image=")
        if request.headers.get("X-XSRF-Protected") != "1":
            raise BadRequest(
                "a POST needs the header X-XSRF-Protected: 1 (TensorBoard's rule against cross-site requests)"
            )
        content_type = (request.mimetype or "").lower()
        if content_type not in uploads_lib.CONTENT_TYPES:
            raise BadUpload(
                f"content type {content_type or '(none)'} is not an image; send the file's bytes as the body"
            )
        if request.content_length is not None and request.content_length > MAX_BYTES:
            raise BadUpload(
                f"the image is {request.content_length / 2**20:.1f} MB; at most {MAX_BYTES // 2**20} MB are taken"
            )
        contents = request.stream.read(MAX_BYTES + 1)  # a body without a length is cut off here
        if len(contents) > MAX_BYTES:
            raise BadUpload(f"the image is over {MAX_BYTES // 2**20} MB; at most {MAX_BYTES // 2**20} MB are taken")
        run = self._run(request)
        pixels, shape = self.projector.pixels(run)
        image = uploads_lib.decode_upload(contents, shape[:2], int(shape[2]))
        inputs = np.asarray(pixels.inputs(image[None]), np.float32)
        picture = pixels.pictures(image[None])[0]
        token = Uploads.token(run.name, contents)
        self.uploads.put(token, {"run": run.name, "inputs": inputs, "picture": to_bytes(picture)})
        preprocess = (
            f"the central window of the model's aspect ratio, resized to {shape[0]}x{shape[1]}"
            + (f", its central {pixels.size[0]}x{pixels.size[1]}" if tuple(pixels.size) != tuple(shape[:2]) else "")
            + f", then {pixels.scaling}"
        )
        return self._image_reply(run, token, inputs, picture, preprocess, started)

    def _image_reply(self, run, token: str, inputs, picture, preprocess: str, started: float) -> str:
        import time

        probabilities = self.projector.predict(run, inputs)
        order = np.argsort(-probabilities, kind="stable")[:5]
        return json.dumps(
            {
                "image": token,
                "picture": data_uri(picture),
                "size": [int(picture.shape[0]), int(picture.shape[1])],
                "preprocess": preprocess,
                "predictions": [
                    {"index": int(i), "name": self._name(run, int(i)), "probability": float(probabilities[i])}
                    for i in order
                ],
                "milliseconds": round((time.perf_counter() - started) * 1000, 1),
            }
        )

    @route("json")
    def _split_route(self, request):
        """Image ids of a run's split (a Keras model's: the data it was explored on), of one class if `class` is
        given: {"ids", "labels", "count"} (the first `limit`, default 24, at most 200)."""
        from vizdeconv.config import SPLITS

        run = self._run(request)
        split = _text(request, "split")
        if split not in SPLITS:
            raise BadRequest(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        limit = _integer(request, "limit", 24)
        if not 1 <= limit <= 200:
            raise BadRequest(f"limit must be between 1 and 200, got {limit}")
        label = _integer(request, "class") if request.args.get("class") is not None else None
        ids, labels, count = self.projector.split_ids(run, split, label, limit)
        return json.dumps({"ids": ids.tolist(), "labels": labels.tolist(), "count": int(count)})

    @route("json")
    def _activations_route(self, request):
        """Every channel of `layer` for one image (`image=`: a probe index or an upload's token): the layer's
        shape, each channel's maximum, and all channels as heat tiles in one PNG atlas (`columns` tiles a
        row, each tile [h, w], one colour scale for the whole layer)."""
        import math
        import time

        started = time.perf_counter()
        run = self._run(request)
        _, inputs, _ = self._image(request, run)
        layer = _text(request, "layer")
        values = self.projector.layer_activations(run, inputs, layer)  # [h, w, C]
        height, width, channels = values.shape
        maxima = values.reshape(-1, channels).max(axis=0)
        columns = max(1, math.ceil(math.sqrt(channels * width / height)))
        tiles = heat(np.moveaxis(values, -1, 0), top=max(float(maxima.max()), 0.0))
        atlas = np.zeros((math.ceil(channels / columns) * height, columns * width, 3), np.uint8)
        for channel in range(channels):
            row, column = divmod(channel, columns)
            atlas[row * height : (row + 1) * height, column * width : (column + 1) * width] = tiles[channel]
        return json.dumps(
            {
                "layer": layer,
                "shape": [int(height), int(width), int(channels)],
                "maxima": [round(float(v), 6) for v in maxima],
                "atlas": data_uri(atlas),
                "columns": columns,
                "milliseconds": round((time.perf_counter() - started) * 1000, 1),
            }
        )

    @route("png")
    def _file_route(self, request):
        run = self._run(request)
        name = _text(request, "path")
        if not name.lower().endswith(".png"):
            raise BadRequest("only .png files are served")
        path = self.store.path(run.name, name)
        if not os.path.isfile(path):
            raise Refused(f"{name} is not a file")
        with open(path, "rb") as handle:
            return handle.read()


def standalone_app(logdir: str):
    """TensorBoard's own WSGI app over `logdir` with only this plugin, loaded the way `tensorboard`
    loads event files (for tests, benchmarks and embedding); returns (app, plugin)."""
    from tensorboard.backend import application
    from tensorboard.backend.event_processing import data_provider as event_data_provider
    from tensorboard.backend.event_processing import plugin_event_multiplexer

    multiplexer = plugin_event_multiplexer.EventMultiplexer()
    multiplexer.AddRunsFromDirectory(logdir)
    multiplexer.Reload()
    data = event_data_provider.MultiplexerDataProvider(multiplexer, logdir)
    plugin = DeconvnetPlugin(base_plugin.TBContext(logdir=logdir, data_provider=data, multiplexer=multiplexer))
    return application.TensorBoardWSGI([plugin], data_provider=data), plugin
