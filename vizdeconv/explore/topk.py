"""Running top-k of every feature map over a data set, in bounded memory, mergeable across replicas."""

import tensorflow as tf


class RunningTopK:
    """Keeps, per channel, the k strongest (value, image id, spatial position) seen so far.

    Each image contributes at most one entry per channel: its strongest unit in that map (as in
    Zeiler & Fergus, the top activations come from k different images). Ties keep the earlier image.

    Args:
      channels: number of feature maps.
      k: entries kept per channel.
    """

    def __init__(self, channels: int, k: int = 9):
        self.k = k
        self.values = tf.fill([channels, k], float("-inf"))
        self.image_ids = tf.fill([channels, k], tf.constant(-1, tf.int64))
        self.positions = tf.fill([channels, k], tf.constant(-1, tf.int64))

    def update(self, activations, image_ids) -> None:
        """Folds in a batch: activations [B, h, w, C] float, image_ids [B] int64."""
        self.values, self.image_ids, self.positions = _update(
            self.values,
            self.image_ids,
            self.positions,
            tf.convert_to_tensor(activations, tf.float32),
            tf.cast(image_ids, tf.int64),
            self.k,
        )

    def merge(self, other: "RunningTopK") -> None:
        """Folds in another RunningTopK over disjoint images (e.g. another replica's share)."""
        self.values, self.image_ids, self.positions = _select(
            tf.concat([self.values, other.values], 1),
            tf.concat([self.image_ids, other.image_ids], 1),
            tf.concat([self.positions, other.positions], 1),
            self.k,
        )

    @classmethod
    def from_state(cls, values, image_ids, positions) -> "RunningTopK":
        """The running top-k holding these tensors [C, k] (as `fold_layers` returns them)."""
        top = cls(*values.shape)
        top.values, top.image_ids, top.positions = values, image_ids, positions
        return top

    @classmethod
    def from_result(cls, result: dict) -> "RunningTopK":
        """The running top-k whose entries are a saved `result()`."""
        top = cls(*result["values"].shape)
        top.values = tf.constant(result["values"], tf.float32)
        top.image_ids = tf.constant(result["image_ids"], tf.int64)
        top.positions = tf.constant(result["positions"], tf.int64)
        return top

    def result(self) -> dict:
        """NumPy arrays [C, k]: values, image_ids and flat positions (row * width + col), strongest first."""
        return {"values": self.values.numpy(), "image_ids": self.image_ids.numpy(), "positions": self.positions.numpy()}


def merged(tops: list) -> dict:
    """The `result()` of the union of RunningTopK over disjoint images (replicas, shards), the same shape."""
    total = RunningTopK(*tops[0].values.shape)
    for top in tops:
        total.merge(top)
    return total.result()


# Python control flow only, here and in the two below: autograph would convert them at every trace for nothing.
@tf.autograph.experimental.do_not_convert
def maxima(graph, tensors, names) -> dict:
    """An upper bound of each named map's maximum over H, W: {name: [B, 1, 1, C]}, in the tensors' dtype.

    A map made from another named map by an op that keeps the order of values (a batch normalization, a
    rectifier, a sigmoid, squeeze-and-excitation gates; `registry.Kind.maximum`) gets its bound from that
    one's, computed on [B, 1, 1, C] instead of reading the whole map: with every layer scanned
    (`--layer all`), about half of the maps of a ResNet50 or an EfficientNet. The bound is the maximum
    itself where the order is kept (up to the rounding of the op's kernel), larger where it is not (a
    negative batch-normalization scale, silu below 0); `reduce` reads the map where the bound may enter.

    Args:
      graph: the network's Graph; tensors: its forward tensors by name; names: the tensors scanned.
    """
    from vizdeconv.nn import registry

    wanted, best = set(names), {}
    for op in graph.ops:
        if op.name not in wanted:
            continue
        output = tensors[op.name]
        rule = registry.KINDS[op.kind].maximum
        inputs = [tensors.get(name) for name in op.inputs]
        bound = None
        if rule is not None and None not in inputs and None not in output.shape[1:3]:
            bound = rule(op, [best.get(name) for name in op.inputs], inputs)
        best[op.name] = tf.cast(_map_maximum(output) if bound is None else bound, output.dtype)
    return best


def _map_maximum(activations):
    """[B, h, w, C] -> each map's maximum [B, 1, 1, C]: a max pool over the whole map where its size is
    known (one pass, several times faster on CPU than a reduction over the middle axes)."""
    window = activations.shape[1:3]
    if None in window:
        return tf.reduce_max(activations, [1, 2], keepdims=True)
    return tf.nn.max_pool2d(activations, window, window, "VALID")


def reduce(activations, threshold=None, best=None):
    """[B, h, w, C] -> (best_value [C, B], best_position [C, B] int64): each image's strongest unit per map,
    the only part of a batch the running top-k needs (the scan computes it next to the forward pass).

    Args:
      threshold: [C] (optional) the running top-k's k-th values: positions are only found for the
        (image, map) pairs above it (the others cannot enter the top-k: a tie with the k-th keeps the earlier
        image, and the batch comes after every held one; their position is -1). After
        n images a map's chance to enter is about k/n per image, so late in a scan few pairs qualify and
        the values alone take a max pool, several times cheaper than one with its argmax.
      best: [B, 1, 1, C] (optional, with `threshold`) upper bounds of the maps' maxima (`maxima`): a map
        is read only where its bound exceeds the threshold; elsewhere its value is the bound.
    """
    best_value, best_position = _strongest(activations, threshold, best)
    return tf.transpose(best_value), tf.transpose(best_position)


@tf.autograph.experimental.do_not_convert
def _strongest(activations, threshold=None, best=None):
    """`reduce`, with the results [B, C]."""
    activations = tf.cast(activations, tf.float32)
    height, width, channels = activations.shape[1:]
    if None in (height, width, channels):
        flat = tf.reshape(activations, [tf.shape(activations)[0], -1, tf.shape(activations)[3]])
        return tf.reduce_max(flat, axis=1), tf.argmax(flat, axis=1)
    # A max pool over the whole map (with its argmax): one pass, several times faster on CPU than a
    # reduction over the middle axis of [B, h*w, C] (or a transpose to make it the last).
    window = [1, height, width, 1]

    def with_positions(x):
        best, where = tf.nn.max_pool_with_argmax(x, window, window, "VALID")
        return best[:, 0, 0], where[:, 0, 0] // channels

    if threshold is None:
        return with_positions(activations)
    best = tf.cast(_map_maximum(activations) if best is None else best, tf.float32)[:, 0, 0]  # [B, C]
    # Strictly above: a batch is later than every held image, and a tie keeps the earlier one (maps that
    # are the same value in every image, such as dead rectifiers, would otherwise be read in every batch).
    pairs = tf.where(best > threshold[None, :])  # [P, 2] (image, map) pairs that may enter
    batch = tf.shape(activations)[0]
    area = height * width

    def some_pairs():
        # Each qualifying map's units, read in place (stride C) from the flat batch: P * h * w values
        # instead of the whole batch (int32 offsets: a batch of under 2**31 values).
        pairs32 = tf.cast(pairs, tf.int32)
        base = pairs32[:, 0] * (area * channels) + pairs32[:, 1]
        offsets = base[:, None] + tf.range(area, dtype=tf.int32)[None, :] * channels
        maps = tf.gather(tf.reshape(activations, [-1]), offsets)  # [P, h * w]
        unknown = tf.fill([batch, channels], tf.constant(-1, tf.int64))
        return (tf.tensor_scatter_nd_update(best, pairs, tf.reduce_max(maps, axis=1)),
                tf.tensor_scatter_nd_update(unknown, pairs, tf.argmax(maps, axis=1)))  # fmt: skip

    few = tf.size(pairs) // 2 * 4 <= tf.size(best)  # at most a quarter of the pairs: gathering is cheaper
    fits = tf.cast(batch, tf.int64) * (area * channels) < 2**31  # offsets in int32
    # Two branches, not three (none qualify is the gathering path's empty case): every branch is a graph
    # of its own per layer, traced and optimized once per scan. Both give the maps' true maxima wherever
    # they may enter (`best` may be a bound there) and the bound elsewhere, at or below the threshold.
    return tf.cond(tf.logical_and(few, fits), some_pairs, lambda: with_positions(activations))


@tf.autograph.experimental.do_not_convert
def fold_layers(held: dict, activations: dict, image_ids, best: dict | None = None) -> dict:
    """Folds one batch of many layers into their running entries, inside the caller's compiled function.

    Positions are found only for the (image, map) pairs above the held k-th value (see `reduce`).
    The batch's ids must be later than every held id, as in a scan, which reads its images in order: a
    tie then keeps the entry already held (`RunningTopK.update` takes any order). Every map's entries
    are independent of the others', so the layers' maps are folded as one [sum of C, k] block: a few ops
    per batch instead of a few per layer (EfficientNetB0 has 206 layers).

    Args:
      held: {layer: (values [C, k] float32 strongest first, image_ids [C, k] int64, positions [C, k] int64)},
        the same k for every layer.
      activations: {layer: [B, h, w, C] float}; image_ids: [B] int64, increasing.
      best: {layer: [B, 1, 1, C] upper bounds of the maps' maxima (`maxima`) or None: read from the map}.
    Returns:
      {layer: the new (values, image_ids, positions), each [C, k]}.
    """
    names, best = list(held), best or {}
    found = [_strongest(activations[name], held[name][0][:, -1], best.get(name)) for name in names]
    batch_value, batch_position = (tf.transpose(tf.concat([part[i] for part in found], 1)) for i in (0, 1))
    values, ids, positions = (tf.concat([held[name][i] for name in names], 0) for i in range(3))
    merged = _fold(values, ids, positions, batch_value, batch_position, tf.cast(image_ids, tf.int64),
                   values.shape[1], in_order=True)  # fmt: skip
    sizes = [held[name][0].shape[0] for name in names]
    return dict(zip(names, zip(*(tf.split(part, sizes, 0) for part in merged))))


# 8 parameters: the tensors of one compiled fold, passed explicitly so the trace sees them.
def _fold(values, image_ids, positions, best_value, best_position, batch_ids, k, in_order=False):
    """Running entries [C, k] and a batch's strongest units [C, B] -> the new entries [C, k].

    in_order: the batch's ids are increasing and later than every held id. Held entries are kept with
    ties in id order, so the concatenation already lists tied values earliest image first, and `top_k`
    (which puts the lower index first among equals) needs no sort by id before it.
    """
    ids = tf.broadcast_to(batch_ids[None, :], tf.shape(best_position))
    return _select(
        tf.concat([values, best_value], 1),
        tf.concat([image_ids, ids], 1),
        tf.concat([positions, best_position], 1),
        k,
        sort_ids=not in_order,
    )


def _select(values, image_ids, positions, k, sort_ids=True):
    # Sort by value, then by image id, so the result does not depend on the order batches arrive in.
    if sort_ids:
        order = tf.argsort(image_ids, axis=1, stable=True)
        values, image_ids, positions = (tf.gather(t, order, batch_dims=1) for t in (values, image_ids, positions))
    top = tf.math.top_k(values, k=k).indices
    return tuple(tf.gather(t, top, batch_dims=1) for t in (values, image_ids, positions))


@tf.function(reduce_retracing=True)
def _update(values, image_ids, positions, activations, batch_ids, k):
    return _fold(values, image_ids, positions, *reduce(activations), batch_ids, k)
