"""A deeper argmax-pooling net: three stages of two batch-normalized 3x3 convs (64-128-256), a
switch-recording max pool after each stage, a 1x1 conv to the 10 classes and a global average, so the
deconvnet applies unchanged (it sees each BatchNormalization as the per-channel affine map of its moving
statistics).

Command:  python train.py --config configs/deep.py --data_dir ../shared/cifar10
Measured: test accuracy 0.8632 on the 10,000 test images after 10,000 steps of batch 128 (0.5881 at
          1,000, 0.7822 at 4,000, 0.8291 at 7,000, 0.8526 at 8,000, 0.8609 at 9,000); 50 min 29 s wall,
          1.44 GB peak, mixed bfloat16 (precision auto), oneDNN on, on a 2-core Intel Xeon (Sapphire
          Rapids, AMX) whose host was oversubscribed (about half of each core stolen at times) and which
          ran the test suite beside it for most of the run: 0.2-0.3 s/step, 320-570 images/s.
Recipe: the tuned one (mean cross-entropy, SGD momentum 0.9, cosine decay, weight penalty 5e-4) at a rate
of 0.1 after 300 warm-up steps; batch normalization (momentum 0.9, epsilon 1e-3) after every 3x3 conv.
"""

from configs import tuned
from vizdeconv.config import deep_layers


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
