"""`python -m vizdeconv.analyze`: the same as `vizdeconv analyze` (see vizdeconv.commands.analyze)."""

import sys

from vizdeconv import cli

if __name__ == "__main__":
    sys.exit(cli.run_command("analyze", sys.argv[1:], "vizdeconv.analyze"))
