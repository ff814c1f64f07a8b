"""The field helper of options dataclasses: a dataclass field that is also a command-line flag. Each command's
options dataclass is the only home of its defaults; `commands.flags.add_options` derives the flags from them.
Imports nothing, so any command (and `python -m vizdeconv.<command>` before it chooses TensorFlow's kernels) can
build its options."""

import dataclasses


# 8 parameters: one per flag property, all keyword-only but the default and help, as dataclasses.field's are.
def option(default=None, help: str = "", *, flag: str | None = None, choices=None, repeat: bool = False,
           many: bool = False, required: bool = False, upper: bool = False):  # fmt: skip
    """A field of a command's options dataclass, which is the only home of its default: the command line's
    flag is derived from it (`commands.flags.add_options`) as `--<field>` (or `flag`), a switch for a False
    bool, repeatable where `repeat` (a list, None when not given), taking several values where `many`,
    `required`, upper-cased where `upper`, with `choices` and `help`."""
    metadata = {"help": help, "flag": flag, "choices": choices, "repeat": repeat, "many": many,
                "required": required, "upper": upper}  # fmt: skip
    return dataclasses.field(default=default, metadata=metadata)
