"""A small search over optimisation recipes for a config: short runs, one after another, one table.

    python scripts/search_recipe.py --data_dir ../shared/cifar10 --steps 2000 [--out logs/search]

Each candidate is `python train.py` with a few `--config.FIELD=VALUE` overrides of the base config,
trained for --steps with its own schedule completed in that many steps (so a cosine schedule decays
fully), then evaluated on all 10,000 test images. Results go to OUT/results.json and a Markdown table on
stdout: the candidate, its test accuracy, its wall time and the seconds per step.
"""

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")

# Adam is invariant to the loss scale, so the reference's summed loss and 1e-4 is a small step; the
# candidates average the loss, raise the rate and let a cosine schedule bring it down.
CANDIDATES = {
    "reference": {},
    "adam1e-3_cos": {
        "loss.reduction": "mean",
        "loss.weight_decay": 5e-4,
        "optimizer.learning_rate": 1e-3,
        "optimizer.schedule": "cosine",
        "optimizer.warmup_steps": 200,
    },
    "adam3e-3_cos": {
        "loss.reduction": "mean",
        "loss.weight_decay": 5e-4,
        "optimizer.learning_rate": 3e-3,
        "optimizer.schedule": "cosine",
        "optimizer.warmup_steps": 200,
    },
    "momentum0.05_cos": {
        "loss.reduction": "mean",
        "loss.weight_decay": 5e-4,
        "optimizer.name": "momentum",
        "optimizer.learning_rate": 0.05,
        "optimizer.schedule": "cosine",
        "optimizer.warmup_steps": 200,
    },
}


def run_candidate(name, overrides, args) -> dict:
    workdir = os.path.join(args.out, name)
    command = [
        sys.executable,
        os.path.join(ROOT, "train.py"),
        "--config",
        args.config,
        "--steps",
        str(args.steps),
        "--data_dir",
        args.data_dir,
        "--workdir",
        workdir,
        "--config.summary_every=100000",
    ]
    command += [f"--config.{field}={value}" for field, value in overrides.items()]
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT)
    seconds = time.perf_counter() - start
    with open(os.path.join(workdir, "metrics.json")) as f:
        metrics = json.load(f)
    return {
        "name": name,
        "overrides": overrides,
        "steps": args.steps,
        "test_accuracy": metrics["test_accuracy"],
        "wall_seconds": round(seconds, 1),
        "seconds_per_step": round(metrics["train_seconds_this_session"] / args.steps, 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data_dir", required=True)
    parser.add_argument("--config", default=os.path.join(ROOT, "configs", "default.py"))
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--out", default=os.path.join("logs", "search"))
    parser.add_argument("--only", nargs="*", default=None, help="candidate names (default: all)")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    results = []
    for name, overrides in CANDIDATES.items():
        if args.only and name not in args.only:
            continue
        results.append(run_candidate(name, overrides, args))
        with open(os.path.join(args.out, "results.json"), "w") as f:
            json.dump(results, f, indent=2)
    print("| candidate | steps | test accuracy | wall s | s/step |\n|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['name']} | {r['steps']} | {r['test_accuracy']:.4f} | {r['wall_seconds']} | {r['seconds_per_step']} |"
        )


if __name__ == "__main__":
    main()
