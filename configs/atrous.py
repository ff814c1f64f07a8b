"""Dilated variant: conv2 and conv3 use dilation 2 instead of the second pooling (12x12 maps).

Command:  python train.py --config configs/atrous.py --data_dir ../shared/cifar10
Expected: trains like the reference at about twice the cost per step (conv3 runs at 12x12).
"""

from configs import default


def get_config():
    config = default.get_config()
    config.name = "atrous"
    config.model.layers = [
        dict(name="conv1", kernel=5, filters=64, pool=2),
        dict(name="conv2", kernel=5, filters=64, dilation=2),
        dict(name="conv3", kernel=5, filters=10, dilation=2),
    ]
    return config
