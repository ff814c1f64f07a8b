"""On-demand projections for the Deconvnet tab: each run's network is loaded on first use, kept, and
loaded again when its newest checkpoint (or `.keras` file) changes, as it does while training runs."""

import collections
import hashlib
import os
import threading
import time

import numpy as np

from vizdeconv.runs import APPLICATIONS
from vizdeconv.viz.plugin.store import Refused, Run

ATTRIBUTION_CACHE = 256  # attribution results kept per network (one image, method and set of classes each)
MAPS_CACHE = 32  # a layer's activations for one image, kept per network: a channel click needs no second forward


def _digest(inputs: np.ndarray) -> bytes:
    """What identifies an image's inputs in the caches, whatever route or token brought them."""
    inputs = np.ascontiguousarray(inputs, np.float32)
    return hashlib.blake2b(inputs.tobytes(), digest_size=16).digest() + str(inputs.shape).encode()


def newest_weights(run: Run) -> tuple[str, object]:
    """(path, stamp that changes with it) of what a run's network loads: the checkpoint folder of a reference
    run (its newest intact checkpoint is restored), the `.keras` file, or the newest snapshot in a
    folder of them."""
    from vizdeconv.runs import checkpoints

    if run.kind == "run":
        folder = os.path.join(run.root, "checkpoints")
        found = checkpoints.candidates(folder)
        if not found:
            raise Refused(f"{run.name} has no checkpoint yet")
        return folder, (checkpoints.step_of(found[0]), os.stat(found[0] + ".index").st_mtime_ns)
    if run.model is None:
        why = run.no_model or "pass snapshot_dir to the callback or explore a .keras file"
        raise Refused(f"{run.name} has no model to project with ({why})")
    if run.model.startswith(APPLICATIONS):  # rebuilt from its family with the weights file it was explored with
        if not os.path.isfile(run.weights):
            raise Refused(f"{run.name}'s weights file is missing")
        return run.model, os.stat(run.weights).st_mtime_ns
    path = checkpoints.newest_snapshot(run.model) if os.path.isdir(run.model) else run.model
    if path is None:
        raise Refused(f"no .keras snapshot in {run.name}'s snapshot folder yet")
    if not os.path.isfile(path):
        raise Refused(f"{run.name}'s model file is missing")
    return path, os.stat(path).st_mtime_ns


class _Loaded:
    def __init__(self, signature, subject, step):
        self.signature, self.subject, self.step = signature, subject, step  # the opened `runs.subject.Subject`
        self.deconvnets, self.lock = {}, threading.Lock()
        self.visualizations, self.optimized = {}, {}
        self.attributions, self.attributed = {}, {}  # method -> Attribution; (probe, method, classes) -> maps
        self.splits, self.split_labels = {}, {}  # split -> Source, labels
        self.maps = collections.OrderedDict()  # (inputs' digest, layer) -> [h, w, C] activations, newest last

    @property
    def model(self):
        return self.subject.model

    @property
    def pixels(self):
        return self.subject.pixels

    def feature_maps(self, inputs: np.ndarray, layer: str) -> np.ndarray:
        """Every channel of `layer` for one image [1, H, W, C]: [h, w, C] float32, computed once per image and
        layer and kept (the `MAPS_CACHE` most recently used). Call with `lock` held."""
        key = (_digest(inputs), layer)
        if key in self.maps:
            self.maps.move_to_end(key)
        else:
            self.maps[key] = self.deconvnet("deconvnet").feature_maps(inputs, layer).numpy()[0]
            while len(self.maps) > MAPS_CACHE:
                self.maps.popitem(last=False)
        return self.maps[key]

    def attribution(self, method: str):
        from vizdeconv.methods.attribution import Attribution

        if method not in self.attributions:
            self.attributions[method] = Attribution(self.model, method, rectify=self.subject.rectify)
        return self.attributions[method]

    def visualization(self, method: str):
        from vizdeconv.methods.feature_vis import FeatureVisualization

        if method not in self.visualizations:  # the explorer's preprocessing, so activations compare
            self.visualizations[method] = FeatureVisualization(self.model, method, True, self.pixels.from_unit)
        return self.visualizations[method]

    def deconvnet(self, mode: str):
        from vizdeconv.methods.deconvnet import Deconvnet

        if mode not in self.deconvnets:  # at a run's GELUs too where its config says so
            self.deconvnets[mode] = Deconvnet(self.model, mode, rectify=self.subject.rectify)
        return self.deconvnets[mode]


class Projector:
    """Projects one probe image's feature map (or one unit of it) with a run's current weights."""

    def __init__(self):
        self._loaded, self._lock, self._loading = {}, threading.Lock(), {}

    def _get(self, run: Run) -> _Loaded:
        path, stamp = newest_weights(run)
        with self._lock:
            loaded = self._loaded.get(run.root)
            if loaded is not None and loaded.signature == (path, stamp):
                return loaded
            loading = self._loading.setdefault(run.root, threading.Lock())
        with loading:  # concurrent first requests wait for one load instead of each loading the network
            with self._lock:
                loaded = self._loaded.get(run.root)
            if loaded is not None and loaded.signature == (path, stamp):
                return loaded
            return self._load(run, path, stamp)

    def _load(self, run: Run, path: str, stamp) -> _Loaded:
        from vizdeconv.runs import checkpoints, subject

        try:  # the same opening as the explorer's and the analyses': the newest *intact* checkpoint
            opened = subject.open_subject(
                run.root if run.kind == "run" else None,
                None if run.kind == "run" else path,
                preprocess=run.content.get("preprocess") or "auto",  # as the explorer took the pixels
                log=lambda *_: None,
                need_data=False,
                weights=run.weights,
            )
        except (OSError, ValueError) as error:
            raise Refused(str(error)) from None
        step = opened.step if run.kind == "run" or path.startswith(APPLICATIONS) else checkpoints.snapshot_step(path)
        loaded = _Loaded((path, stamp), opened, step)
        with self._lock:
            self._loaded[run.root] = loaded
        return loaded

    def layers(self, run: Run) -> dict:
        """{layers: [{name, channels, height, width}] of the feature layers, step} of a run's network."""
        from vizdeconv.methods.deconvnet import as_graph

        loaded = self._get(run)
        graph = as_graph(loaded.model)
        return {
            "step": loaded.step,
            "layers": [
                {
                    "name": name,
                    "height": graph.shapes[graph.resolve(name)][0],
                    "width": graph.shapes[graph.resolve(name)][1],
                    "channels": graph.shapes[graph.resolve(name)][-1],
                }
                for name in graph.feature_layers
            ],
        }

    def optimize(self, run: Run, layer: str, channel: int, method: str, steps: int) -> dict:
        """An image optimized to excite `channel` of `layer` with the run's current weights, computed once
        per (weights, layer, channel, method, steps) and kept.

        Returns:
          dict: image [H, W, 3] float32 in [0, 1], activation (its strongest unit of the channel), step of
          the weights, seconds (0 when it came from the cache), cached.
        """
        from vizdeconv.methods import feature_vis

        method = feature_vis.check_method(method)
        loaded = self._get(run)
        key = (layer, channel, method, steps)
        with loaded.lock:
            if key in loaded.optimized:
                return {**loaded.optimized[key], "seconds": 0.0, "cached": True}
            # ValueError for an unknown layer or a channel out of range
            result = loaded.visualization(method).optimize(layer, [channel], steps=steps)
            found = {"image": result.images[0], "activation": float(result.activations[0]), "step": loaded.step}
            loaded.optimized[key] = found
        return {**found, "seconds": result.seconds, "cached": False}

    def pixels(self, run: Run):
        """(the run's `Preprocess`, the shape [H, W, C] an image file is decoded to): a reference run's
        files become CIFAR-10's 32x32 images, then its central crop as its data; a Keras model's are
        decoded to its input size, as the explorer decodes a folder."""
        loaded = self._get(run)
        shape = loaded.deconvnet("deconvnet").graph.input_shape
        return loaded.pixels, ((32, 32, shape[2]) if run.kind == "run" else shape)

    def _split(self, run: Run, split: str):
        """The run's split as a `data.sources.Source`, opened once and kept: a reference run's as its trainer
        reads it (in memory), a Keras model's from the data source the explorer recorded (read by id)."""
        from vizdeconv.data import sources

        loaded = self._get(run)
        with loaded.lock:
            if split not in loaded.splits:
                try:
                    if run.kind == "run":
                        images, labels = loaded.subject.load(split)
                        source = sources.ArraySource(images, labels, f"{run.name} ({split})")
                    elif not run.content.get("data"):
                        raise Refused(f"{run.name}: the tab knows no data of this model (its explorer output predates "
                                      "the data source's record): explore it again, or upload an image")  # fmt: skip
                    else:
                        shape = loaded.deconvnet("deconvnet").graph.input_shape
                        source = sources.open_source(
                            run.content["data"], split, shape, run.content.get("tfds_data_dir")
                        )
                except (OSError, ValueError) as error:
                    raise Refused(" ".join(str(error).split())) from None
                loaded.splits[split] = source
            return loaded.splits[split]

    def split_ids(self, run: Run, split: str, label: int | None, limit: int) -> tuple[np.ndarray, np.ndarray, int]:
        """The first `limit` image ids of the run's split (of class `label` if given), their labels, and how many
        there are in all. A class's ids need every label of the split: read once and kept."""
        source = self._split(run, split)
        if label is None:
            ids = np.arange(min(limit, source.count))
            return ids, self._labels(source, ids), source.count
        loaded = self._get(run)
        with loaded.lock:
            if split not in loaded.split_labels:
                loaded.split_labels[split] = self._labels(source, np.arange(source.count))
            labels = loaded.split_labels[split]
        ids = np.flatnonzero(labels == label)
        return ids[:limit], labels[ids[:limit]], len(ids)

    @staticmethod
    def _labels(source, ids) -> np.ndarray:
        try:
            return np.asarray(source.labels(ids))
        except (OSError, ValueError) as error:
            raise Refused(" ".join(str(error).split())) from None

    def split_image(self, run: Run, split: str, image_id: int) -> tuple[np.ndarray, np.ndarray]:
        """(inputs [1, H, W, C] float32, picture [H, W, 3] uint8) of one image of the run's split, taken as the
        explorer takes it."""
        source = self._split(run, split)
        if not 0 <= image_id < source.count:
            raise Refused(f"image {image_id} is outside the {split} split's 0..{source.count - 1}")
        try:
            window, _ = source.read([image_id])
        except (OSError, ValueError) as error:
            raise Refused(f"image {image_id} of the {split} split: {' '.join(str(error).split())}") from None
        loaded = self._get(run)
        return np.asarray(loaded.pixels.inputs(window), np.float32), loaded.pixels.pictures(window)[0]

    def predict(self, run: Run, inputs: np.ndarray) -> np.ndarray:
        """Class probabilities [classes] float32 of one image [1, H, W, C] with the run's current weights."""
        loaded = self._get(run)
        with loaded.lock:
            deconvnet = loaded.deconvnet("deconvnet")
            _, outputs = deconvnet.activations(inputs, deconvnet.graph.output)
            return deconvnet.graph.probabilities(outputs).numpy()[0]

    def layer_activations(self, run: Run, inputs: np.ndarray, layer: str) -> np.ndarray:
        """Every channel of a feature layer for one image [1, H, W, C]: [h, w, C] float32."""
        loaded = self._get(run)
        with loaded.lock:
            deconvnet = loaded.deconvnet("deconvnet")
            if not deconvnet.graph.is_feature_layer(layer):
                raise Refused(f"layer {layer!r} is not a feature layer of the network; it has "
                              f"{', '.join(deconvnet.graph.feature_layers)}")  # fmt: skip
            return loaded.feature_maps(inputs, layer)

    def attribute(self, run: Run, key, inputs: np.ndarray, method: str, top: int, target: int | None) -> dict:
        """One image's attribution maps of `method` for its `top` most probable classes (and `target`), with the
        run's current weights, computed once per (weights, image `key`, method, classes) and kept (at most
        `ATTRIBUTION_CACHE` entries a network).

        Args:
          inputs: [1, H, W, C] float32 model inputs.
        Returns:
          dict: classes [{index, probability, score, map [H, W] in [0, 1]}], layer, step, milliseconds, cached.
        """
        from vizdeconv.methods.attribution import check_method

        started = time.perf_counter()
        method = check_method(method)
        loaded = self._get(run)
        with loaded.lock:
            explainer = loaded.attribution(method)
            graph = explainer.graph
            probabilities = graph.probabilities(graph(inputs)).numpy()[0]
            if target is not None and not 0 <= target < len(probabilities):
                raise Refused(f"target {target} is out of range: the model has {len(probabilities)} classes")
            classes = [int(c) for c in np.argsort(-probabilities, kind="stable")[:top]]
            if target is not None and target not in classes:
                classes.append(target)
            cache_key = (key, method, tuple(classes))
            cached = cache_key in loaded.attributed
            if not cached:
                result = explainer.explain(np.repeat(inputs, len(classes), axis=0), classes)
                if len(loaded.attributed) >= ATTRIBUTION_CACHE:
                    loaded.attributed.pop(next(iter(loaded.attributed)))
                loaded.attributed[cache_key] = result
            result = loaded.attributed[cache_key]
        return {
            "classes": [
                {
                    "index": c,
                    "probability": float(probabilities[c]),
                    "score": float(result.scores[i]),
                    "map": result.maps[i],
                }
                for i, c in enumerate(classes)
            ],  # fmt: skip
            "layer": result.layer,
            "step": loaded.step,
            "milliseconds": (time.perf_counter() - started) * 1000,
            "cached": cached,
        }

    def project(
        self, run: Run, inputs: np.ndarray, layer: str, channel: int, mode: str, unit: tuple[int, int] | None = None
    ) -> dict:
        """Projects `channel` of `layer` for one image, or only its unit at `unit` = (row, col).

        Args:
          inputs: [1, H, W, C] float32 model inputs.
        Returns:
          dict: projection [H, W, C] float32, feature_map [h, w] float32 (the channel's activations),
          unit (row, col) that was projected or None, step of the weights, milliseconds.
        """
        from vizdeconv.methods import reconstruct

        started = time.perf_counter()
        mode = reconstruct.check_mode(mode)
        loaded = self._get(run)
        with loaded.lock:  # one request at a time per network: compiled functions are shared
            deconvnet = loaded.deconvnet(mode)
            graph = deconvnet.graph
            if not graph.is_feature_layer(layer):
                raise Refused(f"layer {layer!r} is not in the network; it has {', '.join(graph.feature_layers)}")
            height, width, _ = graph.shapes[graph.resolve(layer)]
            if unit is None:  # the projection checks the channel's range
                projection = deconvnet.project(inputs, layer, [channel])
            else:
                row, col = unit
                if not (0 <= row < height and 0 <= col < width):
                    raise Refused(f"unit ({row}, {col}) is outside {layer}'s {height}x{width} map")
                projection = deconvnet.project(inputs, layer, [channel], [row * width + col])
            projection = projection.numpy()[0]
            feature_map = loaded.feature_maps(inputs, layer)[..., channel]  # kept from the layer's tiles
        return {
            "projection": projection,
            "feature_map": feature_map,
            "unit": unit,
            "step": loaded.step,
            "milliseconds": (time.perf_counter() - started) * 1000,
        }
