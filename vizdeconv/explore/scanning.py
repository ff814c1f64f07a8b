"""The explorer's first pass: the running top-k of every feature map of many layers over a streamed source,
in one pass, resumable and shardable.

Memory is the top-k state plus a few batches in flight, whatever the source's size. The state is saved
atomically every `save_every` images to `scan.npz`: a killed scan, run again with the same settings,
goes on from there and ends with exactly the result of an uninterrupted one (the top-k does not depend
on the order images arrive in, and the batches after a saved place are the same ones). `--shard i/N`
scans the i-th of N contiguous parts of the source; `merge_states` combines parts into the state of one
whole scan.
"""

import dataclasses
import json
import os
import time

import numpy as np

from vizdeconv.errors import removed_on_failure

STATE_FILE = "scan.npz"
SKIPPED_FILE = "skipped.txt"
VERSION = 1


def parse_shard(text: str | None) -> tuple[int, int]:
    """'i/N' -> (i, N); None -> (0, 1).

    Raises:
      ValueError: not of the form i/N with 0 <= i < N.
    """
    if text is None:
        return 0, 1
    index, _, total = str(text).partition("/")
    if not (index.strip().isdigit() and total.strip().isdigit()) or not 0 <= int(index) < int(total):
        raise ValueError(f"--shard must be i/N with 0 <= i < N (e.g. 0/4), got {text!r}")
    return int(index), int(total)


def shard_range(count: int, shard: tuple[int, int]) -> tuple[int, int]:
    """The places [start, stop) of part i of N of `count` images (contiguous, near-equal, disjoint)."""
    index, total = shard
    return index * count // total, (index + 1) * count // total


@dataclasses.dataclass
class ScanState:
    """A scan's progress.

    Attributes:
      settings: what was scanned (source fingerprint, layers, k, shard, ...): a resumed scan must match.
      tops: {layer: {"values", "image_ids", "positions"}} NumPy [channels, k], strongest first.
      start, stop: the places this scan covers; position: the next place to read.
      skipped: ids [S] of images that could not be decoded; done: whether position reached stop.
    """

    settings: dict
    tops: dict
    start: int
    stop: int
    position: int
    skipped: np.ndarray
    done: bool = False
    seconds: float = 0.0

    @property
    def scanned(self) -> int:
        return self.position - self.start - len(self.skipped)

    def save(self, path: str) -> None:
        """Writes the state atomically (a temporary file, fsync, rename): a kill leaves the old or the new."""
        layers = list(self.tops)
        arrays = {"meta": np.array(json.dumps({
            "version": VERSION, "settings": self.settings, "layers": layers, "start": self.start, "stop": self.stop,
            "position": self.position, "done": self.done, "seconds": self.seconds}))}  # fmt: skip
        arrays["skipped"] = np.asarray(self.skipped, np.int64)
        for i, layer in enumerate(layers):
            for key, value in self.tops[layer].items():
                arrays[f"{key}_{i}"] = value
        temporary = f"{path}.tmp{os.getpid()}"
        with removed_on_failure(temporary):
            with open(temporary, "wb") as handle:
                np.savez(handle, **arrays)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)

    @classmethod
    def load(cls, path: str) -> "ScanState":
        """Raises ValueError for a file that is not a scan state."""
        try:
            with np.load(path) as stored:
                meta = json.loads(str(stored["meta"]))
                tops = {
                    layer: {key: stored[f"{key}_{i}"] for key in ("values", "image_ids", "positions")}
                    for i, layer in enumerate(meta["layers"])
                }
                skipped = stored["skipped"]
        except Exception as error:  # zip, pickle and key errors of a damaged file
            raise ValueError(f"{path} is not a readable scan state ({type(error).__name__})") from None
        return cls(meta["settings"], tops, meta["start"], meta["stop"], meta["position"], skipped, meta["done"],
                   meta.get("seconds", 0.0))  # fmt: skip


def _differences(stored: dict, wanted: dict) -> list[str]:
    return [f"{key} {stored.get(key)!r} -> {wanted.get(key)!r}" for key in wanted if stored.get(key) != wanted.get(key)]


def resume_or_start(path: str | None, settings: dict, start: int, stop: int, log=print) -> ScanState | None:
    """The saved state at `path` if it is of these settings (None: there is none, or a finished scan of
    other settings, which is replaced).

    Raises:
      ValueError: an unfinished scan of other settings (another layer list, source, shard ...) is there:
        it is not thrown away.
    """
    if path is None or not os.path.exists(path):
        return None
    try:
        state = ScanState.load(path)
    except ValueError as error:
        log(f"warning: {error}; scanning from the start")
        return None
    changed = _differences(state.settings, settings)
    if not changed and (state.start, state.stop) == (start, stop):
        return state
    if state.done:  # its results are being replaced, as any output of an earlier command
        log(f"notice: {path} holds a finished scan with other settings ({'; '.join(changed)}); scanning anew")
        return None
    raise ValueError(
        f"{path} holds an unfinished scan with other settings ({'; '.join(changed) or 'another range'}); run "
        "its command again to finish it, pass another --out, or delete that file to scan anew"
    )


@dataclasses.dataclass
class ScanOptions:
    """How a scan runs.

    Attributes:
      k: activations kept per feature map; batch_size: images per batch.
      preprocess: uint8 batch [b, H, W, C] -> model inputs (None: the pixels as float32).
      strategy: a tf.distribute strategy of this worker's devices (None: the default): each replica keeps its
        own running top-k over its slice of each batch, merged exactly at the end.
      shard: (i, N) scan only part i of N; limit: only the first `limit` images of the source (0: all).
      state_path: where the state is saved every `save_every` images and at the end (None: not saved); an
        existing state of the same `settings` is resumed, a finished one returned as it is.
      strict: the first image that cannot be decoded is an error (ValueError) instead of skipped.
      progress: a progress bar.
    """

    k: int = 9
    batch_size: int = 500
    preprocess: object = None
    strategy: object = None
    shard: tuple[int, int] = (0, 1)
    limit: int = 0
    state_path: str | None = None
    settings: dict | None = None
    save_every: int = 10000
    strict: bool = False
    progress: bool = True


class Scan:
    """Running top-k of every feature map of `layers` over the images of `source`, in one pass.

        state = Scan(graph, source, ["conv2", "conv3"], ScanOptions(k=9, state_path="scan.npz")).run()

    Args:
      graph: the network's Graph; source: a `sources.Source`; layers: names `graph.resolve` knows.
      log: progress lines; on_batch: called with the next place to read after each batch is folded in (for
        benchmarks).
    """

    def __init__(self, graph, source, layers, options: ScanOptions | None = None, log=print, on_batch=None):
        import tensorflow as tf

        self.graph, self.source, self.layers = graph, source, list(layers)
        self.options, self.log, self.on_batch = options or ScanOptions(), log, on_batch
        o = self.options
        self.strategy = o.strategy or tf.distribute.get_strategy()
        if getattr(self.strategy.extended, "_in_multi_worker_mode", lambda: False)():  # no public test for it
            raise ValueError(
                "the scan runs on one worker's devices; to scan on several machines give each worker "
                "--shard i/N and combine the parts with `vizdeconv explore merge`"
            )
        count = min(source.count, o.limit) if o.limit else source.count
        self.start, self.stop = shard_range(count, o.shard)
        self.settings = dict(o.settings or {}, layers=self.layers, k=o.k, shard=list(o.shard), limit=o.limit)
        self.names = {layer: graph.resolve(layer) for layer in self.layers}

    def run(self) -> ScanState:
        """The final ScanState (tops of every layer, skipped ids), saved at `state_path` when given."""
        from tqdm import tqdm

        o = self.options
        state = resume_or_start(o.state_path, self.settings, self.start, self.stop, self.log)
        if state is not None and state.done:
            self.log(f"reusing the finished scan in {o.state_path}")
            return state
        self._begin(state)
        batches = self.strategy.distribute_datasets_from_function(self._pipeline)
        step = self._compiled(batches)
        with tqdm(total=self.stop - self.start, initial=self.position - self.start, desc="scan", unit="img",
                  unit_scale=True, disable=not o.progress, dynamic_ncols=True) as bar:  # fmt: skip
            for images_batch, batch_ids in batches:
                self.states = step(images_batch, batch_ids, self.states)
                got = np.concatenate([ids.numpy() for ids in self.strategy.experimental_local_results(batch_ids)])
                if got.size:
                    upto = int(got.max()) + 1
                    self._gaps(upto, got)
                    bar.update(upto - self.position)
                    self.position = upto
                if self.on_batch is not None:
                    self.on_batch(self.position)
                due = o.state_path is not None and self.position - self.saved >= o.save_every
                if due and self.position < self.stop:  # the last batch is saved once, as the finished state below
                    self._snapshot(False).save(o.state_path)
                    self.saved = self.position
            self._gaps(self.stop, [])
            bar.update(self.stop - self.position)
            self.position = self.stop
        final = self._snapshot(True)
        if o.state_path is not None:
            final.save(o.state_path)
        return final

    def _begin(self, state: ScanState | None) -> None:
        """The running top-k of each replica, from `state` when resuming. Each replica's (values, image ids,
        positions) [C, k] per layer lives in the compiled step's inputs and outputs: a batch is folded in where
        it is computed, with no trip to the host."""
        from vizdeconv.explore.topk import RunningTopK

        k, channels = self.options.k, {layer: self.graph.shapes[self.names[layer]][-1] for layer in self.layers}
        self.replicas = self.strategy.num_replicas_in_sync  # all on this worker (multi-worker is refused)
        if state is None:
            state = ScanState(self.settings, {}, self.start, self.stop, self.start, np.zeros([0], np.int64))
            first = {layer: RunningTopK(channels[layer], k) for layer in self.layers}
        else:
            self.log(f"resuming the scan in {self.options.state_path} at image {state.position} of "
                     f"{self.start}..{self.stop}")  # fmt: skip
            first = {layer: RunningTopK.from_result(state.tops[layer]) for layer in self.layers}
        held = [first] + [{layer: RunningTopK(channels[layer], k) for layer in self.layers}
                          for _ in range(self.replicas - 1)]  # fmt: skip
        held = [
            {layer: (top.values, top.image_ids, top.positions) for layer, top in replica.items()} for replica in held
        ]
        self.states = held[0] if self.replicas == 1 else self.strategy.experimental_distribute_values_from_function(
            lambda context: held[context.replica_id_in_sync_group])  # fmt: skip
        self.skipped = list(state.skipped)
        self.position = self.saved = state.position
        self.began = time.perf_counter() - state.seconds

    def _snapshot(self, done: bool) -> ScanState:
        from vizdeconv.explore import topk
        from vizdeconv.explore.topk import RunningTopK

        local = self.strategy.experimental_local_results
        replicas = [
            {layer: RunningTopK.from_state(*(local(part)[index] for part in top)) for layer, top in self.states.items()}
            for index in range(self.replicas)
        ]  # fmt: skip
        merged = {layer: topk.merged([replica[layer] for replica in replicas]) for layer in self.layers}
        return ScanState(self.settings, merged, self.start, self.stop, self.position, np.array(self.skipped, np.int64),
                         done, time.perf_counter() - self.began)  # fmt: skip

    def _pipeline(self, context):
        import tensorflow as tf

        from vizdeconv.data.pipeline import split_batches

        batches = self.source.elements(self.position, self.stop).batch(self.options.batch_size)
        return split_batches(batches, context, self.options.preprocess or (lambda x: tf.cast(x, tf.float32)))

    def _compiled(self, batches):
        """The step that folds a batch into every replica's running top-k, traced once for batches of any size
        (the dataset's own spec, batch dimension unknown): a short last batch would otherwise trace the whole
        network again (11 s for ResNet50's 172 layers)."""
        import tensorflow as tf

        signature = [*batches.element_spec, tf.nest.map_structure(tf.type_spec_from_value, self.states)]
        from vizdeconv.nn import ops

        return ops.compiled(self._fold, input_signature=signature)  # a scan after a scan warns of no retracing

    def _fold(self, batch, batch_ids, states):
        return self.strategy.run(self._replica_fold, args=(batch, batch_ids, states))

    def _replica_fold(self, x, ids, held):
        import tensorflow as tf

        from vizdeconv.explore import topk

        graph, names = self.graph, self.names
        tensors = graph.forward(x, tf.float32, record_switches=False, until=tuple(names.values()), fold_affine=True)
        best = topk.maxima(graph, tensors, set(names.values()))
        return topk.fold_layers(held, {layer: tensors[name] for layer, name in names.items()}, ids,
                                {layer: best[name] for layer, name in names.items()})  # fmt: skip

    def _gaps(self, upto: int, got) -> None:
        """Ids in [position, upto) missing from `got`: images that could not be decoded."""
        present = np.zeros(upto - self.position, bool)
        present[np.asarray(got, np.int64) - self.position] = True
        missing = self.position + np.flatnonzero(~present)
        if missing.size and self.options.strict:
            first = int(missing[0])
            raise ValueError(f"{self.source.why(first) or self.source.describe(first)} (--strict)")
        self.skipped.extend(int(i) for i in missing)


# 9 parameters: the one-line form of Scan(..., ScanOptions(...)).run() for benchmarks and tests.
def scan_source(graph, source, layers, k: int = 9, batch_size: int = 500, preprocess=None, *, log=print,
                on_batch=None, **options) -> ScanState:  # fmt: skip
    """`Scan(graph, source, layers, ScanOptions(k, batch_size, preprocess, **options), log, on_batch).run()`:
    the running top-k of every feature map of `layers` over the images of `source` (see `ScanOptions`)."""
    return Scan(graph, source, layers, ScanOptions(k, batch_size, preprocess, **options), log, on_batch).run()


def merge_states(states: list[ScanState]) -> ScanState:
    """The state of one whole scan from the finished states of its shards 0/N .. N-1/N.

    Raises:
      ValueError: parts of different settings, unfinished, missing or repeated shards.
    """
    from vizdeconv.explore import topk

    if not states:
        raise ValueError("merge needs the folders of the parts (--shard i/N scans)")
    first = {key: value for key, value in states[0].settings.items() if key != "shard"}
    total = states[0].settings["shard"][1]
    for state in states:
        other = {key: value for key, value in state.settings.items() if key != "shard"}
        if _differences(first, other) or state.settings["shard"][1] != total:
            raise ValueError(f"the parts are of different scans ({'; '.join(_differences(first, other))})")
        if not state.done:
            raise ValueError(f"part {state.settings['shard'][0]}/{total} has not finished; run its command again")
    seen = sorted(state.settings["shard"][0] for state in states)
    if seen != list(range(total)):
        missing = sorted(set(range(total)) - set(seen))
        raise ValueError(
            f"the parts must be shards 0/{total} .. {total - 1}/{total} once each; "
            + (f"missing {', '.join(f'{i}/{total}' for i in missing)}" if missing else f"repeated: {seen}")
        )
    tops = {
        layer: topk.merged([topk.RunningTopK.from_result(state.tops[layer]) for state in states])
        for layer in states[0].tops
    }
    settings = dict(states[0].settings, shard=[0, 1])
    skipped = np.sort(np.concatenate([state.skipped for state in states]))
    stop = max(state.stop for state in states)
    seconds = max(state.seconds for state in states)
    return ScanState(settings, tops, 0, stop, stop, skipped, True, seconds)


def write_skipped(path: str, source, skipped) -> None:
    """`<where the image is>\\t<why it was skipped>` for each skipped id, one per line."""
    with open(path, "w") as handle:
        for image_id in skipped:
            reason = source.why(int(image_id)) or "could not be read"
            handle.write(f"{source.describe(int(image_id))}\t{reason}\n")
