"""The explorer's scan work on a machine where TensorFlow cannot run: a GPU projection (not a test).

The GPU machines lent to this project carry PyTorch and JAX but no TensorFlow, and TensorFlow with the
CUDA 12 libraries it needs is about 3 GB, far over what a device call can carry. So this measures, on
that machine, what the scan asks of a GPU and of its host's cores, with what is there:

  * `device`: the same `keras.applications` model (weights=None, 224x224) through Keras's JAX backend,
    (a) the forward pass alone, (b) the scan's whole step on the device: the forward pass, every
    feature layer's strongest unit per map (value and position, of every image and map), and the fold
    into the running top-k of all layers at once, and (c) the same with values only (a late scan's work:
    it finds positions only for the few pairs above the running k-th value). Batches live on the device,
    as the forward-alone limit of `bench_scan.py speed`. The first batch's top-k is checked against NumPy
    on the layer outputs.
  * `decode`: read + JPEG decode + antialiased bilinear resize to 224x224 of a folder's files, across a
    pool of processes (Pillow, whose libjpeg-turbo is the decoder tf.io uses too), to size the input
    pipeline on the host's cores. Run it on this CPU as well to relate it to `bench_scan.py speed`'s
    pipeline rate (tf.data) measured here.

  python scripts/bench_scan_jax.py device --model ResNet50 --model EfficientNetB0 --batch_size 256
  python scripts/bench_scan_jax.py decode --folder /tmp/folder --images 1000 --repeats 4

Each command prints one JSON line per measurement.
"""

import argparse
import glob
import json
import os
import platform
import time

# The feature layers of `vizdeconv`'s graph of a Keras model: every layer with [b, h, w, c] outputs
# but these, which the graph does not keep as layers of their own (172 in ResNet50, 206 in EfficientNetB0).
SKIPPED_KINDS = ("InputLayer", "ZeroPadding2D", "Dropout")


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            name = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        name = platform.processor()
    return f"{os.cpu_count()}-core {name}"


def _decode_one(path: str) -> int:
    import numpy as np
    from PIL import Image

    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB").resize((224, 224), Image.Resampling.BILINEAR))
    return int(pixels.shape[0])


def decode(args) -> None:
    import multiprocessing

    paths = sorted(glob.glob(os.path.join(args.folder, "**", "*.jpg"), recursive=True))[: args.images]
    if not paths:
        raise SystemExit(f"error: no .jpg files under {args.folder}")
    workers = args.workers or os.cpu_count()
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        pool.map(_decode_one, paths[:workers])  # the workers' start and imports outside the timing
        rates = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            done = sum(1 for _ in pool.imap_unordered(_decode_one, paths, chunksize=16))
            rates.append(done / (time.perf_counter() - started))
    print(json.dumps({"what": "decode", "cpu": _cpu(), "workers": workers, "images": len(paths),
                      "images_per_second": round(max(rates), 1)}))  # fmt: skip


def _feature_model(keras, name: str):
    model = getattr(keras.applications, name)(weights=None, input_shape=(224, 224, 3))
    layers = [layer for layer in model.layers
              if type(layer).__name__ not in SKIPPED_KINDS and len(layer.output.shape) == 4]  # fmt: skip
    return model, keras.Model(model.inputs, [layer.output for layer in layers]), layers


def _check_first_fold(features, variables, images, state, k: int) -> float:
    """The step's top-k after one batch from a fresh state against NumPy on the layers' own outputs (the
    first, middle and last layer); returns the largest difference of values (ids and positions must agree
    where values are unique)."""
    import numpy as np

    outputs, _ = features.stateless_call(*variables, images, training=False)
    values, ids, positions = (np.asarray(part) for part in state)
    row, worst = 0, 0.0
    checked = {0, len(outputs) // 2, len(outputs) - 1}  # first, middle, last layer: the rest only sets `row`
    for index, output in enumerate(outputs):
        channels = output.shape[-1]
        if index not in checked:
            row += channels
            continue
        flat = np.asarray(output, np.float32).reshape(output.shape[0], -1, channels)  # [B, h*w, C]
        best, where = flat.max(1).T, flat.argmax(1).T  # [C, B]
        order = np.argsort(-best, axis=1, kind="stable")[:, :k]
        expected = np.take_along_axis(best, order, 1)
        got = values[row : row + channels, : expected.shape[1]]
        worst = max(worst, float(np.abs(got - expected).max()))
        unique = (np.diff(-expected, axis=1) > 1e-3 * (1 + np.abs(expected[:, 1:]))).all(1)
        if not (ids[row : row + channels, : order.shape[1]][unique] == order[unique]).all():
            raise AssertionError("image ids of the first fold differ from NumPy's")
        held = positions[row : row + channels, : order.shape[1]]
        if not (held[unique] == np.take_along_axis(where, order, 1)[unique]).all():
            raise AssertionError("positions of the first fold differ from NumPy's")
        row += channels
    return worst


def device(args) -> None:
    os.environ.setdefault("KERAS_BACKEND", "jax")
    import jax
    import jax.numpy as jnp
    import keras
    import numpy as np

    k = args.k
    info = {"cpu": _cpu(), "device": str(jax.devices()[0].device_kind), "jax": jax.__version__,
            "keras": keras.__version__, "batch_size": args.batch_size}  # fmt: skip
    for name in args.model:
        started = time.perf_counter()
        model, features, layers = _feature_model(keras, name)
        channels = sum(int(layer.output.shape[-1]) for layer in layers)
        whole = ([v.value for v in model.trainable_variables], [v.value for v in model.non_trainable_variables])
        parts = ([v.value for v in features.trainable_variables], [v.value for v in features.non_trainable_variables])
        rng = np.random.default_rng(0)
        images = jnp.asarray(rng.uniform(0, 255, (args.batch_size, 224, 224, 3)).astype(np.float32))

        @jax.jit
        def forward(variables, x):
            return model.stateless_call(*variables, x, training=False)[0]

        def step(variables, held, x, first_id):
            outputs, _ = features.stateless_call(*variables, x, training=False)
            best, where = [], []
            for output in outputs:
                flat = output.reshape(output.shape[0], -1, output.shape[-1]).astype(jnp.float32)  # [B, h*w, C]
                best.append(flat.max(1))
                where.append(flat.argmax(1).astype(jnp.int32))
            batch_value, batch_position = jnp.concatenate(best, 1).T, jnp.concatenate(where, 1).T  # [sum C, B]
            ids = jnp.broadcast_to(first_id + jnp.arange(x.shape[0], dtype=jnp.int32)[None, :], batch_position.shape)
            values, image_ids, positions = held
            # Held entries first: top_k keeps the lower index among equals, so ties keep the earlier image.
            top_values, top = jax.lax.top_k(jnp.concatenate([values, batch_value], 1), k)
            return (top_values, jnp.take_along_axis(jnp.concatenate([image_ids, ids], 1), top, 1),
                    jnp.take_along_axis(jnp.concatenate([positions, batch_position], 1), top, 1))  # fmt: skip

        def values_step(variables, held, x, first_id):
            outputs, _ = features.stateless_call(*variables, x, training=False)
            batch_value = jnp.concatenate([output.max((1, 2)).astype(jnp.float32) for output in outputs], 1).T
            ids = jnp.broadcast_to(first_id + jnp.arange(x.shape[0], dtype=jnp.int32)[None, :], batch_value.shape)
            values, image_ids = held
            top_values, top = jax.lax.top_k(jnp.concatenate([values, batch_value], 1), k)
            return top_values, jnp.take_along_axis(jnp.concatenate([image_ids, ids], 1), top, 1)

        fold = jax.jit(step, donate_argnums=(1,))
        fold_values = jax.jit(values_step, donate_argnums=(1,))

        def fresh():
            return (jnp.full((channels, k), -jnp.inf, jnp.float32), jnp.full((channels, k), -1, jnp.int32),
                    jnp.full((channels, k), -1, jnp.int32))  # fmt: skip

        jax.block_until_ready(forward(whole, images))
        held = jax.block_until_ready(fold(parts, fresh(), images, 0))
        held_values = jax.block_until_ready(fold_values(parts, fresh()[:2], images, 0))
        if not np.array_equal(np.asarray(held_values[0]), np.asarray(held[0])):
            raise AssertionError("the values-only step's top-k values differ from the whole step's")
        worst = _check_first_fold(features, parts, images, held, k)
        compiled = time.perf_counter() - started
        rates = {"forward": [], "scan_step": [], "values_step": []}
        for _ in range(args.repeats):
            began = time.perf_counter()
            for _ in range(args.batches):
                out = forward(whole, images)
            jax.block_until_ready(out)
            rates["forward"].append(args.batches * args.batch_size / (time.perf_counter() - began))
            began = time.perf_counter()
            for index in range(args.batches):
                held = fold(parts, held, images, (index + 1) * args.batch_size)
            jax.block_until_ready(held)
            rates["scan_step"].append(args.batches * args.batch_size / (time.perf_counter() - began))
            began = time.perf_counter()
            for index in range(args.batches):
                held_values = fold_values(parts, held_values, images, (index + 1) * args.batch_size)
            jax.block_until_ready(held_values)
            rates["values_step"].append(args.batches * args.batch_size / (time.perf_counter() - began))
        best = {what: round(max(values), 1) for what, values in rates.items()}
        print(json.dumps(dict(info, what="device", model=name, layers=len(layers), channels=channels,
                              images_per_second=best, step_over_forward=round(best["scan_step"] / best["forward"], 3),
                              values_over_forward=round(best["values_step"] / best["forward"], 3),
                              first_fold_max_difference=worst, build_and_compile_seconds=round(compiled, 1))),
              flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    on_device = sub.add_parser("device")
    on_device.add_argument("--model", action="append", help="keras.applications names (repeat)")
    on_device.add_argument("--batch_size", type=int, default=256)
    on_device.add_argument("--batches", type=int, default=20, help="batches per timed run")
    on_device.add_argument("--repeats", type=int, default=3)
    on_device.add_argument("--k", type=int, default=9)
    decoding = sub.add_parser("decode")
    decoding.add_argument("--folder", required=True)
    decoding.add_argument("--images", type=int, default=1000)
    decoding.add_argument("--repeats", type=int, default=3)
    decoding.add_argument("--workers", type=int, default=0, help="0: one per core")
    args = parser.parse_args()
    if args.command == "device":
        args.model = args.model or ["ResNet50", "EfficientNetB0"]
        device(args)
    else:
        decode(args)


if __name__ == "__main__":
    main()
