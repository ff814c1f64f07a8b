"""`python -m vizdeconv COMMAND ...`: the same as the `vizdeconv` console command."""

import sys

from vizdeconv import cli

sys.exit(cli.main())
