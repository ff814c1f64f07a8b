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


def scan_source(
    graph,
    source,
    layers,
    k: int = 9,
    batch_size: int = 500,
    preprocess=None,
    *,
    strategy=None,
    shard: tuple[int, int] = (0, 1),
    limit: int = 0,
    state_path: str | None = None,
    settings: dict | None = None,
    save_every: int = 10000,
    strict: bool = False,
    progress: bool = True,
    log=print,
    on_batch=None,
) -> ScanState:
    """Running top-k of every feature map of `layers` over the images of `source`, one pass.

    Args:
      graph: the network's Graph; source: a `sources.Source`; layers: names `graph.resolve` knows.
      preprocess: uint8 batch [b, H, W, C] -> model inputs (None: the pixels as float32).
      strategy: a tf.distribute strategy of this worker's devices: each replica keeps its own running
        top-k over its slice of each batch, merged exactly at the end.
      shard: (i, N) scan only part i of N; limit: only the first `limit` images of the source (0: all).
      state_path: where the state is saved every `save_every` images and at the end (None: not saved);
        an existing state of the same `settings` is resumed, a finished one returned as it is.
      strict: the first image that cannot be decoded is an error (ValueError) instead of skipped.
      on_batch: called with the next place to read after each batch is folded in (for benchmarks).
    Returns:
      the final ScanState (tops of every layer, skipped ids).
    """
    import tensorflow as tf
    from tqdm import tqdm

    from vizdeconv.data.pipeline import split_batches
    from vizdeconv.explore import topk
    from vizdeconv.explore.topk import RunningTopK

    strategy = strategy or tf.distribute.get_strategy()
    if getattr(strategy.extended, "_in_multi_worker_mode", lambda: False)():  # no public test for it
        raise ValueError(
            "the scan runs on one worker's devices; to scan on several machines give each worker "
            "--shard i/N and combine the parts with `vizdeconv explore merge`"
        )
    count = min(source.count, limit) if limit else source.count
    start, stop = shard_range(count, shard)
    settings = dict(settings or {}, layers=list(layers), k=k, shard=list(shard), limit=limit)
    state = resume_or_start(state_path, settings, start, stop, log)
    if state is not None and state.done:
        log(f"reusing the finished scan in {state_path}")
        return state
    names = {layer: graph.resolve(layer) for layer in layers}
    channels = {layer: graph.shapes[names[layer]][-1] for layer in layers}
    local = strategy.num_replicas_in_sync  # all on this worker (multi-worker is refused above)
    if state is None:
        state = ScanState(settings, {}, start, stop, start, np.zeros([0], np.int64))
        first = {layer: RunningTopK(channels[layer], k) for layer in layers}
    else:
        log(f"resuming the scan in {state_path} at image {state.position} of {start}..{stop}")
        first = {layer: RunningTopK.from_result(state.tops[layer]) for layer in layers}
    # Each replica's running top-k, (values, image ids, positions) [C, k] per layer, lives in the compiled
    # step's inputs and outputs: the batch is folded in where it is computed, with no trip to the host.
    held = [first] + [{layer: RunningTopK(channels[layer], k) for layer in layers} for _ in range(local - 1)]
    held = [{layer: (top.values, top.image_ids, top.positions) for layer, top in replica.items()} for replica in held]
    states = held[0] if local == 1 else strategy.experimental_distribute_values_from_function(
        lambda context: held[context.replica_id_in_sync_group])  # fmt: skip
    skipped = list(state.skipped)
    position, saved = state.position, state.position
    began = time.perf_counter() - state.seconds

    def snapshot(done: bool) -> ScanState:
        replicas = [
            {layer: RunningTopK.from_state(*(strategy.experimental_local_results(part)[replica] for part in top))
             for layer, top in states.items()}
            for replica in range(local)
        ]  # fmt: skip
        merged = {layer: topk.merged([replica[layer] for replica in replicas]) for layer in layers}
        return ScanState(settings, merged, start, stop, position, np.array(skipped, np.int64), done,
                         time.perf_counter() - began)  # fmt: skip

    def pipeline(context):
        batches = source.elements(position, stop).batch(batch_size)
        return split_batches(batches, context, preprocess or (lambda x: tf.cast(x, tf.float32)))

    def fold(batch, batch_ids, states):
        def replica_fn(x, ids, held):
            tensors = graph.forward(x, tf.float32, record_switches=False, until=tuple(names.values()), fold_affine=True)
            best = topk.maxima(graph, tensors, set(names.values()))
            return topk.fold_layers(held, {layer: tensors[name] for layer, name in names.items()}, ids,
                                    {layer: best[name] for layer, name in names.items()})  # fmt: skip

        return strategy.run(replica_fn, args=(batch, batch_ids, states))

    batches = strategy.distribute_datasets_from_function(pipeline)
    # Traced once for batches of any size (the dataset's own spec, batch dimension unknown): a short last
    # batch would otherwise trace the whole network again (11 s for ResNet50's 172 layers).
    step = tf.function(fold, input_signature=[*batches.element_spec, tf.nest.map_structure(tf.type_spec_from_value,
                                                                                           states)])  # fmt: skip

    def gaps(upto: int, got) -> None:
        """Ids in [position, upto) missing from `got`: images that could not be decoded."""
        present = np.zeros(upto - position, bool)
        present[np.asarray(got, np.int64) - position] = True
        missing = position + np.flatnonzero(~present)
        if missing.size and strict:
            raise ValueError(f"{source.why(int(missing[0])) or source.describe(int(missing[0]))} (--strict)")
        skipped.extend(int(i) for i in missing)

    with tqdm(total=stop - start, initial=position - start, desc="scan", unit="img", unit_scale=True,
              disable=not progress, dynamic_ncols=True) as bar:  # fmt: skip
        for images_batch, batch_ids in batches:
            states = step(images_batch, batch_ids, states)
            got = np.concatenate([ids.numpy() for ids in strategy.experimental_local_results(batch_ids)])
            if got.size:
                upto = int(got.max()) + 1
                gaps(upto, got)
                bar.update(upto - position)
                position = upto
            if on_batch is not None:
                on_batch(position)
            if state_path is not None and position - saved >= save_every:
                snapshot(False).save(state_path)
                saved = position
        gaps(stop, [])
        bar.update(stop - position)
        position = stop
    final = snapshot(True)
    if state_path is not None:
        final.save(state_path)
    return final


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
