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
import ml_collections


def reference_layers():
    """conv1 5x5 3->64 + pool1 2x2/2, conv2 5x5 64->64 + pool2 2x2/2, conv3 5x5 64->10."""
    return [
        dict(name="conv1", kernel=5, filters=64, pool=2),
        dict(name="conv2", kernel=5, filters=64, pool=2),
        dict(name="conv3", kernel=5, filters=10),
    ]


def get_config():
    config = ml_collections.ConfigDict()
    config.name = "default"          # the run folder is <logdir>/<name> unless --workdir is given
    config.seed = 0                  # weights, data order and augmentation; saved, so resume is exact
    config.steps = 15000             # total optimizer steps (--steps)
    config.batch_size = 128          # global batch, split across replicas
    config.eval_batch_size = 1000
    config.precision = "auto"        # auto | float32 | bfloat16 (mixed: float32 variables and loss)
    config.strategy = "default"      # default | mirrored | multi_worker | tpu
    config.devices = ""              # comma-separated device list for the mirrored strategy

    config.data = ml_collections.ConfigDict()
    config.data.data_dir = ""        # CIFAR-10 binary tarball or folder; empty: TensorFlow Datasets
    config.data.tfds_data_dir = ""   # where tfds keeps its copy (empty: the tfds default)
    config.data.image_size = 24      # random crop (train) / central crop (eval) of the 32x32 images
    config.data.limit = 0            # use only the first N training images (0: all); for tests

    config.model = ml_collections.ConfigDict()
    config.model.layers = reference_layers()

    config.loss = ml_collections.ConfigDict()
    config.loss.reduction = "sum"    # sum | mean cross-entropy over the batch
    config.loss.weight_decay = 1.0   # coefficient of sum(l2_loss(kernel)) over conv kernels

    config.optimizer = ml_collections.ConfigDict()
    config.optimizer.name = "adam"   # adam | sgd | momentum
    config.optimizer.learning_rate = 1e-4
    config.optimizer.schedule = "constant"  # constant | cosine | step
    config.optimizer.warmup_steps = 0
    config.optimizer.decay_factor = 0.1     # step schedule: multiply the rate at each boundary
    config.optimizer.decay_every = 5000     # step schedule: boundary spacing in steps

    config.log_every = 200           # progress line and scalar summaries
    config.eval_every = 1000         # eval accuracy on the whole test split
    config.checkpoint_every = 1000
    config.keep_checkpoints = 3      # rolling: the newest N checkpoints
    config.keep_steps = (250, 500, 1000, 2000, 5000, 10000)  # kept forever (and the last), for evolution

    config.summary_every = 1000      # deconvnet reconstructions of the probe batch
    config.reconstruction = ml_collections.ConfigDict()
    config.reconstruction.mode = "deconvnet"   # deconvnet | bias_subtract | guided
    config.reconstruction.probes = 8           # fixed test images projected at every summary step
    config.reconstruction.top_k = 16           # strongest feature maps shown one by one
    config.reconstruction.display_scale = 4    # nearest-neighbour upscaling of the 24x24 panels
    config.reconstruction.clip_percentile = 0.0  # 0: min-max scaling; e.g. 1.0 clips 1% tails
    return config
