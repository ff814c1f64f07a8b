"""What the Deconvnet tab shows, read from the logdir: runs marked by probe summaries, explorer output,
analyses. Every file is reached through `Store.path`, which keeps requests inside the logdir."""

import dataclasses
import glob
import json
import os
import threading

import numpy as np

from vizdeconv.runs import APPLICATIONS


class Refused(ValueError):
    """A request named something outside the logdir or something that is not there."""


@dataclasses.dataclass
class Run:
    """One vizdeconv subject of the logdir.

    Attributes:
      name: its folder relative to the logdir ("." for the logdir itself): the id requests use.
      root: its folder, absolute and resolved.
      kind: "run" (reference checkpoints) or "keras"; model: the `.keras` file or snapshot folder, or
        `applications:NAME[:SIZE]`; weights: that model's weights file (None: random, not rebuilt).
      events_run: the TensorBoard run whose probe summaries it uses; content: their JSON content.
      no_model: why there is no model to project with, where there is none.
    """

    name: str
    root: str
    kind: str
    model: str | None
    events_run: str
    content: dict
    weights: str | None = None
    no_model: str | None = None


class Store:
    """Reads a logdir's vizdeconv files; caches parsed files until they change on disk."""

    def __init__(self, logdir: str):
        self.logdir = os.path.realpath(logdir) if logdir else ""
        self._cache, self._lock = {}, threading.Lock()

    def path(self, *parts: str, must_exist: bool = True) -> str:
        """The real path of logdir/parts...; Refused for absolute parts, `..`, or a link leading out."""
        if not self.logdir:
            raise Refused("TensorBoard has no --logdir")
        for part in parts:
            pieces = part.replace("\\", "/").split("/")
            if os.path.isabs(part) or part.startswith("/") or ".." in pieces or "\0" in part:
                raise Refused(f"path {part!r} is not inside the logdir")
        full = self._inside(os.path.join(self.logdir, *parts))
        if must_exist and not os.path.exists(full):
            raise Refused(f"{'/'.join(parts)} does not exist")
        return full

    def _inside(self, path: str) -> str:
        full = os.path.realpath(path)
        if full != self.logdir and not full.startswith(self.logdir + os.sep):
            raise Refused(f"path {os.path.relpath(path, self.logdir)!r} leads outside the logdir")
        return full

    def runs(self, marked: dict[str, dict]) -> dict[str, Run]:
        """Runs from {TensorBoard run: probe summary content}; a root marked twice keeps the marking
        with the most probe images (the explorer's over the trainer's)."""
        found = {}
        for events_run, content in sorted(marked.items()):
            try:
                # The content's `..` is ours (written beside the events), still kept inside the logdir.
                base = os.path.join(self.logdir, events_run)
                root = self._inside(os.path.join(base, content.get("root", ".")))
            except Refused:
                continue  # a marking that points outside the logdir is not shown
            model, weights, no_model = self._model(base, content)
            name = os.path.relpath(root, self.logdir).replace(os.sep, "/")
            run = Run(name, root, content.get("kind", "run"), model, events_run, content, weights, no_model)
            if name not in found or len(content.get("image_ids", ())) > len(found[name].content.get("image_ids", ())):
                found[name] = run
        return found

    def _model(self, base: str, content: dict) -> tuple[str | None, str | None, str | None]:
        """(model, weights, why there is none) of a marking: a `.keras` file or snapshot folder inside the
        logdir, or `applications:NAME[:SIZE]` with the weights file it was explored with."""
        model, weights = content.get("model"), content.get("weights")
        if not model:
            return None, None, None
        if not model.startswith(APPLICATIONS) and os.path.basename(model).startswith(APPLICATIONS):
            return None, None, f"{os.path.basename(model)}'s marking is older than its weights file's: explore it again"
        try:
            if not model.startswith(APPLICATIONS):
                model = self._inside(os.path.join(base, model))
            weights = self._inside(os.path.join(base, weights)) if weights else None
        except Refused as error:  # shown, without on-demand projections
            return None, None, f"its model or weights file is not inside the logdir ({error})"
        if model.startswith(APPLICATIONS) and weights is None:
            return None, None, f"{model} was explored with random weights, which cannot be rebuilt (no --weights)"
        return model, weights, None

    def _json(self, path: str):
        return self._load(path, lambda p: json.load(open(p)))

    def _npz(self, path: str):
        return self._load(path, lambda p: dict(np.load(p)))

    def _load(self, path: str, reader):
        stamp = os.stat(path).st_mtime_ns
        with self._lock:
            hit = self._cache.get(path)
        if hit and hit[0] == stamp:
            return hit[1]
        try:
            value = reader(path)
        except (OSError, ValueError, KeyError) as error:
            raise Refused(f"{os.path.relpath(path, self.logdir)} cannot be read ({error})") from None
        with self._lock:
            self._cache[path] = (stamp, value)
        return value

    def explorations(self, run: Run) -> dict[str, str]:
        """{split: explorer output folder} under the run (`explore/<split>/` or `<split>/`), or where its
        marking says the explorer wrote it (`--out`), if that is inside the logdir."""
        found = {}
        for pattern in ("explore/*/index.json", "*/index.json"):
            for index in sorted(glob.glob(os.path.join(glob.escape(run.root), pattern))):
                folder = os.path.dirname(index)
                found.setdefault(os.path.basename(folder), os.path.relpath(folder, self.logdir))
        for split, folder in sorted((run.content.get("explorations") or {}).items()):
            try:
                folder = self._inside(os.path.join(self.logdir, run.events_run, folder))
            except Refused:
                continue  # not shown, as a marking that points outside the logdir
            if os.path.isfile(os.path.join(folder, "index.json")):
                found.setdefault(split, os.path.relpath(folder, self.logdir))
        return found

    def index(self, run: Run, split: str) -> dict:
        folders = self.explorations(run)
        if split not in folders:
            raise Refused(
                f"run {run.name} has no explorer output for split {split!r}; run python -m vizdeconv.explore on it"
            )
        return self._json(self.path(folders[split], "index.json"))

    def layer(self, run: Run, split: str, layer: str) -> dict:
        """The explorer's index entries of `layer`: {channel: {image_ids, labels, values, ...}}."""
        layers = self.index(run, split)["layers"]
        if layer not in layers:
            raise Refused(f"the explorer output of {run.name} has no layer {layer!r}; it has {', '.join(layers)}")
        return layers[layer]

    def top(self, run: Run, split: str, layer: str) -> dict:
        """{projections, patches}: [channels, k, side, side, 3] uint8 of `layer` (explorer's top.npz; side:
        the crops' canvas, shrunk for wide layers of large fields)."""
        self.layer(run, split, layer)
        try:
            path = self.path(self.explorations(run)[split], layer, "top.npz")
        except Refused:
            raise Refused(
                f"{run.name}'s explorer output has no per-image tiles; run "
                "python -m vizdeconv.explore again with this version"
            ) from None
        return self._npz(path)

    def optimized(self, run: Run, split: str | None, layer: str, method: str, channel: int) -> dict | None:
        """A stored optimized image of `channel`: {image [H, W, 3] uint8 or float in [0, 1], activation, steps,
        source} from the explorer's `--optimize` (split's `<layer>/optimized.npz`) or `analyze optimize`
        (`analyze/optimize/<layer>_<method>.npz`), if one was made with `method`; else None."""
        folders = self.explorations(run)
        if split in folders:
            try:
                found = self._npz(self.path(folders[split], layer, "optimized.npz"))
            except Refused:
                found = None
            if found is not None and str(found["method"]) == method and 0 <= channel < len(found["images"]):
                return {
                    "image": found["images"][channel],
                    "activation": float(found["activations"][channel]),
                    "steps": int(found["steps"]),
                    "source": "explore --optimize",
                }
        try:
            found = self._npz(self.path(run.name, "analyze", "optimize", f"{layer}_{method}.npz"))
        except Refused:
            return None
        where = np.flatnonzero(found["channels"] == channel)
        if not where.size:
            return None
        return {
            "image": found["images"][where[0]],  # float in [0, 1]: the tab's PNG encoder rounds it
            "activation": float(found["activations"][where[0]]),
            "steps": None,
            "source": "analyze optimize",
        }

    def evolution(self, run: Run, layer: str) -> dict:
        """{steps [S], tiles [maps, S, h, w, 3] float} from `analyze evolution`."""
        try:
            path = self.path(run.name, "analyze", "evolution", f"evolution_{layer}.npz")
        except Refused:
            raise Refused(
                f"no evolution of {layer} in {run.name}; run python -m vizdeconv.analyze "
                f"evolution --layer {layer} on it"
            ) from None
        return self._npz(path)

    def analyses(self, run: Run) -> dict:
        """What `analyze` and the explorer computed: evolution layers, occlusion image ids, sanity
        curves, mode comparisons (file names relative to the run)."""

        def names(pattern):
            return sorted(glob.glob(os.path.join(glob.escape(run.root), pattern)))

        sanity = {}
        # The explorer's --sanity (explore/<split>/sanity or <split>/sanity) and analyze's.
        for path in names("*/*/sanity/sanity_*.json") + names("*/sanity/sanity_*.json"):
            try:
                sanity[os.path.basename(path)[len("sanity_") : -len(".json")]] = self._json(path)
            except Refused:
                continue
        occlusion = {}
        for path in names("analyze/occlusion/image_*.png"):
            occlusion[int(os.path.basename(path)[len("image_") : -len(".png")])] = os.path.relpath(
                path, run.root
            ).replace(os.sep, "/")
        return {
            "evolution": [
                os.path.basename(p)[len("evolution_") : -len(".npz")]
                for p in names("analyze/evolution/evolution_*.npz")
            ],
            "occlusion": occlusion,
            "sanity": sanity,
            "compare": [
                os.path.relpath(p, run.root).replace(os.sep, "/")
                for p in names("explore/*/compare_*.png") + names("*/compare_*.png")
            ],
        }
