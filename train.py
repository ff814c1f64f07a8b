"""Train the argmax-pooling CIFAR-10 net: `python train.py --steps 15000 [--data_dir PATH]`.

Flags pick a config file (`--config configs/x.py`), override its fields (`--config.batch_size=64`),
and set the common ones directly. All logic lives in vizdeconv.training.
"""
import os
import sys

from vizdeconv import cli

cli.quiet_tensorflow()

from absl import flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

CONFIG = config_flags.DEFINE_config_file(
    "config", os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", "default.py"),
    "config file; override fields with --config.FIELD=VALUE", lock_config=True)
flags.DEFINE_integer("steps", None, "total optimizer steps (overrides config.steps)")
flags.DEFINE_string("data_dir", None, "CIFAR-10 binary tarball or folder (default: TensorFlow Datasets)")
flags.DEFINE_string("logdir", "logs", "parent folder of run folders; the run goes to LOGDIR/<config.name>")
flags.DEFINE_string("workdir", None, "the run folder itself (overrides --logdir)")
flags.DEFINE_enum("strategy", None, ["default", "mirrored", "multi_worker", "tpu"],
                  "tf.distribute strategy (overrides config.strategy)")
FLAGS = flags.FLAGS


def main(argv) -> int:
    if {"--help", "-h", "--helpfull"} & set(argv[1:]):
        print(__doc__ + "\n" + FLAGS.main_module_help())
        return 0
    try:
        FLAGS(argv)
        config = CONFIG.value
        config.name  # the config file loads lazily; touch it so a bad path fails here
    except OSError:
        raise FileNotFoundError(f"cannot load config file {FLAGS['config'].config_filename}; pass "
                                "an existing file such as configs/default.py") from None
    except AttributeError as error:  # a locked ConfigDict refuses a field it does not have
        unknown = error.args[0].args[0] if isinstance(error.args[0], KeyError) else error
        raise ValueError(f"unknown config field: {unknown}") from None
    except (flags.Error, TypeError) as error:
        raise ValueError(" ".join(str(error).split())) from None
    if FLAGS.steps is not None:
        if FLAGS.steps < 1:
            raise ValueError(f"--steps must be a positive number of optimizer steps, got {FLAGS.steps}")
        config.steps = FLAGS.steps
    if FLAGS.data_dir is not None:
        config.data.data_dir = FLAGS.data_dir
    if FLAGS.strategy is not None:
        config.strategy = FLAGS.strategy
    workdir = FLAGS.workdir or os.path.join(FLAGS.logdir, config.name)

    from vizdeconv.training.loop import train_and_evaluate  # after flag parsing: TF start-up is slow
    metrics = train_and_evaluate(config, workdir)
    return 128 + metrics["signal"] if metrics.get("status") == "interrupted" else 0  # shell convention


if __name__ == "__main__":
    sys.exit(cli.run(main, sys.argv, "train.py"))
