"""`python -m vizdeconv.shapes`: legal conv2d_transpose output sizes (see vizdeconv.nn.shapes)."""
import sys

if __name__ == "__main__":
    from vizdeconv.nn.shapes import main
    sys.exit(main(sys.argv[1:]))
