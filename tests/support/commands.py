"""Runs vizdeconv's commands as a user does: in this process, through the same error path as the console
command (fast), or as a real subprocess (`python -m ...`, `train.py`) where start-up itself is tested."""

import contextlib
import io


def in_process(name: str, *args: str, program: str | None = None) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of `vizdeconv NAME ARGS...`, run in this process."""
    from vizdeconv import cli

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.run(cli.command(name), list(args), program or f"vizdeconv {name}")
        except SystemExit as exit:  # argparse's own usage errors
            code = exit.code
    return code, out.getvalue(), err.getvalue()
