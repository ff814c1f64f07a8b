"""Chooses float32 or mixed bfloat16 for the convolutions (variables, logits and loss stay float32)."""

import os

import tensorflow as tf

from vizdeconv.hardware.cpu import cpu_flags, cpu_kind, cpu_model

PRECISIONS = ("auto", "float32", "bfloat16")  # a config's `precision`; auto asks the hardware
_CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")


def hardware(cpuinfo_path: str = "/proc/cpuinfo") -> dict:
    """What decides the speed of a run, for benchmark headers and JSON.

    Returns:
      dict: cpu (model name), cpu_kind ("AMX", "AVX512-BF16", "AVX-512", "AVX2" or "other"),
      cores (logical CPUs TensorFlow can use), gpu (name or None), onednn (TensorFlow's oneDNN
      kernels on), bf16_path (how bfloat16 convolutions would run here).
    """
    kind = cpu_kind(cpu_flags(cpuinfo_path))
    gpus = tf.config.list_physical_devices("GPU")
    gpu = tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU") if gpus else None
    onednn = onednn_enabled()
    if gpu:
        path = f"GPU ({gpu})" + ("" if native_bfloat16(cpuinfo_path) else ", no native bfloat16")
    elif kind in ("AMX", "AVX512-BF16"):
        path = f"native: oneDNN {kind} kernels" if onednn else f"{kind} present but oneDNN is off"
    else:
        path = "none native: bfloat16 would be emulated in float32 (precision auto picks float32)"
    return {
        "cpu": cpu_model(cpuinfo_path),
        "cpu_kind": kind,
        "cores": os.cpu_count(),
        "gpu": gpu,
        "onednn": onednn,
        "bf16_path": path,
    }


def native_bfloat16(cpuinfo_path: str = "/proc/cpuinfo") -> bool:
    """True when the hardware runs bfloat16 matrix math natively (Ampere+ GPUs, AMX / AVX512-BF16)."""
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        capability = tf.config.experimental.get_device_details(gpus[0]).get("compute_capability")
        return bool(capability) and tuple(capability) >= (8, 0)
    # Without oneDNN, TensorFlow's CPU kernels emulate bfloat16 in float32, slower than float32 itself.
    return bool(cpu_flags(cpuinfo_path) & set(_CPU_BF16_FLAGS)) and onednn_enabled()


def onednn_enabled() -> bool:
    """Whether TensorFlow runs its oneDNN CPU kernels in this process (decided when it was imported)."""
    from tensorflow.python.util import _pywrap_util_port

    return bool(_pywrap_util_port.IsMklEnabled())


def resolve(precision: str) -> str:
    """'float32' or 'bfloat16' for a config's precision ('auto' asks the hardware)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "auto":
        return "bfloat16" if native_bfloat16() else "float32"
    return precision


def compute_dtype(precision: str) -> tf.DType:
    return tf.bfloat16 if resolve(precision) == "bfloat16" else tf.float32
