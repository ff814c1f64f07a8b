"""A Griffe extension for the API reference: each field of an options dataclass is documented by its flag's help.

An options field is written `name: type = option(default, help, ...)` (`vizdeconv.options.option`); its help is
the one place its meaning is written, shared by the command line's `--help` and these pages. Griffe reads the
source without running it and sees the call, not the help (often a shared constant); this extension imports the
class and copies each field's help, default and choices into the field's docstring.
"""

import dataclasses
import importlib

import griffe


class OptionHelp(griffe.Extension):
    def on_class_members(self, *, cls: griffe.Class, **kwargs) -> None:
        fields = [member for member in cls.members.values() if _is_option(member)]
        if not fields:
            return
        runtime = getattr(importlib.import_module(cls.module.path), cls.name)
        described = {field.name: field for field in dataclasses.fields(runtime)}
        for member in fields:
            field = described[member.name]
            text = field.metadata["help"] or ""
            if field.metadata.get("choices"):
                text += f" (one of {', '.join(map(str, field.metadata['choices']))})"
            text += f"; default `{field.default!r}`"
            flag = field.metadata.get("flag") or f"--{field.name}"
            text += f"; flag `{flag}`"
            member.docstring = griffe.Docstring(text[:1].upper() + text[1:] + ".", parent=member)


def _is_option(member) -> bool:
    return member.is_attribute and str(member.value or "").startswith("option(")
