"""`python -m vizdeconv.explore`: see vizdeconv.explore.explorer for the flags."""
import sys

from vizdeconv import cli

if __name__ == "__main__":
    cli.quiet_tensorflow()
    from vizdeconv.explore import main
    sys.exit(cli.run(main, sys.argv[1:], "vizdeconv.explore"))
