"""The `vizdeconv` command: `vizdeconv {train,explore,analyze,export,bench,shapes} ...`.

Every command's user errors go through `run`: one line `PROGRAM: error: ...` and exit status 2. The
subcommands' flags live in `vizdeconv.commands`, which share one vocabulary (`--run` a run folder, `--model`
a Keras model, `--layer` repeatable, `--mode` a projection rule). `python train.py` and
`python -m vizdeconv.<command>` run the same code.
"""

import importlib
import os
import re
import signal
import sys

COMMANDS = {
    "train": "train a network on CIFAR-10 (the reference trainer)",
    "explore": "top-k activations per feature map over a data set, projected and cropped",
    "analyze": "occlusion, evolution, invariance and sanity analyses",
    "export": "a run's network as a .keras file",
    "bench": "timings: forward, backward, projections, training steps",
    "shapes": "legal output sizes of a transposed convolution",
}
USER_ERRORS = (ValueError, FileNotFoundError, PermissionError, NotADirectoryError, FloatingPointError)


# What TensorFlow 2.21 logs through absl before it reads TF_CPP_MIN_LOG_LEVEL: absl's banner and INFO lines
# ("oneDNN custom operations are on", "Could not find cuda drivers"), twice per import
ABSL_EARLY_NOISE = re.compile(r"WARNING: All log messages before absl::InitializeLog\(\) is called|I\d{4} \d\d:\d\d:")
NO_DRIVER = "failed call to cuInit"  # CUDA's answer on a machine without an NVIDIA driver


def quiet_tensorflow() -> bool:
    """Keeps TensorFlow's C++ start-up chatter out of the user's terminal (unless TF_CPP_MIN_LOG_LEVEL is
    already set), and its Python warnings meant for library authors (e.g. "N calls triggered tf.function
    retracing", which the explorer's one compiled projection per layer sets off by design). Returns whether
    INFO lines are to be left out (any level but 0, which asks for everything)."""
    import logging

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    return os.environ["TF_CPP_MIN_LOG_LEVEL"] != "0"


def import_tensorflow_quietly() -> None:
    """Imports TensorFlow and lists its devices with standard error captured, then passes on every line but the
    ones TF_CPP_MIN_LOG_LEVEL cannot stop (`ABSL_EARLY_NOISE`), and CUDA's "failed call to cuInit" where no
    NVIDIA driver is loaded (no /dev/nvidiactl: a CPU machine, nothing to report). A user's one-line error
    is then one line. Not called when TF_CPP_MIN_LOG_LEVEL is 0 (everything asked for)."""
    import glob
    import tempfile

    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()  # CUDA's initialization, which logs on a CPU machine
        finally:  # also when the import fails: what TensorFlow said about it is passed on
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            lines = capture.read().decode(errors="replace").splitlines()
            no_driver = not glob.glob("/dev/nvidiactl")
            kept = [x for x in lines if not ABSL_EARLY_NOISE.match(x) and not (no_driver and NO_DRIVER in x)]
            if kept:
                print("\n".join(kept), file=sys.stderr)


def run(main, argv=None, program: str | None = None) -> int:
    """Calls `main(argv)` and turns errors a user can fix into `program: error: ...` and exit 2, and a Ctrl-C
    the command does not handle itself into `program: interrupted` and exit 130 (128 + SIGINT, the shell's
    convention). Files are written whole or not at all, so what was saved before it stays usable."""
    program = program or os.path.basename(sys.argv[0])
    try:
        return main(argv) or 0
    except USER_ERRORS as error:
        print(f"{program}: error: {reason(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{program}: interrupted", file=sys.stderr)
        return 128 + signal.SIGINT


def reason(error: BaseException) -> str:
    """An error's message on one line. An error raised inside a traced function or a tf.data map arrives
    wrapped in TensorFlow's "in user code:" trace: its own last line is the reason."""
    text = str(error)
    if "in user code:" in text:
        last = [line.strip() for line in text.splitlines() if line.strip()][-1]
        text = re.sub(r"^[\w.]+(Error|Exception): ", "", last)
    return " ".join(text.split()) or type(error).__name__


def command(name: str):
    """The `main(argv)` of a subcommand."""
    return importlib.import_module(f"vizdeconv.commands.{name}").main


def run_command(name: str, argv, program: str) -> int:
    """Runs one subcommand as `program` (e.g. `python -m vizdeconv.explore`). oneDNN is chosen first
    (`--onednn`, read from the command line before the command's parser runs): TensorFlow reads the
    choice once, when it is imported."""
    from vizdeconv.hardware import cpu

    quiet = quiet_tensorflow()

    def start(args):
        cpu.configure_onednn(cpu.flag_value(args))
        flags = cpu.cpu_flags()
        # without AVX TensorFlow aborts while importing: its reason must reach the terminal, not the capture
        if quiet and (not flags or "avx" in flags):
            import_tensorflow_quietly()
        return command(name)(args, program)

    return run(start, argv, program)


def main(argv=None) -> int:
    """The `vizdeconv` console script."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        width = max(map(len, COMMANDS))
        listing = "\n".join(f"  {name:{width}s}  {text}" for name, text in COMMANDS.items())
        print(f"usage: vizdeconv COMMAND [--help] ...\n\ncommands:\n{listing}")
        return 0 if argv else 2
    if argv[0] not in COMMANDS:
        print(f"vizdeconv: error: unknown command {argv[0]!r}; choose one of {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    return run_command(argv[0], argv[1:], f"vizdeconv {argv[0]}")
