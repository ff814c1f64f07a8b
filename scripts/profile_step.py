"""Where the training step's time goes: TensorFlow's profiler over the trainer's compiled step, summed by op.

    python scripts/profile_step.py [--config configs/default.py] [--steps 50] [--precision auto]

Traces `--steps` optimizer steps of the trainer's own step (one in-memory batch of the config's size, so the input
pipeline is not in it), reads the profiler's XSpace and prints, per op type, its share of the op time
and, for the convolutions, the FLOP rate they reach against the CPU's nominal peak in the step's precision
(cores x clock x FLOPs per cycle, `vizdeconv.hardware.cpu.peak_gflops`; `--peak_gflops` overrides).
"""

import argparse
import collections
import glob
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

# every convolution kernel's name has it: Conv2D, Conv2DBackpropFilter, _FusedConv2D, and oneDNN's
# _MklNativeFusedConv2D, _MklNativeConv2DBackpropFilterWithBias, ...
CONV_OP = "Conv2D"
WRAPPERS = ("Process", "Run")


def nominal_peak_gflops(dtype: str = "float32") -> float:
    """cores x clock x FLOPs per cycle of the `dtype` path, from /proc/cpuinfo (`io.cpu.peak_gflops`)."""
    from vizdeconv.hardware import cpu

    kind = cpu.cpu_kind(cpu.cpu_flags())
    vendor = cpu.cpu_info().get("vendor_id", "")
    return cpu.peak_gflops(kind, dtype, os.cpu_count(), cpu.nominal_mhz(), vendor) or 0.0


def op_times(xspace_path: str) -> dict[str, float]:
    """Seconds of host thread time per TensorFlow op type in a profiler XSpace file."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    with open(xspace_path, "rb") as handle:
        space.ParseFromString(handle.read())
    totals = collections.Counter()
    for plane in space.planes:
        if not plane.name.startswith("/host:CPU"):
            continue
        for line in plane.lines:
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                if ":" not in name:
                    continue
                op_type = name.rsplit(":", 1)[1].strip()  # "scope/op_name:OpType" marks an op kernel
                if op_type in WRAPPERS or op_type.startswith("__inference"):
                    continue  # the function call and executor spans that contain the kernels
                totals[op_type] += event.duration_ps / 1e12
    return dict(totals)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=os.path.join("configs", "default.py"))
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--peak_gflops", type=float, default=0.0)
    args = parser.parse_args()

    import importlib.util

    import tensorflow as tf

    from vizdeconv import bench
    from vizdeconv.hardware import precision
    from vizdeconv.nn.convnet import build_model
    from vizdeconv.training import optim, steps

    spec = importlib.util.spec_from_file_location("profiled_config", args.config)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config()
    model = build_model(config)
    dtype = precision.compute_dtype(args.precision)
    optimizer = optim.make_optimizer(config.optimizer, 10**6)
    optimizer.build(model.trainable_variables)
    train_steps = steps.make_train_steps(
        model,
        optimizer,
        tf.distribute.get_strategy(),
        config.loss,
        config.batch_size,
        dtype,
        config.optimizer.norm_bias_scale,
    )
    batch = (
        tf.random.stateless_normal([config.batch_size, config.data.image_size, config.data.image_size, 3], seed=[0, 1]),
        tf.random.stateless_uniform([config.batch_size], [0, 2], 0, 10, tf.int32),
    )
    iterator = iter(tf.data.Dataset.from_tensors(batch).repeat())
    chunk = tf.constant(10)
    for _ in range(3):
        train_steps(iterator, chunk)["loss"].numpy()
    calls = max(1, args.steps // 10)
    folder = tempfile.mkdtemp(prefix="profile_")
    tf.profiler.experimental.start(folder)
    started = time.perf_counter()
    for _ in range(calls):
        train_steps(iterator, chunk)["loss"].numpy()
    wall = time.perf_counter() - started
    tf.profiler.experimental.stop()
    totals = op_times(glob.glob(os.path.join(folder, "**", "*.xplane.pb"), recursive=True)[0])
    machine = precision.hardware()
    total = sum(totals.values())
    step_count = calls * 10
    print(
        f"cpu {machine['cpu']} ({machine['cpu_kind']}, {machine['cores']} cores), precision "
        f"{precision.resolve(args.precision)}; {step_count} steps traced, {wall / step_count * 1000:.1f} ms "
        f"per step wall (profiler on), op thread time {total / step_count * 1000:.1f} ms per step"
    )
    print("| op | ms per step | share of op time |\n|---|---|---|")
    for name, seconds in sorted(totals.items(), key=lambda item: -item[1])[:12]:
        print(f"| {name} | {seconds / step_count * 1000:.1f} | {seconds / total:.1%} |")
    conv_seconds = sum(seconds for name, seconds in totals.items() if CONV_OP in name)
    flops = 3 * bench.conv_flops(model) * config.batch_size * step_count  # forward + two gradients
    peak = args.peak_gflops or nominal_peak_gflops(precision.resolve(args.precision))
    # Kernels overlap (the two gradients of a layer run side by side), so op time can exceed wall time.
    print(
        f"convolutions: {conv_seconds / total:.1%} of op time; the step does {flops / wall / 1e9:.1f} "
        f"GFLOP/s of convolution work = {flops / wall / 1e9 / peak:.1%} of the nominal peak "
        f"{peak:.0f} GFLOP/s ({os.cpu_count()} cores)"
    )


if __name__ == "__main__":
    main()
