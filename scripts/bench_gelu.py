"""The training step of a GELU network with TensorFlow's GELU against the trainer's fused one (value and slope in
one XLA kernel, `vizdeconv.nn.convnet.gelu_train`), in one process, in interleaved rounds.

  python scripts/bench_gelu.py [--config configs/speedrun.py] [--steps 3] [--rounds 3] [--precision auto]

Both networks are the config's, built alike; one has its GELUs' `train` hook removed, so that training
differentiates `tf.nn.gelu` as TensorFlow writes it. Each round times `--steps` optimizer steps of the
trainer's own compiled step (one in-memory batch of the config's size) for each, and the best round of each is
kept, so a burst of load on a shared machine does not decide the comparison. Prints s/step and the ratio.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def make_step(config, dtype, fused: bool):
    """(train_steps, iterator) of a fresh network of `config`, with or without the fused GELU."""
    import tensorflow as tf

    from vizdeconv.nn.convnet import build_model
    from vizdeconv.training import optim, steps

    model = build_model(config)
    hooked = [op for op in model.graph().ops if op.kind == "activation" and "train" in op.params]
    if not hooked:
        raise SystemExit("bench_gelu.py: the config's network has no GELU")
    if not fused:
        for op in hooked:
            del op.params["train"]
    optimizer = optim.make_optimizer(config.optimizer, config.steps)
    optimizer.build(model.trainable_variables)
    train_steps = steps.make_train_steps(model, optimizer, tf.distribute.get_strategy(), config.loss,
                                         config.batch_size, dtype, config.optimizer.norm_bias_scale)  # fmt: skip
    size = config.data.image_size
    batch = (
        tf.random.stateless_normal([config.batch_size, size, size, 3], seed=[0, 1]),
        tf.random.stateless_uniform([config.batch_size], [0, 2], 0, 10, tf.int32),
    )
    iterator = iter(tf.data.Dataset.from_tensors(batch).repeat())
    train_steps(iterator, tf.constant(2))["loss"].numpy()  # traced and warm
    return train_steps, iterator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=os.path.join("configs", "speedrun.py"))
    parser.add_argument("--steps", type=int, default=3, help="optimizer steps per timed call")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--precision", default="auto")
    args = parser.parse_args()

    import importlib.util

    import tensorflow as tf

    from vizdeconv.hardware import precision

    spec = importlib.util.spec_from_file_location("benched_config", args.config)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config()
    dtype = precision.compute_dtype(args.precision)
    machine = precision.hardware()
    print(f"cpu {machine['cpu']} ({machine['cpu_kind']}, {machine['cores']} cores), precision "
          f"{precision.resolve(args.precision)}, batch {config.batch_size}, {args.steps} steps per call")  # fmt: skip
    variants = {"tensorflow_gelu": make_step(config, dtype, False), "fused_gelu": make_step(config, dtype, True)}
    times = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, (train_steps, iterator) in variants.items():
            started = time.perf_counter()
            train_steps(iterator, tf.constant(args.steps))["loss"].numpy()
            times[name].append((time.perf_counter() - started) / args.steps)
    for name, seconds in times.items():
        print(f"{name}: {' '.join(f'{s:.3f}' for s in seconds)} s/step, best {min(seconds):.3f}")
    print(f"fused GELU step {min(times['tensorflow_gelu']) / min(times['fused_gelu']):.2f}x faster (best rounds)")


if __name__ == "__main__":
    main()
