"""The reference setup: the 3-layer argmax-pooling net on CIFAR-10 at 24x24.

Command:  python train.py --steps 15000 --data_dir ../shared/cifar10
Expected: about 60% test accuracy on the 10,000 test images (measured 0.600; the TF1 yardstick ~58%).
Wall time of that command, by CPU kind (2 cores each; precision="auto"):
          AMX:                  about 4.5 minutes, 1.4 GB, mixed bfloat16
          AVX512-BF16, no AMX:  10 min 33 s, 1.35 GB, mixed bfloat16 (AMD EPYC; 0.5997)
          AVX2 only (Zen 3):    about 52 minutes, float32 (oneDNN off; 0.20 s/step measured by
                                `python -m vizdeconv.bench --what train_step`; --steps 3000 took 12 min 40 s)
`python -m vizdeconv.bench` prints which kind a machine is. configs/tuned.py trains this network better.
"""

from vizdeconv.config import default_config, reference_layers  # noqa: F401  (the fields live there)


def get_config():
    return default_config()
