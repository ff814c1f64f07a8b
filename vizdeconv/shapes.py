"""`python -m vizdeconv.shapes`: the same as `vizdeconv shapes` (see vizdeconv.commands.shapes)."""

import sys

from vizdeconv import cli

if __name__ == "__main__":
    sys.exit(cli.run_command("shapes", sys.argv[1:], "vizdeconv.shapes"))
