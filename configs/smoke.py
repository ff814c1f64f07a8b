"""A few steps on a tiny batch: what the tests and a quick check of the install use.

Command:  python train.py --config configs/smoke.py --data_dir ../shared/cifar10
Expected: finishes in well under a minute; accuracy near chance (it is not trained).
"""

from configs import default


def get_config():
    config = default.get_config()
    config.name = "smoke"
    config.steps = 6
    config.batch_size = 8
    config.eval_batch_size = 500
    config.log_every = 2
    config.eval_every = 6
    config.checkpoint_every = 2
    config.summary_every = 3
    config.reconstruction.probes = 2
    config.reconstruction.top_k = 4
    return config
