"""The one vocabulary of flags: every command that opens a network, picks layers or a projection rule
declares those flags here, with their choices read from the library's option lists."""

import argparse


def parser(program: str, description: str) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(prog=program, description=description)


def add_subject(parser: argparse.ArgumentParser, run_only: bool = False) -> None:
    """--run (a run folder) or --model (a Keras model file), and the data and pixel flags of a model."""
    from vizdeconv.nn import preprocess

    if run_only:
        parser.add_argument("--run", required=True, help="a run folder written by vizdeconv train")
        return
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", help="a run folder written by vizdeconv train")
    source.add_argument(
        "--model", help="a Keras model file (.keras), or applications:NAME[:SIZE] (a keras.applications family)"
    )
    parser.add_argument("--weights", default=None, help="--model applications:NAME only: your weights file")
    parser.add_argument(
        "--data_dir",
        default=None,
        help="CIFAR-10 binary data, a folder of images (class subfolders optional), TFRecord files, or "
        "tfds:NAME (default for --run: the data source the run used)",
    )
    parser.add_argument(
        "--tfds_data_dir", default=None, help="--data_dir tfds:NAME: the folder where the data set is prepared"
    )
    parser.add_argument(
        "--preprocess",
        choices=preprocess.CHOICES,
        default="auto",
        help="--model only: how pixels 0..255 become inputs (auto: raw where the model has "
        "Rescaling/Normalization, else per-image standardization)",
    )


def add_onednn(parser: argparse.ArgumentParser) -> None:
    """--onednn: TensorFlow's oneDNN CPU kernels (chosen by `cli.run_command` before TensorFlow starts)."""
    from vizdeconv.hardware.cpu import ONEDNN_CHOICES

    parser.add_argument(
        "--onednn",
        choices=ONEDNN_CHOICES,
        default="auto",
        help="oneDNN CPU kernels: auto turns them on where measured faster than TensorFlow's default (AVX2 "
        "CPUs) and keeps a TF_ENABLE_ONEDNN_OPTS you set; on / off override",
    )


def add_layer(parser: argparse.ArgumentParser, help: str) -> None:
    parser.add_argument("--layer", action="append", default=None, help=f"{help}; repeat for several")


def add_mode(parser: argparse.ArgumentParser, help: str) -> None:
    """--mode (the projection rule) and --rectify (where it replaces the gradient)."""
    from vizdeconv.methods.reconstruct import MODES, RECTIFY

    parser.add_argument("--mode", choices=MODES, default=None, help=help)
    parser.add_argument(
        "--rectify",
        choices=RECTIFY,
        default="relu",
        help="relu: the rule at ReLUs, other activations (silu, gelu, ...) pass their own gradient; all: the "
        "ReLU rule at every activation",
    )


def add_split(parser: argparse.ArgumentParser) -> None:
    from vizdeconv.config import SPLITS

    parser.add_argument("--split", choices=SPLITS, default="test")


def add_optimization(parser: argparse.ArgumentParser, what: str, method: bool = True) -> None:
    """--method, --steps and --seed of feature visualization (`what` names the command's part that uses them;
    `method` False: the command declares its own --method)."""
    from vizdeconv.methods.feature_vis import DEFAULT_STEPS, METHODS

    if method:
        parser.add_argument(
            "--method",
            default="fourier",
            choices=METHODS,
            help=f"{what}: fourier (Olah et al. 2017) or pixel (Yosinski et al. 2015) parametrization",
        )
    parser.add_argument(
        "--steps", type=int, default=None, help=f"{what}: optimization steps (default: {DEFAULT_STEPS})"
    )
    parser.add_argument("--seed", type=int, default=0, help=f"{what}: the images' randomness")
