"""A deeper argmax-pooling net: three stages of two 3x3 convs (64-128-256), a switch-recording max pool
after each stage, a 1x1 conv to the 10 classes and a global average, so the deconvnet applies unchanged.

Command:  python train.py --config configs/deep.py --data_dir ../shared/cifar10
Measured: test accuracy 0.7362 after 1,900 steps, 38 min 49 s wall (the CPU was shared for about
          half of it; 0.85 s/step alone, ~27 min), 1.8 GB peak, on a 2-core AMD EPYC (Zen 3, AVX2, no
          AVX-512, float32, TensorFlow without oneDNN). The 82%-in-30-minutes target is out of reach
          on that CPU: 30 minutes are about 5 epochs of 128-image steps.
There is no BatchNormalization: the reference trainer's network has none (the engine projects through
BatchNormalization of Keras models); He-scaled initial kernels keep the 7-layer stack trainable.
"""

import math

from configs import tuned


def conv(name: str, kernel: int, filters: int, fan_in_channels: int, pool: int = 0) -> dict:
    return dict(
        name=name,
        kernel=kernel,
        filters=filters,
        pool=pool,
        init_stddev=math.sqrt(2.0 / (kernel * kernel * fan_in_channels)),
    )


def deep_layers():
    """conv1_1/conv1_2 64, pool1; conv2_1/conv2_2 128, pool2; conv3_1/conv3_2 256, pool3; conv4 1x1 10."""
    return [
        conv("conv1_1", 3, 64, 3),
        conv("conv1_2", 3, 64, 64, pool=2),
        conv("conv2_1", 3, 128, 64),
        conv("conv2_2", 3, 128, 128, pool=2),
        conv("conv3_1", 3, 256, 128),
        conv("conv3_2", 3, 256, 256, pool=2),
        dict(conv("conv4", 1, 10, 256), rectify=False),  # rectified logits die and stop learning
    ]


def get_config():
    config = tuned.get_config()
    config.name = "deep"
    config.model.layers = deep_layers()
    config.steps = 1900  # under 30 minutes where a step takes 0.85 s (2-core AVX2 CPU)
    config.optimizer.warmup_steps = 100
    config.keep_steps = (100, 200, 400, 800, 1600)
    config.eval_every = 950
    config.checkpoint_every = 475
    config.summary_every = 950
    config.log_every = 100
    return config
