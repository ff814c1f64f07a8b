"""Flags derived from options dataclasses: every field with help is a flag of its command, its default is the
dataclass's (a command line without it builds the dataclass's defaults), repeats and switches parse as the field
says, and a one-value flag given twice is refused."""

import argparse
import dataclasses

import pytest

from vizdeconv.analyze import ANALYSES
from vizdeconv.commands import flags
from vizdeconv.explore import ExploreOptions

CLASSES = {"explore": ExploreOptions, **ANALYSES}


def parser_of(options_class):
    parser = argparse.ArgumentParser(prog="test")
    flags.add_options(parser, options_class)
    return parser


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_every_field_is_a_flag_whose_default_is_the_dataclass_default(name):
    options_class = CLASSES[name]
    parser = parser_of(options_class)
    text = parser.format_help()
    fields = [field for field in dataclasses.fields(options_class) if field.metadata.get("help")]
    assert len(fields) >= 8
    for field in fields:
        assert (field.metadata["flag"] or f"--{field.name}") in text, field.name
    assert flags.options_from(parser.parse_args(["--run", "r"]), options_class) == options_class(run="r")


def test_repeats_switches_choices_and_a_flag_given_twice():
    parser = parser_of(ExploreOptions)
    args = parser.parse_args(["--model", "m.keras", "--layer", "a", "--layer", "b", "--optimize", "--top_k", "3"])
    options = flags.options_from(args, ExploreOptions)
    assert options.layers == ["a", "b"] and options.optimize is True and options.top_k == 3 and options.run is None
    with pytest.raises(ValueError, match="pass --top_k once"):
        parser.parse_args(["--run", "r", "--top_k", "3", "--top_k", "4"])
    with pytest.raises(SystemExit):  # argparse refuses a value outside the choices and --run with --model
        parser.parse_args(["--run", "r", "--mode", "sideways"])
    with pytest.raises(SystemExit):
        parser.parse_args(["--run", "r", "--model", "m.keras"])
    attribute = flags.options_from(
        parser_of(ANALYSES["attribute"]).parse_args(
            ["--run", "r", "--images", "a.png", "b.png", "--method", "saliency"]
        ),
        ANALYSES["attribute"],
    )
    assert attribute.images == ["a.png", "b.png"] and attribute.methods == ["saliency"]


@pytest.mark.parametrize(
    "options_class, line",
    [
        ("vizdeconv.bench.options:BenchOptions", []),
        ("vizdeconv.commands.export:ExportOptions", ["--run", "r", "--out", "m.keras"]),
        ("vizdeconv.commands.shapes:ShapesOptions", ["--input", "126", "--kernel", "4"]),
    ],
)
def test_the_other_commands_defaults_also_come_from_their_dataclasses(options_class, line):
    import importlib

    module, name = options_class.split(":")
    options_class = getattr(importlib.import_module(module), name)
    parsed = flags.options_from(parser_of(options_class).parse_args(line), options_class)
    given = {field.name: getattr(parsed, field.name) for field in dataclasses.fields(options_class)
             if field.metadata.get("required")}  # fmt: skip
    assert parsed == options_class(**given)
    if name == "ShapesOptions":
        assert flags.options_from(parser_of(options_class).parse_args([*line, "--padding", "valid"]),
                                  options_class).padding == "VALID"  # fmt: skip
