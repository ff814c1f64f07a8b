"""Chooses float32 or mixed bfloat16 for the convolutions (variables, logits and loss stay float32)."""
import tensorflow as tf

CHOICES = ("auto", "float32", "bfloat16")
_CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")


def cpu_flags(cpuinfo_path: str = "/proc/cpuinfo") -> set[str]:
    """The CPU feature flags Linux reports (empty where /proc/cpuinfo is unavailable)."""
    try:
        with open(cpuinfo_path) as handle:
            for line in handle:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def native_bfloat16(cpuinfo_path: str = "/proc/cpuinfo") -> bool:
    """True when the hardware runs bfloat16 matrix math natively (Ampere+ GPUs, AMX / AVX512-BF16)."""
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        capability = tf.config.experimental.get_device_details(gpus[0]).get("compute_capability")
        return bool(capability) and tuple(capability) >= (8, 0)
    return bool(cpu_flags(cpuinfo_path) & set(_CPU_BF16_FLAGS))


def resolve(precision: str) -> str:
    """'float32' or 'bfloat16' for a config's precision ('auto' asks the hardware)."""
    if precision not in CHOICES:
        raise ValueError(f"precision must be one of {', '.join(CHOICES)}, got {precision!r}")
    if precision == "auto":
        return "bfloat16" if native_bfloat16() else "float32"
    return precision


def compute_dtype(precision: str) -> tf.DType:
    return tf.bfloat16 if resolve(precision) == "bfloat16" else tf.float32
