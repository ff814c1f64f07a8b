"""The speedrun recipe's ablation: configs/speedrun.py with one of airbench's methods taken out (or, for Muon,
swapped in) at a time, each trained on CIFAR-10 and evaluated on all 10,000 test images.

    python scripts/ablate_speedrun.py --data_dir ../shared/cifar10 [--steps 476] [--seeds 0,1,2,3,4]
        [--variants full,no_whitening,...] [--tta] [--out logs/ablation]

--steps shortens every variant alike (its triangular schedule and weight averaging completed in that many
steps), for a CPU where the whole recipe's 476 steps per variant and seed do not fit. Results go to
OUT/results.json (one record per variant and seed: accuracy, with --tta also with test-time augmentation,
wall seconds) and a Markdown table of the mean per variant and its difference from `full` on stdout.
"""

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from vizdeconv.hardware import cpu  # noqa: E402

if __name__ == "__main__":  # before TensorFlow is imported, as the trainer's command does (oneDNN on AVX2)
    cpu.configure_onednn(cpu.flag_value(sys.argv))

from vizdeconv.config import speedrun_config, speedrun_layers  # noqa: E402


def _muon(c):
    """Muon on every kernel at rate 0.05; the BN offsets' scale divided by it, so that they keep SGD's 64x
    rate; the other biases (the whitening layer's, 1-D, so plain Nesterov steps) at Muon's rate."""
    c.optimizer.update(name="muon", learning_rate=0.05, norm_bias_scale=64 * c.optimizer.learning_rate / 0.05)


# Each variant: what it changes, as a function of the recipe's config.
VARIANTS = {
    "full": ("the recipe", lambda c: None),
    "he_init": ("3x3 kernels He-normal, head at 1/9 (2.4x and 28x PyTorch's scales)",
                lambda c: c.model.update(layers=speedrun_layers(he=True))),
    "no_whitening": ("first layer trained from a He start",
                     lambda c: c.model.update(layers=speedrun_layers(whiten=False))),
    "no_identity_init": ("3x3 kernels all drawn at PyTorch's scale (no identity filters)",
                         lambda c: c.model.update(layers=speedrun_layers(identity=False))),
    "relu": ("ReLU for GELU (the deconvnet's own rectifier)",
             lambda c: c.model.update(layers=speedrun_layers(activation="relu"))),
    "pool_after_activation": ("each 2x2 pool after the activation, BN statistics of all positions",
                              lambda c: c.model.update(layers=speedrun_layers(pool_first=False))),
    "image_standardization": ("each image standardized on its own (not by the data set's statistics)",
                              lambda c: c.data.update(normalize="image")),
    "no_bias_scaling": ("BN offsets at the rate (not x64)", lambda c: c.optimizer.update(norm_bias_scale=1.0)),
    "no_lookahead": ("no weight averaging", lambda c: c.optimizer.update(lookahead_every=0)),
    "no_label_smoothing": ("one-hot targets", lambda c: c.loss.update(label_smoothing=0.0)),
    "random_flip": ("a random flip per image and batch", lambda c: c.data.update(flip="random")),
    "no_translation": ("no translation", lambda c: c.data.update(translate=0)),
    "muon": ("Muon on every kernel (untuned: rate 0.05; BN offsets at SGD's rate, the whitening bias at Muon's)",
             _muon),
    "muon_no_lookahead": ("Muon as above, without weight averaging (airbench94_muon.py has none)",
                          lambda c: (_muon(c), c.optimizer.update(lookahead_every=0))),
    "precise_bn": ("BN statistics recomputed at the end from 20 batches of training images",
                   lambda c: c.update(norm_statistics_images=20 * c.batch_size)),
    "muon_no_lookahead_precise_bn": ("muon_no_lookahead with BN statistics recomputed as precise_bn",
                                     lambda c: (_muon(c), c.optimizer.update(lookahead_every=0),
                                                c.update(norm_statistics_images=20 * c.batch_size))),
}  # fmt: skip


def variant_config(name: str, data_dir: str, steps: int, seed: int, tta: bool):
    """The recipe with variant `name`, shortened to `steps` (schedule, averaging and the whitening bias's
    training scaled with it)."""
    config = speedrun_config()
    full_steps = config.steps
    VARIANTS[name][1](config)
    config.name = f"{name}_seed{seed}"
    config.seed = seed
    config.data.data_dir = data_dir
    config.steps = steps
    config.optimizer.warmup_steps = max(1, round(config.optimizer.warmup_steps * steps / full_steps))
    config.model.layers = [  # the whitening bias's training too: the recipe's first 3 of 9.9 epochs
        dict(layer, bias_steps=max(1, round(layer["bias_steps"] * steps / full_steps))) if layer.get("bias_steps")
        else layer for layer in config.model.layers
    ]  # fmt: skip
    config.eval_tta = config.eval_tta if tta else 0
    config.keep_steps = (steps,)
    config.eval_every = config.checkpoint_every = config.summary_every = steps
    config.log_every = max(1, min(config.log_every, steps))
    return config


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data_dir", required=True, help="CIFAR-10 binary tarball or folder")
    parser.add_argument("--steps", type=int, default=476, help="steps per variant (the recipe: 476)")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of {', '.join(VARIANTS)}")
    parser.add_argument("--tta", action="store_true", help="also evaluate with test-time augmentation (6 views)")
    parser.add_argument("--out", default="logs/ablation", help="run folders and results.json")
    parser.add_argument("--onednn", default="auto", choices=cpu.ONEDNN_CHOICES, help="as the trainer's flag")
    args = parser.parse_args(argv)
    names = args.variants.split(",")
    unknown = sorted(set(names) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variant(s) {unknown}; known: {', '.join(VARIANTS)}")
    from vizdeconv.training.loop import train_and_evaluate

    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "results.json")
    results = json.load(open(path)) if os.path.exists(path) else []
    done = {(r["variant"], r["seed"], r["steps"]) for r in results}
    for seed in [int(s) for s in args.seeds.split(",")]:
        for name in names:
            if (name, seed, args.steps) in done:
                continue
            config = variant_config(name, os.path.abspath(args.data_dir), args.steps, seed, args.tta)
            start = time.perf_counter()
            metrics = train_and_evaluate(config, os.path.join(args.out, f"{config.name}_{args.steps}"), log=print)
            seconds = round(time.perf_counter() - start)
            record = {"variant": name, "seed": seed, "steps": args.steps, "accuracy": metrics["test_accuracy"],
                      "accuracy_tta": metrics.get("test_accuracy_tta"), "seconds": seconds}  # fmt: skip
            results.append(record)
            json.dump(results, open(path, "w"), indent=1)
            print(json.dumps(record), flush=True)
    table(results, args.steps)
    return 0


def table(results, steps: int) -> None:
    rows = {}
    for record in results:
        if record["steps"] == steps:
            rows.setdefault(record["variant"], []).append(record["accuracy"])
    full = np.mean(rows["full"]) if "full" in rows else None
    print(f"| variant ({steps} steps) | what changes | test accuracy (mean of seeds) | vs full |")
    print("|---|---|---|---|")
    for name, accuracies in rows.items():
        difference = "" if full is None or name == "full" else f"{np.mean(accuracies) - full:+.4f}"
        print(f"| {name} | {VARIANTS[name][0]} | {np.mean(accuracies):.4f} (n={len(accuracies)}) | {difference} |")


if __name__ == "__main__":
    sys.exit(main())
