"""The config schema: every field of a run with its default, the choices each option accepts, and the
checks that run before anything else. Recipes in `configs/` start from `default_config()` and override a
few fields; the library never imports `configs/`.

The option lists here are the one home of each vocabulary: the trainer, the command lines and the error
messages read their choices from them.
"""

import math
import os

import ml_collections

from vizdeconv.data.pipeline import FLIPS
from vizdeconv.hardware import precision
from vizdeconv.hardware.distribute import STRATEGIES
from vizdeconv.hardware.precision import PRECISIONS
from vizdeconv.methods.reconstruct import MODES, RECTIFY
from vizdeconv.nn.convnet import layer_specs
from vizdeconv.nn.initializers import TRUNCATED_STDDEV
from vizdeconv.nn.preprocess import NORMALIZATIONS

REDUCTIONS = ("sum", "mean")
OPTIMIZERS = ("adam", "sgd", "momentum", "muon")
SCHEDULES = ("constant", "cosine", "step", "triangle")
SPLITS = ("test", "train")
TTA_LEVELS = (0, 1, 2)  # test-time augmentation: none, mirror, mirror and two 1-pixel moves (training.steps)
RECTIFY_HELP = ("relu: the rule at ReLUs, other activations (silu, gelu, ...) pass their own gradient; all: the "
                "ReLU rule at every activation (default: the run's reconstruction.rectify, else relu)")  # fmt: skip


def reference_layers() -> list[dict]:
    """conv1 5x5 3->64 + pool1 2x2/2, conv2 5x5 64->64 + pool2 2x2/2, conv3 5x5 64->10."""
    return [
        dict(name="conv1", kernel=5, filters=64, pool=2),
        dict(name="conv2", kernel=5, filters=64, pool=2),
        dict(name="conv3", kernel=5, filters=10),
    ]


def deep_layers(batch_norm: bool = True) -> list[dict]:
    """conv1_1/conv1_2 64, pool1; conv2_1/conv2_2 128, pool2; conv3_1/conv3_2 256, pool3 (3x3 convs, each
    batch-normalized); conv4 1x1 -> 10 classes, not rectified (rectified logits die and stop learning).
    He-scaled initial kernels (stddev sqrt(2 / fan_in))."""

    def conv(name: str, kernel: int, filters: int, fan_in: int, pool: int = 0) -> dict:
        stddev = math.sqrt(2.0 / (kernel * kernel * fan_in))
        return dict(name=name, kernel=kernel, filters=filters, pool=pool, init_stddev=stddev, batch_norm=batch_norm)

    return [
        conv("conv1_1", 3, 64, 3),
        conv("conv1_2", 3, 64, 64, pool=2),
        conv("conv2_1", 3, 128, 64),
        conv("conv2_2", 3, 128, 128, pool=2),
        conv("conv3_1", 3, 256, 128),
        conv("conv3_2", 3, 256, 256, pool=2),
        dict(conv("conv4", 1, 10, 256), rectify=False, batch_norm=False),
    ]


def speedrun_layers(
    widths=(64, 256, 256),
    whiten: bool = True,
    identity: bool = True,
    after_pool: bool = False,
    he: bool = False,
    activation: str = "gelu",
    norm_epsilon: float = 1.001e-5,
    whiten_bias_steps: int = 144,
    pool_first: bool = True,
) -> list[dict]:
    """airbench94's network as argmax-pooling layers (configs/speedrun.py): a 2x2 whitening conv (24 filters,
    VALID, frozen; `whiten=False` trains it from a He-scaled start instead), then three stages of two 3x3
    convs of `widths`, each batch-normalized with a fixed scale (moving statistics at momentum 0.6, which
    follow its fast steps) and, with `identity`, its first filters the identity; a 2x2 VALID argmax pool
    after each stage's first conv and a 3x3 one after the last conv (31 -> 15 -> 7 -> 3 -> 1); a 1x1 class
    conv, not rectified, at 1/9 of a kernel's start and 1/81 of the rate (airbench's linear head times 1/9).

    The defaults are airbench94's choices. `activation` GELU, x Phi(x) (the projections pass its gradient
    unless `reconstruction.rectify` is "all", which configs/speedrun.py sets); "relu" for the deconvnet's own
    rectifier. `pool_first` puts each stage's 2x2 pool between its first conv and that conv's normalization,
    airbench's conv -> pool -> norm -> activation, at inference too (with ReLU the same map as pooling the
    rectified map, with GELU, not monotone, a different one); False pools after the activation, and
    `after_pool` then still takes the training statistics from the pooled maps. `norm_epsilon` is batch
    normalization's (airbench's 1e-12 is below TF's fused kernel's floor, 1.001e-5, and below any variance
    here). `whiten_bias_steps` N > 0 starts the whitening bias at 0 and trains it for the first N steps
    only (airbench: 3 epochs, 144 steps); 0 trains it throughout from 0.1.

    The initial scales are PyTorch's defaults, which airbench keeps: a kernel's standard deviation
    1 / sqrt(3 fan_in) (its uniform draw's), the head's that over 9. They set the effective rate: behind a
    batch normalization a kernel's step shrinks as its norm grows, and the head's scale multiplies every
    gradient the body gets. `he` starts the 3x3 kernels He-normal (sqrt(2 / fan_in), 2.4x larger) and the
    head at 1/9 (28x larger) instead, the first translation of the recipe, which trains about 4x too fast.

    Returns: the layer dicts of `config.model.layers`."""

    def scale(fan_in: int) -> float:  # the truncated normal's deviation is 0.88 of its parameter
        return math.sqrt(2.0 / fan_in) if he else 1.0 / math.sqrt(3.0 * fan_in) / TRUNCATED_STDDEV

    def conv(name: str, filters: int, fan_in: int, pool: int = 0) -> dict:
        return dict(name=name, kernel=3, filters=filters, pool=pool, pool_padding="VALID",
                    init_stddev=scale(9 * fan_in), batch_norm=True, norm_scale=False,
                    norm_momentum=0.6, norm_after_pool=after_pool and pool == 2 and not pool_first,
                    pool_first=pool_first and pool == 2, norm_epsilon=norm_epsilon,
                    init="identity" if identity else "normal", activation=activation)  # fmt: skip

    first = dict(name="whiten", kernel=2, filters=24, padding="VALID", init_stddev=math.sqrt(2.0 / 12),
                 activation=activation)  # fmt: skip
    if whiten:
        first.update(init="whiten", trainable=False)
    if whiten_bias_steps:
        first.update(bias_init=0.0, bias_steps=int(whiten_bias_steps))
    one, two, three = widths
    head_scale = 1.0 if he else scale(three)
    return [
        first,
        conv("conv1_1", one, 24, pool=2),
        conv("conv1_2", one, one),
        conv("conv2_1", two, one, pool=2),
        conv("conv2_2", two, two),
        conv("conv3_1", three, two, pool=2),
        conv("conv3_2", three, three, pool=3),
        dict(name="head", kernel=1, filters=10, rectify=False, init_stddev=head_scale / 9, rate_scale=1 / 81),
    ]


def default_config() -> ml_collections.ConfigDict:
    """The reference setup: the 3-layer argmax-pooling net on CIFAR-10 at 24x24 (configs/default.py)."""
    config = ml_collections.ConfigDict()
    config.name = "default"  # the run folder is <logdir>/<name> unless --run is given
    config.seed = 0  # weights, data order and augmentation; saved, so resume is exact
    config.steps = 15000  # total optimizer steps (--steps)
    config.batch_size = 128  # global batch, split across replicas
    config.eval_batch_size = 1000
    config.precision = "auto"  # auto | float32 | bfloat16 (mixed: float32 variables and loss)
    config.strategy = "default"  # default | mirrored | multi_worker | tpu
    config.devices = ""  # comma-separated device list for the mirrored strategy

    config.data = ml_collections.ConfigDict()
    config.data.data_dir = ""  # CIFAR-10 binary tarball or folder; empty: TensorFlow Datasets
    config.data.tfds_data_dir = ""  # where tfds keeps its copy (empty: the tfds default)
    config.data.image_size = 24  # random crop (train) / central crop (eval) of the 32x32 images
    config.data.limit = 0  # use only the first N training images (0: all); for tests
    config.data.flip = "random"  # random | alternating (each image mirrored every other epoch)
    config.data.translate = 0  # pad by this many mirrored pixels before the random crop (0: crop only)
    config.data.normalize = "image"  # image: per-image standardization | dataset: (x - mean) / std per channel
    config.data.mean = (0.4913, 0.4821, 0.4465)  # dataset: CIFAR-10 training split's, pixels in 0..1
    config.data.std = (0.2452, 0.2428, 0.2606)

    config.model = ml_collections.ConfigDict()
    config.model.layers = reference_layers()

    config.loss = ml_collections.ConfigDict()
    config.loss.reduction = "sum"  # sum | mean cross-entropy over the batch
    config.loss.weight_decay = 1.0  # coefficient of sum(l2_loss(kernel)) over conv kernels (and decay_offsets)
    config.loss.label_smoothing = 0.0  # the target puts this mass uniformly over the classes
    config.loss.decay_offsets = False  # the weight penalty also covers batch normalization's offsets (airbench's)

    config.optimizer = ml_collections.ConfigDict()
    config.optimizer.name = "adam"  # adam | sgd | momentum | muon (training/optimizers.py)
    config.optimizer.learning_rate = 1e-4
    config.optimizer.schedule = "constant"  # constant | cosine | step
    config.optimizer.warmup_steps = 0
    config.optimizer.decay_factor = 0.1  # step: multiply the rate at each boundary; triangle: the last rate's share
    config.optimizer.decay_every = 5000  # step schedule: boundary spacing in steps
    config.optimizer.momentum = 0.9  # momentum and muon: the momentum coefficient
    config.optimizer.nesterov = False  # momentum: Nesterov's look-ahead gradient (muon always takes it)
    config.optimizer.norm_bias_scale = 1.0  # multiplies batch normalization offsets' gradients (airbench: 64)
    config.optimizer.lookahead_every = 0  # Lookahead around the optimizer: sync every k steps (0: off)
    config.optimizer.lookahead_alpha = 0.5  # Lookahead: how far the slow weights move at a sync (at the end)
    config.optimizer.lookahead_power = 0.0  # Lookahead: > 0 pulls 1 - (1 - alpha) (step / steps)^power (airbench: 3)
    config.optimizer.lookahead_statistics = False  # Lookahead also averages batch normalization's moving statistics

    config.log_every = 200  # progress line and scalar summaries
    config.eval_every = 1000  # eval accuracy on the whole test split
    config.eval_tta = 0  # final evaluation also with test-time augmentation: 1 mirror, 2 mirror + 1-pixel moves
    # at the last step, batch normalization's moving statistics become the mean batch statistics of this many
    # training images (unaugmented, in batches of batch_size; "precise BN"); 0: the statistics as trained
    config.norm_statistics_images = 0
    config.checkpoint_every = 1000
    config.keep_checkpoints = 3  # rolling: the newest N checkpoints
    config.keep_steps = (250, 500, 1000, 2000, 5000, 10000)  # kept forever (and the last), for evolution

    config.summary_every = 1000  # deconvnet reconstructions of the probe batch
    config.reconstruction = ml_collections.ConfigDict()
    config.reconstruction.mode = "deconvnet"  # deconvnet | bias_subtract | guided
    config.reconstruction.probes = 8  # fixed test images projected at every summary step
    config.reconstruction.top_k = 16  # strongest feature maps shown one by one
    config.reconstruction.display_scale = 4  # nearest-neighbour upscaling of the 24x24 panels
    config.reconstruction.clip_percentile = 0.0  # 0: min-max scaling; e.g. 1.0 clips 1% tails
    # where the mode's rule replaces the gradient: relu (ReLUs only) | all (every activation, e.g. GELU); the
    # run's default for the trainer's pictures, the explorer and the analyses
    config.reconstruction.rectify = "relu"
    return config


def speedrun_config(widths=(64, 256, 256), epochs: float = 9.9, rate: float = 11.5) -> ml_collections.ConfigDict:
    """configs/speedrun.py: airbench94's recipe (Jordan 2024) on `speedrun_layers()` at 32x32, each channel
    normalized by the training split's mean and deviation. Nesterov SGD (momentum 0.85) over summed,
    label-smoothed (0.2) cross-entropy, batch 1024, 476 steps (9.9 epochs of 48 full batches), the
    triangular rate (0.2 -> 1 at 23% -> 0.07), batch normalization's offsets at 64x the rate, weight and
    moving-statistics averaging every 5 steps (Lookahead, pull 1 - 0.774 (t/T)^3, ending on the average),
    the alternating flip, translation by up to 2 pixels, and test-time augmentation (mirror and two 1-pixel
    moves) at the end. Its pictures apply the deconvnet's rule at the GELUs (`reconstruction.rectify`).

    `widths`, `epochs` and `rate` (airbench's, per 1,024 examples) give its larger siblings: airbench95 is
    widths (128, 384, 384), 15 epochs, rate 10 (configs/speedrun95.py)."""
    config = default_config()
    config.name = "speedrun"
    config.model.layers = speedrun_layers(widths)
    config.reconstruction.rectify = "all"  # the deconvnet's rule at the GELUs: pictures, not gradients
    config.data.image_size = 32
    config.data.normalize = "dataset"
    config.data.translate = 2
    config.data.flip = "alternating"
    config.batch_size = 1024
    config.steps = math.ceil(epochs * (50000 // 1024))  # airbench's: epochs of its 48 full batches (9.9: 476)
    config.loss.reduction = "sum"
    config.loss.label_smoothing = 0.2
    config.loss.decay_offsets = True  # airbench decays every parameter, its offsets at the kernels' decay
    # airbench's decoupled rate, `rate` (11.5) per 1,024 examples at momentum 0.85: rate / (1024 (1 + 1 / 0.15))
    config.optimizer.name = "momentum"
    config.optimizer.momentum = 0.85
    config.optimizer.nesterov = True
    config.optimizer.learning_rate = rate / (1024 * (1 + 1 / 0.15))
    config.optimizer.schedule = "triangle"
    config.optimizer.warmup_steps = int(0.23 * config.steps)  # the peak (airbench truncates: 109 of 476)
    config.optimizer.decay_factor = 0.07
    config.optimizer.norm_bias_scale = 64.0
    # its decoupled decay, 0.0153 per 1,024 examples, is the rate times the penalty's coefficient
    config.loss.weight_decay = 0.0153 * 1024 / rate
    config.optimizer.lookahead_every = 5
    config.optimizer.lookahead_alpha = 1 - 0.95**5
    config.optimizer.lookahead_power = 3.0
    config.optimizer.lookahead_statistics = True  # the moving statistics averaged too, as airbench's state dict
    config.eval_tta = 2
    config.eval_every = 100
    config.checkpoint_every = 100
    config.log_every = 20
    config.summary_every = 100
    config.keep_steps = (50, 100, 200, 300)
    config.reconstruction.display_scale = 3
    return config


get_config = default_config  # so this file is also the default `--config` of the trainer


def check_choice(what: str, value, choices) -> str:
    """`value` if it is one of `choices`, else ValueError listing them."""
    if value not in choices:
        raise ValueError(f"{what} must be one of {', '.join(choices)}, got {value!r}")
    return value


def _positive(config, *names):
    for name in names:
        value = config[name]
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def validate(config) -> None:
    """Raises ValueError naming the first bad field and what it accepts."""
    _positive(
        config,
        "steps",
        "batch_size",
        "eval_batch_size",
        "log_every",
        "eval_every",
        "checkpoint_every",
        "summary_every",
        "keep_checkpoints",
    )
    check_choice("precision", config.precision, PRECISIONS)
    if any(not isinstance(s, int) or s < 1 for s in config.keep_steps):
        raise ValueError(f"keep_steps must be positive step numbers, got {list(config.keep_steps)}")
    check_choice("strategy", config.strategy, STRATEGIES)
    check_choice("loss.reduction", config.loss.reduction, REDUCTIONS)
    check_choice("optimizer.name", config.optimizer.name, OPTIMIZERS)
    check_choice("optimizer.schedule", config.optimizer.schedule, SCHEDULES)
    if not config.optimizer.learning_rate > 0:
        raise ValueError("optimizer.learning_rate must be positive")
    if not 0 <= config.loss.label_smoothing < 1:
        raise ValueError(f"loss.label_smoothing must be in [0, 1), got {config.loss.label_smoothing}")
    if not (isinstance(config.optimizer.lookahead_every, int) and config.optimizer.lookahead_every >= 0):
        raise ValueError(
            f"optimizer.lookahead_every must be 0 (off) or a step count, got {config.optimizer.lookahead_every}"
        )
    if not 0 < config.optimizer.lookahead_alpha <= 1:
        raise ValueError(f"optimizer.lookahead_alpha must be in (0, 1], got {config.optimizer.lookahead_alpha}")
    if not config.optimizer.lookahead_power >= 0:
        raise ValueError(f"optimizer.lookahead_power must be 0 or more, got {config.optimizer.lookahead_power}")
    check_choice("reconstruction.mode", config.reconstruction.mode, MODES)
    check_choice("reconstruction.rectify", config.reconstruction.rectify, RECTIFY)
    if not 0 <= config.reconstruction.clip_percentile < 50:
        raise ValueError("reconstruction.clip_percentile must be in [0, 50)")
    check_choice("data.flip", config.data.flip, FLIPS)
    check_choice("data.normalize", config.data.normalize, NORMALIZATIONS)
    for name in ("mean", "std"):
        values = tuple(config.data[name])
        if len(values) != 3 or not all(isinstance(v, (int, float)) for v in values):
            raise ValueError(f"data.{name} must be 3 numbers (one per channel, pixels in 0..1), got {values}")
    if not all(v > 0 for v in config.data.std):
        raise ValueError(f"data.std must be positive, got {tuple(config.data.std)}")
    if not (isinstance(config.data.translate, int) and 0 <= config.data.translate <= 8):
        raise ValueError(f"data.translate must be a pixel count from 0 to 8, got {config.data.translate!r}")
    images = config.norm_statistics_images
    if not (isinstance(images, int) and (images == 0 or images >= config.batch_size)):
        raise ValueError(
            f"norm_statistics_images must be 0 (off) or at least batch_size ({config.batch_size}), got {images!r}"
        )
    if config.eval_tta not in TTA_LEVELS:
        raise ValueError(f"eval_tta must be 0 (none), 1 (mirror) or 2 (mirror and moves), got {config.eval_tta!r}")
    if not 0 <= config.optimizer.momentum < 1:
        raise ValueError(f"optimizer.momentum must be in [0, 1), got {config.optimizer.momentum}")
    if not config.optimizer.norm_bias_scale > 0:
        raise ValueError(f"optimizer.norm_bias_scale must be positive, got {config.optimizer.norm_bias_scale}")
    if not 8 <= config.data.image_size <= 32:
        raise ValueError(f"data.image_size must be between 8 and 32, got {config.data.image_size}")
    specs = layer_specs(config.model.layers)
    if specs[-1].filters != 10:
        raise ValueError(f"the last layer must have 10 filters (CIFAR-10 classes), got {specs[-1].filters}")


def resolve(config):
    """A validated copy with the precision chosen for this machine and an absolute data path."""
    validate(config)
    config = config.copy_and_resolve_references()
    config.precision = precision.resolve(config.precision)
    if config.data.data_dir:
        config.data.data_dir = os.path.abspath(os.path.expanduser(config.data.data_dir))
    return config
