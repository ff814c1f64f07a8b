"""Command-line plumbing shared by the entry points: user errors become one line and exit status 2."""
import os
import sys

USER_ERRORS = (ValueError, FileNotFoundError, PermissionError, NotADirectoryError,
               FloatingPointError)


def quiet_tensorflow() -> None:
    """Keeps TensorFlow's C++ start-up chatter out of the user's terminal (unless already set)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def run(main, argv=None, program: str | None = None) -> int:
    """Calls `main(argv)` and turns errors a user can fix into `program: error: ...` and exit 2."""
    program = program or os.path.basename(sys.argv[0])
    try:
        return main(argv) or 0
    except USER_ERRORS as error:
        message = " ".join(str(error).split()) or type(error).__name__
        print(f"{program}: error: {message}", file=sys.stderr)
        return 2
