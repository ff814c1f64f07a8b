"""The settings of `vizdeconv bench` (its flags are derived from these fields)."""

import dataclasses

from vizdeconv.bench import NETWORKS, PHASES
from vizdeconv.config import PRECISIONS
from vizdeconv.options import option


@dataclasses.dataclass(kw_only=True)
class BenchOptions:
    """What to time and how (see `benchmark`)."""

    network: str = option("cifar", "what to time", choices=NETWORKS)
    batch_size: int = option(128, "images per batch")
    num_batches: int = option(100, "batches timed")
    precision: str = option("auto", "float32, mixed bfloat16, or auto (what the hardware runs natively)",
                            choices=PRECISIONS)  # fmt: skip
    what: str | None = option(None, "one phase (default: forward and forward_backward)", choices=PHASES)
    with_data: bool = option(False, "train_step: include the input pipeline")
    data_dir: str = option("", "train_step --with_data: real CIFAR-10 (else random)")
    steps_per_call: int = option(1, "train_step: optimizer steps per compiled call (the trainer runs up to "
                                    "log_every); timings stay per step")  # fmt: skip
    json: str | None = option(None, "also write the figures to this JSON file")
    baseline: str | None = option(
        None,
        "train_step: 'keras' also times the same network and recipe with Keras model.fit in this process; a path "
        "runs that TF1-graph yardstick script (batch 128, float32) for --num_batches steps; prints the speed ratio",
    )
