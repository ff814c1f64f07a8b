"""`python -m vizdeconv.export`: the same as `vizdeconv export` (see vizdeconv.commands.export)."""

import sys

from vizdeconv import cli

if __name__ == "__main__":
    sys.exit(cli.run_command("export", sys.argv[1:], "vizdeconv.export"))
