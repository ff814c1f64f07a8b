"""`python -m vizdeconv.explore`: the same as `vizdeconv explore` (see vizdeconv.commands.explore)."""

import sys

from vizdeconv import cli

if __name__ == "__main__":
    sys.exit(cli.run_command("explore", sys.argv[1:], "vizdeconv.explore"))
