"""Which numerics train fastest on this CPU: oneDNN on and off, float32 and bfloat16, thread counts, and
Keras `model.fit`, for the reference and the deep network, side by side in one run.

  python scripts/bench_numerics.py --networks cifar,deep --num_batches 20 --json numerics.json
  python scripts/bench_numerics.py --emulate_avx2   # also oneDNN restricted to AVX2 kernels

oneDNN is chosen when TensorFlow is imported, so each variant is one `python -m vizdeconv.bench --what
train_step` child process (`--onednn on|off`, `--precision`, TF_NUM_INTRAOP_THREADS /
TF_NUM_INTEROP_THREADS). `--rounds 2` runs every variant twice, interleaved, and keeps each one's faster
round, so a burst of load on a shared machine does not decide the comparison. `--emulate_avx2` adds
oneDNN limited to its AVX2 kernels (`ONEDNN_MAX_CPU_ISA=AVX2`): on an AVX-512 machine that is the path
an AVX2-only CPU would take (TensorFlow's own Eigen kernels are built for AVX either way), so the
oneDNN-on-AVX2 decision can be measured without such a CPU. The table prints s/step, images/s, GFLOP/s
and the share of the nominal peak, with each variant's ratio to TensorFlow's default.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vizdeconv.hardware import cpu  # noqa: E402  (no TensorFlow here: every variant is a child process)


def variants(kind: str, emulate_avx2: bool) -> list[dict]:
    """(label, bench flags, environment) of each variant on a CPU kind."""
    bf16 = kind in ("AMX", "AVX512-BF16")
    found = [dict(label="default (auto)", flags=["--onednn", "auto", "--precision", "auto"], env={}, keras=True)]
    for onednn in ("on", "off"):
        found.append(dict(label=f"oneDNN {onednn}, float32", flags=["--onednn", onednn, "--precision", "float32"]))
        if bf16:
            found.append(
                dict(label=f"oneDNN {onednn}, bfloat16", flags=["--onednn", onednn, "--precision", "bfloat16"])
            )
    if emulate_avx2:
        found.append(
            dict(
                label="oneDNN on, AVX2 kernels only, float32",
                flags=["--onednn", "on", "--precision", "float32"],
                env={"ONEDNN_MAX_CPU_ISA": "AVX2"},
            )
        )
    cores = os.cpu_count() or 1
    for intra, inter in ((cores, 1), (1, cores)):
        found.append(
            dict(
                label=f"default, {intra} intra-op / {inter} inter-op threads",
                flags=["--onednn", "auto", "--precision", "auto"],
                env={"TF_NUM_INTRAOP_THREADS": str(intra), "TF_NUM_INTEROP_THREADS": str(inter)},
            )
        )
    for variant in found:
        variant.setdefault("env", {})
        variant.setdefault("keras", False)
    return found


def run_variant(network: str, variant: dict, args, folder: str) -> list[dict]:
    """The bench records of one variant (the trainer's step, and Keras model.fit where asked)."""
    out = os.path.join(folder, "report.json")
    command = [sys.executable, "-m", "vizdeconv.bench", "--what", "train_step", "--network", network,
               "--num_batches", str(args.num_batches), "--steps_per_call", str(args.steps_per_call),
               "--json", out, *variant["flags"]]  # fmt: skip
    if variant["keras"]:
        command += ["--baseline", "keras"]
    environ = {k: v for k, v in os.environ.items() if k not in (cpu.ENV, cpu.REASON_ENV)}
    environ.update(variant["env"], TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(command, capture_output=True, text=True, env=environ)
    if result.returncode:
        raise SystemExit(f"{variant['label']} on {network} failed: {result.stderr.strip().splitlines()[-1:]}")
    with open(out) as handle:
        report = json.load(handle)
    records = []
    for record in report["results"]:
        label = variant["label"] if record.get("variant") != "keras_fit" else "Keras model.fit, default"
        records.append(
            dict(record, network=network, label=label, precision=report["precision"], machine=report["machine"])
        )
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--networks", default="cifar,deep")
    parser.add_argument("--num_batches", type=int, default=20)
    parser.add_argument("--steps_per_call", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--emulate_avx2", action="store_true")
    parser.add_argument("--json")
    args = parser.parse_args()
    kind = cpu.cpu_kind(cpu.cpu_flags())
    print(f"cpu {cpu.cpu_model()} ({kind}, {os.cpu_count()} cores, nominal {cpu.nominal_mhz():.0f} MHz)")
    best = {}
    with tempfile.TemporaryDirectory() as folder:
        for round_index in range(args.rounds):
            for network in args.networks.split(","):
                for variant in variants(kind, args.emulate_avx2):
                    for record in run_variant(network, variant, args, folder):
                        key = (network, record["label"])
                        shown = f"{network:5s} {record['label']:45s} {record['mean_s']:.4f} s/step"
                        print(f"round {round_index + 1}: {shown}", flush=True)
                        if key not in best or record["mean_s"] < best[key]["mean_s"]:
                            best[key] = record
    print()
    print("| network | variant | precision | oneDNN | s/step | images/s | GFLOP/s | share of peak | vs default |")
    print("|---|---|---|---|---|---|---|---|---|")
    for (network, label), record in best.items():
        default = best[(network, "default (auto)")]["mean_s"]
        share = record.get("share_of_peak")
        onednn = "on" if record["machine"]["onednn"] else "off"
        print(
            f"| {network} | {label} | {record['precision']} | {onednn} | {record['mean_s']:.4f} | "
            f"{record['images_per_s']:.0f} | {record['gflop_per_s']:.0f} | "
            f"{'' if share is None else f'{100 * share:.1f}%'} | {default / record['mean_s']:.2f}x |"
        )
    if args.json:
        with open(args.json, "w") as handle:
            json.dump([dict(r, network=n) for (n, _), r in best.items()], handle, indent=1)


if __name__ == "__main__":
    main()
