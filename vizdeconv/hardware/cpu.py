"""What the CPU is and which numerics run fastest on it, decided before TensorFlow is imported.

TensorFlow reads `TF_ENABLE_ONEDNN_OPTS` once, when it is imported: oneDNN's kernels are on by default on
CPUs with AVX-512 VNNI / BF16 / AMX and off elsewhere (AVX2-only laptops and cloud CPUs run Eigen's). The
commands call `configure_onednn` first thing, so `--onednn auto` can turn oneDNN on where it was
measured faster than TensorFlow's default, `--onednn on|off` overrides, and a `TF_ENABLE_ONEDNN_OPTS` the
user set is kept. This module never imports TensorFlow.
"""

import os
import sys

ONEDNN_CHOICES = ("auto", "on", "off")
ENV = "TF_ENABLE_ONEDNN_OPTS"
REASON_ENV = "VIZDECONV_ONEDNN"  # why the setting was chosen, for the progress headers (and child processes)

# oneDNN's float32 training step against Eigen's, measured by `python scripts/bench_numerics.py` (README,
# "Training time per CPU"): where oneDNN wins, auto turns it on; None keeps TensorFlow's default.
ONEDNN_AUTO = {
    "AMX": True,  # TensorFlow's default too; bfloat16 needs it
    "AVX512-BF16": True,  # TensorFlow's default too; bfloat16 needs it
    "AVX-512": None,
    "AVX2": True,  # oneDNN capped at AVX2 on a Xeon: 1.67x Eigen (reference net), equal (deep net)
    "other": None,
}


def cpu_info(cpuinfo_path: str = "/proc/cpuinfo") -> dict:
    """The first processor's fields of /proc/cpuinfo (empty where it cannot be read)."""
    fields = {}
    try:
        with open(cpuinfo_path) as handle:
            for line in handle:
                if not line.strip():
                    break
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    return fields


def cpu_flags(cpuinfo_path: str = "/proc/cpuinfo") -> set[str]:
    """The CPU feature flags Linux reports (empty where /proc/cpuinfo is unavailable)."""
    return set(cpu_info(cpuinfo_path).get("flags", "").split())


def cpu_model(cpuinfo_path: str = "/proc/cpuinfo") -> str:
    """The CPU's model name as Linux reports it ("unknown" elsewhere)."""
    return cpu_info(cpuinfo_path).get("model name", "unknown")


def cpu_kind(flags: set[str]) -> str:
    """ "AMX", "AVX512-BF16", "AVX-512", "AVX2" or "other": the widest matrix path the flags offer."""
    for flag, name in (("amx_bf16", "AMX"), ("avx512_bf16", "AVX512-BF16"), ("avx512f", "AVX-512"), ("avx2", "AVX2")):
        if flag in flags:
            return name
    return "other"


def choose_onednn(choice: str, environ=None, kind: str | None = None) -> tuple[bool | None, str]:
    """The oneDNN setting for `--onednn choice` and why.

    Returns:
      (True / False: set TF_ENABLE_ONEDNN_OPTS to 1 / 0; None: leave TensorFlow's default, reason).
    Raises:
      ValueError for a choice other than auto, on, off.
    """
    if choice not in ONEDNN_CHOICES:
        raise ValueError(f"--onednn must be one of {', '.join(ONEDNN_CHOICES)}, got {choice!r}")
    environ = os.environ if environ is None else environ
    if choice != "auto":
        return choice == "on", f"--onednn {choice}"
    if environ.get(ENV, "") != "" and REASON_ENV not in environ:
        return environ[ENV] not in ("0", "false", "False"), f"{ENV}={environ[ENV]} in the environment"
    kind = kind or cpu_kind(cpu_flags())
    setting = ONEDNN_AUTO.get(kind)
    if setting is None:
        return None, f"TensorFlow's default for {kind} CPUs"
    return setting, f"auto: measured fastest on {kind} CPUs"


def flag_value(argv, name: str = "--onednn", default: str = "auto") -> str:
    """The value of `--name V` / `--name=V` in a command line (the last one wins), before any parser runs."""
    value = default
    for index, arg in enumerate(argv):
        if arg.startswith(name + "="):
            value = arg.split("=", 1)[1]
        elif arg == name and index + 1 < len(argv):
            value = argv[index + 1]
    return value


def configure_onednn(choice: str = "auto", environ=None) -> str:
    """Sets TF_ENABLE_ONEDNN_OPTS for `choice` before TensorFlow is imported; returns the reason.

    Raises:
      ValueError for a bad choice, or when TensorFlow is already imported with another setting (it reads
      the variable once).
    """
    environ = os.environ if environ is None else environ
    setting, why = choose_onednn(choice, environ)
    if setting is None:
        environ.pop(ENV, None) if REASON_ENV in environ else None
    else:
        wanted = "1" if setting else "0"
        if environ is os.environ and "tensorflow" in sys.modules and environ.get(ENV) != wanted:
            raise ValueError(f"--onednn {choice}: TensorFlow is already imported; choose it before importing it")
        environ[ENV] = wanted
    environ[REASON_ENV] = why
    return why


def onednn_header(enabled: bool, environ=None) -> str:
    """`oneDNN on (auto: measured fastest on AVX2 CPUs)` for progress headers."""
    environ = os.environ if environ is None else environ
    why = environ.get(REASON_ENV) or (f"{ENV}={environ[ENV]}" if environ.get(ENV) else "TensorFlow's default")
    return f"oneDNN {'on' if enabled else 'off'} ({why})"


# Peak FLOPs per cycle per core (a multiply-add counts 2) of the widest units each path uses, by vendor:
# Intel server cores have two 512-bit FMA units; AMD Zen 4 runs 512-bit instructions on two 256-bit units.
_PEAK_PER_CYCLE = {
    ("AMX", "bfloat16"): 1024,  # AMX TMUL: 512 bf16 multiply-adds per cycle
    ("AVX512-BF16", "bfloat16"): 128,  # VDPBF16PS on two 512-bit units
    ("AVX-512", "float32"): 64,
    ("AVX2", "float32"): 32,  # two 256-bit FMA units
}


def peak_gflops(kind: str, dtype: str, cores: int, mhz: float, vendor: str = "") -> float | None:
    """Nominal peak GFLOP/s of `cores` cores at `mhz` for convolutions in `dtype` on a CPU kind, or None
    where unknown. bfloat16 on a kind without a bfloat16 path counts as float32; AMD halves the 512-bit
    figures (Zen 4 splits them over 256-bit units)."""
    if kind in ("AMX", "AVX512-BF16") and dtype == "float32":
        key = ("AVX-512", "float32")
    elif dtype == "bfloat16" and kind in ("AMX", "AVX512-BF16"):
        key = (kind, "bfloat16")
    else:
        key = (kind, "float32")
    per_cycle = _PEAK_PER_CYCLE.get(key)
    if per_cycle is None or not mhz:
        return None
    if vendor == "AuthenticAMD" and key[0] != "AVX2":
        per_cycle //= 2
    return cores * mhz * per_cycle / 1e3


def nominal_mhz(cpuinfo_path: str = "/proc/cpuinfo") -> float:
    """The clock Linux reports for the first core, MHz (0.0 where unknown); under a hypervisor the nominal
    clock, so turbo can run faster than the peak this gives."""
    try:
        return float(cpu_info(cpuinfo_path).get("cpu MHz", 0.0))
    except ValueError:
        return 0.0
