"""Train the argmax-pooling CIFAR-10 net: `python train.py --steps 15000 [--data_dir PATH]`.

The same as `vizdeconv train` (flags and logic in vizdeconv.commands.train and vizdeconv.training).
"""

import sys

from vizdeconv import cli

if __name__ == "__main__":
    sys.exit(cli.run_command("train", sys.argv[1:], "train.py"))
