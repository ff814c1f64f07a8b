"""Benchmarks: forward / forward-backward / reconstruction / training-step timing.

  vizdeconv bench --network cifar --batch_size 128 --num_batches 100 --precision bfloat16
  vizdeconv bench --network alexnet_fcn --batch_size 8 --num_batches 20
  vizdeconv bench --network cifar --what reconstruct
  vizdeconv bench --network cifar --what train_step --with_data --data_dir ../shared/cifar10
  vizdeconv bench --network deep --what train_step --onednn off

Each phase runs 10 untimed burn-in steps, then `num_batches` timed ones; a line every 10 steps, then
`<Phase> across N steps, mean +/- sd sec / batch`, images/s, GFLOP/s from an analytic count and its share
of the CPU's nominal peak (`io.cpu.peak_gflops`).
"""

import os
import sys
import time

from vizdeconv.hardware import cpu

PHASES = ("forward", "forward_backward", "reconstruct", "train_step", "occlusion", "pipeline")
# cifar: the reference net; deep: configs/deep.py's; speedrun: configs/speedrun.py's, with its recipe
NETWORKS = ("cifar", "deep", "speedrun", "alexnet_fcn")
BURN_IN = 10


def layer_flops(model) -> list[int]:
    """FLOPs (2 x multiply-adds) of each counted op of a network (convolutions, transposed and depthwise
    convolutions, Dense) for one image, as its registry entries count them."""
    from vizdeconv.methods.deconvnet import as_graph
    from vizdeconv.nn import registry

    return registry.flops(as_graph(model))


def conv_flops(model) -> int:
    """FLOPs of one image's forward pass through a ConvNet's convolutions."""
    return sum(layer_flops(model))


def reconstruct_flops(model) -> int:
    """Projecting every layer: layer L walks through layers L..1, after one forward pass."""
    per_layer = layer_flops(model)
    return sum(sum(per_layer[:depth]) for depth in range(1, len(per_layer) + 1)) + sum(per_layer)


# 8 parameters: a benchmark record's fields; the benchmarks' JSON is their schema.
def time_phase(
    name: str,
    step,
    num_batches: int,
    batch_size: int,
    flops_per_image: float,
    log=print,
    variant: str = "",
    batches_per_call: int = 1,
) -> dict:
    """Runs `step()` BURN_IN + num_batches times; returns the timing record of the timed ones.

    With batches_per_call > 1 each call processes that many batches and durations are per batch.
    """
    for _ in range(BURN_IN):
        step()
    durations = []
    for index in range(num_batches):
        start = time.perf_counter()
        step()
        durations.append((time.perf_counter() - start) / batches_per_call)
        if (index + 1) % 10 == 0:
            log(f"step {index + 1}, duration = {durations[-1]:.3f}")
    return timing_record(name, durations, batch_size, flops_per_image, log, variant, num_batches * batches_per_call)


# 8 parameters: a benchmark record's fields; the benchmarks' JSON is their schema.
def timing_record(
    name: str,
    durations,
    batch_size: int,
    flops_per_image: float,
    log=print,
    variant: str = "",
    steps: int | None = None,
    shown_variant: str | None = None,
) -> dict:
    """The printed summary and JSON record of per-batch `durations` (seconds) of a phase."""
    import numpy as np

    mean, sd = float(np.mean(durations)), float(np.std(durations))
    shown = shown_variant or variant
    label = name.replace("_", "-").capitalize() + (f" ({shown})" if shown else "")
    steps = len(durations) if steps is None else steps
    log(f"{label} across {steps} steps, {mean:.4f} +/- {sd:.4f} sec / batch")
    record = {
        "phase": name,
        "num_batches": steps,
        "mean_s": mean,
        "sd_s": sd,
        "median_s": float(np.median(durations)),
        "images_per_s": batch_size / mean,
        "gflop_per_s": flops_per_image * batch_size / mean / 1e9,
    }
    if variant:
        record["variant"] = variant
    log(f"  {record['images_per_s']:.0f} images/s, {record['gflop_per_s']:.1f} GFLOP/s")
    return record


def _synchronized(function):
    """Wraps a step so the timer waits for its result (TensorFlow runs ops asynchronously)."""
    import tensorflow as tf

    def run():
        for value in tf.nest.flatten(function()):
            getattr(value, "numpy", lambda: None)()

    return run


# 9 parameters, 88 lines: the bench command's flags and its phases in order.
def benchmark(
    network: str,
    batch_size: int,
    num_batches: int,
    precision_name: str = "auto",
    what: str = "",
    with_data: bool = False,
    data_dir: str = "",
    log=print,
    steps_per_call: int = 1,
) -> dict:
    """Runs the requested phases and returns {"network", "batch_size", "precision", "machine", "results"}."""
    import tensorflow as tf

    from vizdeconv.hardware import precision

    if batch_size < 1 or num_batches < 1:
        raise ValueError("--batch_size and --num_batches must be positive")
    resolved = precision.resolve(precision_name)
    dtype = precision.compute_dtype(resolved)
    phases = [what] if what else ["forward", "forward_backward"]
    if network == "alexnet_fcn":
        from vizdeconv.nn.alexnet import INPUT_SHAPE, AlexNetFCN

        if set(phases) - {"forward", "forward_backward"}:
            raise ValueError("alexnet_fcn supports --what forward or forward_backward")
        model = AlexNetFCN(log=log)
        flops, shape = conv_flops(model), INPUT_SHAPE
    elif network in ("cifar", "deep", "speedrun"):
        from vizdeconv.nn.convnet import build_model

        config = network_config(network)
        model = build_model(config)
        size = config.data.image_size
        flops, shape = conv_flops(model), (size, size, 3)
    else:
        raise ValueError(f"--network must be one of {', '.join(NETWORKS)}, got {network!r}")
    images = tf.random.normal([batch_size, *shape], seed=1)
    machine = precision.hardware()
    machine["onednn_why"] = cpu.onednn_header(machine["onednn"])
    machine["peak_gflop_per_s"] = (
        None
        if machine["gpu"]
        else cpu.peak_gflops(
            machine["cpu_kind"], resolved, machine["cores"], cpu.nominal_mhz(), cpu.cpu_info().get("vendor_id", "")
        )
    )
    log(
        f"cpu {machine['cpu']} ({machine['cpu_kind']}, {machine['cores']} cores), gpu "
        f"{machine['gpu'] or 'none'}, {machine['onednn_why']}, bfloat16 path: {machine['bf16_path']}"
    )
    if machine["peak_gflop_per_s"]:
        log(
            f"nominal peak {machine['peak_gflop_per_s']:.0f} GFLOP/s in {resolved} ({machine['cores']} cores at "
            f"{cpu.nominal_mhz():.0f} MHz, the {machine['cpu_kind']} path's FLOPs per cycle)"
        )
    log(f"network {network}, batch {batch_size}, precision {resolved}, {flops / 1e9:.3f} GFLOP per image forward")
    results = []

    @tf.function
    def forward():
        return model(images, dtype)

    @tf.function
    def forward_backward():
        with tf.GradientTape() as tape:
            output = model(images, dtype)
            objective = tf.reduce_sum(tf.square(output)) / 2
        return tape.gradient(objective, model.trainable_variables)  # all of them, or tf.function prunes

    for phase in phases:
        if phase == "forward":
            results.append(time_phase(phase, _synchronized(forward), num_batches, batch_size, flops, log))
        elif phase == "forward_backward":
            results.append(time_phase(phase, _synchronized(forward_backward), num_batches, batch_size, 3 * flops, log))
        elif phase == "occlusion":
            results.append(_occlusion(model, num_batches, log))
        elif phase == "reconstruct":
            results += _reconstruct(model, images, num_batches, batch_size, log, dtype)
        elif phase == "pipeline":
            iterator = iter(_batches(config, batch_size, True, data_dir))
            results.append(time_phase(phase, lambda: next(iterator), num_batches, batch_size, 0.0, log, "alone"))
        elif phase == "train_step":
            results.append(
                _train_step(
                    config, model, dtype, batch_size, num_batches, with_data, data_dir, 3 * flops, log, steps_per_call
                )
            )
        else:
            raise ValueError(f"--what must be one of {', '.join(PHASES)}, got {phase!r}")
        add_share_of_peak(results[-1], machine["peak_gflop_per_s"], log)
    return {"network": network, "batch_size": batch_size, "precision": resolved, "machine": machine, "results": results}


def network_config(network: str):
    """The config whose network `--network cifar` (the reference) or `deep` (configs/deep.py's layers)
    times, both with the reference recipe's optimizer, so only the network differs; `speedrun` is
    configs/speedrun.py's whole recipe (network, augmentation, optimizer)."""
    from vizdeconv.config import deep_layers, default_config, speedrun_config

    if network == "speedrun":
        return speedrun_config()
    config = default_config()
    if network == "deep":
        config.model.layers = deep_layers()
    return config


def add_share_of_peak(record: dict, peak: float | None, log=print) -> None:
    """Adds `share_of_peak` (GFLOP/s over the nominal peak GFLOP/s, None where unknown) to a record."""
    share = record["gflop_per_s"] / peak if peak and record.get("gflop_per_s") else None
    record["share_of_peak"] = share
    if share is not None:
        log(f"  {100 * share:.1f}% of the nominal peak")


def _reconstruct(model, images, num_batches, batch_size, log, dtype) -> list[dict]:
    """Projects every conv layer of the batch in one stacked pass of the projection engine."""
    from vizdeconv.methods.deconvnet import Deconvnet
    from vizdeconv.viz.summaries import default_layers

    deconvnet = Deconvnet(model, compute_dtype=dtype)
    layers, flops = tuple(default_layers(deconvnet.graph)), reconstruct_flops(model)
    return [
        time_phase(
            "reconstruct",
            _synchronized(lambda: deconvnet.project(images, list(layers))),
            num_batches,
            batch_size,
            flops,
            log,
            "engine",
        )
    ]


def _occlusion(model, num_batches, log) -> dict:
    """Occlusion maps of one 24x24 image with a 4x4 patch at stride 1 (441 positions), per image."""
    import numpy as np

    from vizdeconv.methods.deconvnet import Deconvnet
    from vizdeconv.methods.occlusion import Occlusion
    from vizdeconv.nn.preprocess import Preprocess

    deconvnet = Deconvnet(model)
    picture = np.random.default_rng(0).integers(0, 256, (24, 24, 3)).astype(np.float32)
    pixels = Preprocess((24, 24), "standardize")
    occluder = Occlusion(deconvnet, pixels.inputs, [120.0, 122.0, 113.0], 4, 1)
    run = lambda: occluder.explain(picture, 0)  # noqa: E731
    return time_phase("occlusion", run, num_batches, 1, 0.0, log, "441 positions")


def _batches(config, batch_size: int, with_data: bool, data_dir: str):
    """Training batches (images [B, size, size, 3] float32, labels [B] int32): the trainer's pipeline over
    real or random pixels, with the config's crop, flip and translation, or one fixed in-memory batch."""
    import numpy as np
    import tensorflow as tf

    from vizdeconv.data import cifar10, pipeline
    from vizdeconv.nn.preprocess import run_statistics

    if with_data:
        if data_dir:
            config.data.data_dir = data_dir
            train_images, train_labels = cifar10.load_split(config.data, "train")
        else:  # the pipeline's cost does not depend on the pixels
            rng = np.random.default_rng(0)
            train_images = rng.integers(0, 256, (10000, 32, 32, 3), dtype=np.uint8)
            train_labels = rng.integers(0, 10, 10000).astype(np.int32)
        dataset = pipeline.train_dataset(train_images, train_labels, batch_size, 0, 0, 10**9, config.data.image_size,
                                         flip=config.data.flip, translate=config.data.translate,
                                         statistics=run_statistics(config.data))  # fmt: skip
    else:
        size = config.data.image_size
        batch = (
            tf.random.normal([batch_size, size, size, 3], seed=2),
            tf.random.uniform([batch_size], 0, 10, tf.int32, seed=3),
        )
        dataset = tf.data.Dataset.from_tensors(batch).repeat()
    return dataset


# 10 parameters: the trainer's step rebuilt for timing, with the trainer's own settings.
def _train_step(
    config, model, dtype, batch_size, num_batches, with_data, data_dir, flops, log, steps_per_call: int = 1
) -> dict:
    """The trainer's own compiled step (Adam included), one step per call."""
    import tensorflow as tf

    from vizdeconv.training import optim, steps

    strategy = tf.distribute.get_strategy()
    optimizer = optim.make_optimizer(config.optimizer, config.steps)
    optimizer.build(model.trainable_variables)
    train_steps = steps.make_train_steps(
        model, optimizer, strategy, config.loss, batch_size, dtype, config.optimizer.norm_bias_scale
    )
    iterator = iter(_batches(config, batch_size, with_data, data_dir))
    chunk = tf.constant(steps_per_call)
    variant = "with_data" if with_data else "in_memory_batch"
    # Like the trainer, run several steps per compiled call; report seconds per step.
    return time_phase(
        "train_step",
        _synchronized(lambda: train_steps(iterator, chunk)),
        num_batches,
        batch_size,
        flops,
        log,
        variant,
        steps_per_call,
    )


# 9 parameters, 64 lines: the Keras twin's step timed beside the trainer's, same settings.
def keras_train_step(
    config,
    dtype,
    batch_size: int,
    num_batches: int,
    with_data: bool,
    data_dir: str,
    flops: float,
    log=print,
    steps_per_call: int = 1,
) -> dict:
    """The same network and recipe as a plain Keras 3 model trained with `model.fit`.

    `to_keras` of the reference net with the trainer's weight penalty as kernel regularizers, the
    config's loss reduction and optimizer, `steps_per_execution=steps_per_call`, mixed_bfloat16 when
    `dtype` is bfloat16, on the same batches. A callback stamps the time after each execution; the
    first BURN_IN executions are not timed.
    """
    import keras
    import numpy as np

    from vizdeconv.nn.convnet import build_model, to_keras
    from vizdeconv.training import optim

    stamps = []

    class Stamp(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            stamps.append(time.perf_counter())

    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16" if dtype.name == "bfloat16" else "float32")
    try:
        model = to_keras(build_model(config), config.loss.weight_decay)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    reduction = "sum" if config.loss.reduction == "sum" else "sum_over_batch_size"
    model.compile(
        optimizer=optim.make_optimizer(config.optimizer, 10**6),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=reduction),
        steps_per_execution=steps_per_call,
    )
    executions = BURN_IN + num_batches
    model.fit(
        _batches(config, batch_size, with_data, data_dir),
        epochs=1,
        verbose=0,
        shuffle=False,
        steps_per_epoch=executions * steps_per_call,
        callbacks=[Stamp()],
    )
    if len(stamps) != executions:
        raise RuntimeError(f"model.fit reported {len(stamps)} executions, expected {executions}")
    durations = np.diff(stamps[BURN_IN - 1 :]) / steps_per_call
    return timing_record(
        "train_step",
        durations,
        batch_size,
        flops,
        log,
        "keras_fit",
        num_batches * steps_per_call,
        shown_variant="keras model.fit",
    )


def run_baseline(script: str, data_dir: str, num_batches: int, log=print) -> dict:
    """Runs the TF1-graph yardstick script for num_batches steps and parses its ms/step."""
    import re
    import subprocess

    if not os.path.isfile(script):
        raise FileNotFoundError(f"--baseline: {script} does not exist")
    if not data_dir:
        raise ValueError("--baseline needs --data_dir (the yardstick reads the CIFAR-10 binary files)")
    result = subprocess.run(
        [sys.executable, script, data_dir, str(num_batches)],
        capture_output=True,
        text=True,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
    )
    found = re.search(r"baseline train: \d+ steps [0-9.]+s ([0-9.]+) ms/step", result.stdout)
    if result.returncode or not found:
        raise ValueError(f"--baseline: {script} failed: {result.stderr.strip().splitlines()[-1:]}")
    mean = float(found.group(1)) / 1000
    log(found.group(0))
    return {
        "phase": "train_step",
        "variant": "tf1_graph_baseline",
        "num_batches": num_batches,
        "mean_s": mean,
        "sd_s": None,
        "images_per_s": 128 / mean,
        "gflop_per_s": None,
    }


# 7 parameters: the yardstick's command line and where its figures go.
def add_baseline(
    report: dict, baseline: str, num_batches: int, with_data: bool, data_dir: str, steps_per_call: int = 1, log=print
) -> None:
    """Times a yardstick beside a train_step report and appends it to report["results"]: 'keras' trains
    the same network and recipe with model.fit in this process; a path runs that TF1-graph script."""
    if baseline == "keras":
        from vizdeconv.hardware import precision
        from vizdeconv.nn.convnet import build_model

        if report["network"] not in ("cifar", "deep"):
            raise ValueError("--baseline keras times the trainer's networks: use --network cifar or deep")
        config = network_config(report["network"])
        result = keras_train_step(
            config,
            precision.compute_dtype(report["precision"]),
            report["batch_size"],
            num_batches,
            with_data,
            data_dir,
            3 * conv_flops(build_model(config)),
            steps_per_call=steps_per_call,
        )
        add_share_of_peak(result, report["machine"]["peak_gflop_per_s"], log)
        log(
            f"trainer step / keras model.fit step: "
            f"{report['results'][0]['mean_s'] / result['mean_s']:.2f} (below 1: the trainer is faster)"
        )
    else:
        result = run_baseline(baseline, data_dir, num_batches * steps_per_call)
        log(f"speed-up over the TF1 float32 graph: {result['mean_s'] / report['results'][0]['mean_s']:.2f}x")
    report["results"].append(result)
