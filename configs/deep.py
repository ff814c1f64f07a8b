"""A deeper argmax-pooling net: three stages of two batch-normalized 3x3 convs (64-128-256), a
switch-recording max pool after each stage, a 1x1 conv to the 10 classes and a global average, so the
deconvnet applies unchanged (it sees each BatchNormalization as the per-channel affine map of its moving
statistics).

Command:  python train.py --config configs/deep.py --data_dir ../shared/cifar10
Measured: (filled in below from the run)
"""

from configs import tuned
from vizdeconv.io.config import deep_layers


def get_config():
    config = tuned.get_config()
    config.name = "deep"
    config.model.layers = deep_layers()
    config.steps = 10000
    config.optimizer.learning_rate = 0.1  # batch normalization takes a larger rate than the tuned net's 0.05
    config.optimizer.warmup_steps = 300
    config.loss.weight_decay = 5e-4
    config.keep_steps = (250, 500, 1000, 2000, 5000)
    config.eval_every = 1000
    config.checkpoint_every = 1000
    config.summary_every = 1000
    config.log_every = 200
    return config
