"""The CIFAR-10 speedrun recipe (Jordan 2024, "94% on CIFAR-10 in 3.29 seconds on a single GPU", airbench94),
in this trainer and with a network the deconvnet projects: ReLU instead of GELU, the argmax pool after the
rectifier instead of before the batch normalization (the same forward map at inference), the class layer a
1x1 conv after a 3x3 max pool instead of a linear layer after it.

  whiten   2x2 VALID conv 3->24, set from the data's patches and frozen, ReLU     32 -> 31
  conv1_*  3x3 64, 64     (pool 2 after the first)                                31 -> 15
  conv2_*  3x3 256, 256   (pool 2 after the first)                                15 -> 7
  conv3_*  3x3 256, 256   (pool 2 after the first, pool 3 after the second)       7 -> 3 -> 1
  head     1x1 256->10, not rectified; its rate 1/81 and initial scale 1/9 of PyTorch's: airbench's x 1/9 output

Every 3x3 conv is batch-normalized with a fixed scale (offset only, its rate x 64) and starts with its
first filters the identity, the rest at PyTorch's default scale as airbench keeps it. Every kernel and offset
decays by the same 0.0153 per 1,024 examples whatever its rate. Nesterov SGD (momentum 0.85) over summed,
label-smoothed (0.2) cross-entropy, batch 1024, 484 steps (9.9 epochs) under a triangular rate (0.2 -> 1
at 23% -> 0.07), weight averaging every 5 steps (Lookahead, pull 1 - 0.774 (t/T)^3), the alternating flip
and translation by up to 2 pixels at 32x32, and test-time augmentation (mirror and two 1-pixel moves) at
the end.

Command:  python train.py --config configs/speedrun.py --data_dir ../shared/cifar10
Measured: test accuracy 0.8836 on the 10,000 test images, 0.8949 with test-time augmentation (one seed; 0.605
          at step 100, 0.794 at 200, 0.815 at 300, 0.866 at 400); 53 min 45 s wall, 3.6 GB peak, float32 with
          oneDNN on a 2-core AMD EPYC Zen 3 (AVX2 only), ~160 images/s, ~105 GFLOP/s. Not yet airbench's 94%:
          what differs and each method's share are in docs/benchmarks.md ("The speedrun recipe",
          scripts/ablate_speedrun.py). With airbench's GELU, normalization by the data set and BN statistics
          of the pooled maps (speedrun_layers(after_pool=True, activation="gelu"), data.normalize="dataset"):
          0.8949, 0.9051 with test-time augmentation (one seed, same CPU). airbench's own script
          (legacy/airbench94.py, float32 on this CPU, this machine's JPEG-round-tripped CIFAR-10) reaches 0.8980,
          0.9080 with test-time augmentation: the translation is faithful; 94% here needs a larger budget.
"""

from vizdeconv.config import speedrun_config


def get_config():
    return speedrun_config()  # the recipe is the library's, so `vizdeconv bench --network speedrun` times it too
