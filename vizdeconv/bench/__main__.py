"""`python -m vizdeconv.bench`: the same as `vizdeconv bench` (see vizdeconv.commands.bench)."""

import sys

from vizdeconv import cli

if __name__ == "__main__":
    sys.exit(cli.run_command("bench", sys.argv[1:], "vizdeconv.bench"))
