"""The one vocabulary of flags: a command's flags are derived from the fields of its options dataclass
(`add_options`: the field's default, type, choices and help, see `vizdeconv.options.option`), so the dataclass
is the only home of a default; the flags every command shares come from the shared fields
(`runs.subject.SubjectOptions`).
`--onednn` is the one flag outside them: the command line reads it before TensorFlow starts."""

import argparse
import dataclasses
import types
import typing

from vizdeconv.options import option  # noqa: F401  (the commands' own options dataclasses use it)


def parser(program: str, description: str) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(prog=program, description=description)


def add_onednn(parser: argparse.ArgumentParser) -> None:
    """--onednn: TensorFlow's oneDNN CPU kernels (chosen by `cli.run_command` before TensorFlow starts)."""
    from vizdeconv.hardware.cpu import ONEDNN_CHOICES

    parser.add_argument(
        "--onednn",
        choices=ONEDNN_CHOICES,
        default="auto",
        help="oneDNN CPU kernels: auto turns them on where measured faster than TensorFlow's default (AVX2 "
        "CPUs) and keeps a TF_ENABLE_ONEDNN_OPTS you set; on / off override",
    )


def _value_type(annotation):
    """int / float / str from a field's annotation (`int | None` -> int)."""
    if isinstance(annotation, str):  # a module with postponed annotations
        return next((kind for kind in (int, float) if kind.__name__ in annotation.split(" | ")), str)
    kinds = typing.get_args(annotation) if isinstance(annotation, types.UnionType) else (annotation,)
    return next((kind for kind in (int, float) if kind in kinds), str)


class _Once(argparse.Action):
    """A flag of one value: given twice is an error (one line through the command's error path), not the
    last one silently winning."""

    def __call__(self, parser, namespace, values, option_string=None):
        if getattr(namespace, f"_given_{self.dest}", False):
            raise ValueError(f"{option_string} takes one value: pass {option_string} once")
        setattr(namespace, f"_given_{self.dest}", True)
        setattr(namespace, self.dest, values)


def add_options(parser: argparse.ArgumentParser, options_class) -> None:
    """One flag per field of `options_class` that has help in its metadata (`vizdeconv.options.option`),
    `--<field>` or the field's own `flag`, its dest the field's name; `run` and `model` form a required
    exclusive pair where the class has both."""
    fields = {field.name: field for field in dataclasses.fields(options_class) if field.metadata.get("help")}
    pair = parser.add_mutually_exclusive_group(required=True) if {"run", "model"} <= fields.keys() else None
    for name, field in fields.items():
        meta = field.metadata
        flag = meta.get("flag") or f"--{name}"
        target = pair if pair is not None and name in ("run", "model") else parser
        settings = {"dest": name, "help": meta["help"]}
        if meta.get("required"):
            settings["required"] = True
        if field.default is False:
            settings["action"] = "store_true"
        else:
            settings.update(default=None if meta.get("repeat") else field.default, metavar=flag.lstrip("-").upper())
            settings["action"] = "append" if meta.get("repeat") else _Once
            settings["type"] = str.upper if meta.get("upper") else _value_type(field.type)
            if meta.get("many"):
                settings["nargs"] = "+"
            if meta.get("choices"):
                settings.update(choices=meta["choices"], metavar=None)
        target.add_argument(flag, **settings)


def options_from(args: argparse.Namespace, options_class, **values):
    """The options dataclass from parsed flags (each field with a flag), plus `values`."""
    names = [field.name for field in dataclasses.fields(options_class) if hasattr(args, field.name)]
    return options_class(**{name: getattr(args, name) for name in names}, **values)
