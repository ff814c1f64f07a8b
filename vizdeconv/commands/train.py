"""`vizdeconv train --steps 15000 [--data_dir PATH]` (or `python train.py ...`): train the argmax-pooling
CIFAR-10 net.

Flags pick a config file (`--config configs/x.py`, default: the reference setup), override its fields
(`--config.batch_size=64`), and set the common ones directly. All logic lives in vizdeconv.training.
"""

import os
import sys

from vizdeconv import config as config_schema
from vizdeconv.hardware.cpu import ONEDNN_CHOICES


def _flags():
    """The trainer's absl flags, defined once per process (absl keeps them in a global registry)."""
    from absl import flags
    from ml_collections import config_flags

    if "steps" not in flags.FLAGS:
        # The schema module has a get_config() too, so it is the default config file.
        config_flags.DEFINE_config_file(
            "config", config_schema.__file__, "config file (default: the reference setup, configs/default.py); "
            "override fields with --config.FIELD=VALUE", lock_config=True)  # fmt: skip
        flags.DEFINE_integer("steps", None, "total optimizer steps (overrides config.steps)")
        flags.DEFINE_string("data_dir", None, "CIFAR-10 binary tarball or folder (default: TensorFlow Datasets)")
        flags.DEFINE_string("logdir", "logs", "parent folder of run folders; the run goes to LOGDIR/<config.name>")
        flags.DEFINE_string("run", None, "the run folder itself (overrides --logdir)")
        flags.DEFINE_alias("workdir", "run")
        flags.DEFINE_enum("strategy", None, list(config_schema.STRATEGIES),
                          "tf.distribute strategy (overrides config.strategy)")  # fmt: skip
        flags.DEFINE_enum("onednn", "auto", list(ONEDNN_CHOICES),
                          "oneDNN CPU kernels: auto turns them on where measured faster than TensorFlow's "
                          "default (AVX2 CPUs) and keeps a TF_ENABLE_ONEDNN_OPTS you set; on / off "
                          "override")  # fmt: skip
    return flags


def _config_file(argv) -> str | None:
    for index, arg in enumerate(argv):
        if arg.startswith("--config="):
            return arg.split("=", 1)[1]
        if arg == "--config" and index + 1 < len(argv):
            return argv[index + 1]
    return None


def _unknown_field(error: AttributeError) -> str:
    """The field a locked ConfigDict refused, with its "Did you mean" line when it has one, on one line."""
    inner = error.args[0] if error.args else error
    text = inner.args[0] if isinstance(inner, KeyError) and inner.args else inner
    return "; ".join(line.strip() for line in str(text).splitlines() if line.strip())


def main(argv=None, program: str = "vizdeconv train") -> int:
    from absl import flags as absl_flags

    argv = list(sys.argv[1:] if argv is None else argv)
    config_file = _config_file(argv)
    if config_file:  # a recipe imports its base recipe as `configs.<name>`
        sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(config_file))))
    try:
        # defining the default config file already applies the command line's --config.FIELD overrides
        parsed = _flags().FLAGS
        if {"--help", "-h", "--helpfull"} & set(argv):
            print(__doc__ + parsed.module_help(__name__))
            return 0
        parsed.unparse_flags()
        parsed([program, *argv])
        config = parsed["config"].value
        config.name  # the config file loads lazily; touch it so a bad path fails here
    except OSError:
        raise FileNotFoundError(
            f"cannot load config file {parsed['config'].config_filename}; pass an existing file such as "
            "configs/default.py"
        ) from None
    except AttributeError as error:  # a locked ConfigDict refuses a field it does not have
        raise ValueError(f"unknown config field: {_unknown_field(error)}") from None
    except (absl_flags.Error, TypeError, ImportError) as error:
        raise ValueError(" ".join(str(error).split())) from None
    if parsed.steps is not None:
        if parsed.steps < 1:
            raise ValueError(f"--steps must be a positive number of optimizer steps, got {parsed.steps}")
        config.steps = parsed.steps
    if parsed.data_dir is not None:
        config.data.data_dir = parsed.data_dir
    if parsed.strategy is not None:
        config.strategy = parsed.strategy
    run = parsed.run or os.path.join(parsed.logdir, config.name)

    from vizdeconv.training.loop import train_and_evaluate  # after flag parsing: TF start-up is slow

    metrics = train_and_evaluate(config, run)
    return 128 + metrics["signal"] if metrics.get("status") == "interrupted" else 0  # shell convention
