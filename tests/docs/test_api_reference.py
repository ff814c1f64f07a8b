"""The API reference covers every public name, and every documented name says what each of its arguments is.

Read with Griffe (what mkdocstrings renders, from the source, with the site's own extension that documents an
options field by its flag's help), independently of the site build."""

import importlib
import os
import re

import griffe
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
API = os.path.join(ROOT, "docs", "api")
# The faces a user imports from, and the method modules whose classes the guides use by their module path.
FACES = ("vizdeconv", "vizdeconv.analyze", "vizdeconv.explore", "vizdeconv.keras")
METHOD_MODULES = ("vizdeconv.methods.occlusion", "vizdeconv.methods.invariance", "vizdeconv.methods.sanity")
ALSO = ("vizdeconv.runs.subject.open_subject", "vizdeconv.runs.subject.SubjectOptions", "vizdeconv.viz.inspection.Run",
        "vizdeconv.viz.inspection.KerasFile", "vizdeconv.viz.inspection.Inspector")  # fmt: skip


def reference_entries() -> list[str]:
    """The dotted paths of every `::: path` block of docs/api/*.md."""
    entries = []
    for name in sorted(os.listdir(API)):
        entries += re.findall(r"^::: (\S+)$", open(os.path.join(API, name)).read(), re.M)
    return entries


def public_names() -> list[str]:
    names = []
    for face in FACES:
        module = importlib.import_module(face)
        names += [f"{face}.{name}" for name in module.__all__ if name not in ("__version__", "keras")]
    for path in METHOD_MODULES:
        module = importlib.import_module(path)
        names += [f"{path}.{name}" for name, value in vars(module).items()
                  if not name.startswith("_") and getattr(value, "__module__", None) == path]  # fmt: skip
    return names + list(ALSO)


def resolve(path: str):
    module, _, name = path.rpartition(".")
    try:
        return importlib.import_module(path)
    except ImportError:
        return getattr(importlib.import_module(module), name)


@pytest.fixture(scope="module")
def package():
    extensions = griffe.load_extensions(os.path.join(ROOT, "docs", "griffe_options.py") + ":OptionHelp")
    return griffe.load("vizdeconv", search_paths=[ROOT], extensions=extensions, docstring_parser="google")


def test_every_public_name_is_in_the_api_reference():
    documented = {}
    for entry in reference_entries():
        value = resolve(entry)
        documented[id(value)] = entry
        for member in vars(value).values() if type(value).__name__ == "module" else ():
            documented.setdefault(id(member), entry)
    missing = [name for name in public_names() if id(resolve(name)) not in documented]
    assert missing == []


def mentions(text: str, name: str) -> bool:
    return re.search(rf"(?<![\w]){re.escape(name)}(?![\w])", text) is not None


def arguments(function: griffe.Function) -> list[str]:
    skip = (griffe.ParameterKind.var_positional, griffe.ParameterKind.var_keyword)
    return [p.name for p in function.parameters if p.name not in ("self", "cls") and p.kind not in skip]


def problems(obj: griffe.Object, context: str = "") -> list[str]:
    """What a documented object lacks: a docstring, or the mention of one of its arguments or fields."""
    text = obj.docstring.value if obj.docstring else ""
    found = []
    if obj.is_module:
        for member in obj.members.values():
            if not member.name.startswith("_") and not member.is_alias and (member.is_function or member.is_class):
                found += problems(member)
        return found
    if not text and not context:
        return [f"{obj.path}: no docstring"]
    if obj.is_function:
        found += [f"{obj.path}: argument {name}" for name in arguments(obj) if not mentions(text + context, name)]
    elif obj.is_class:
        init = obj.all_members.get("__init__")
        if "dataclass" in obj.labels:  # its fields are its arguments: each in the docstring, or with its own help
            for member in obj.all_members.values():
                if member.is_attribute and not member.name.startswith("_") and "instance-attribute" in member.labels:
                    if not (member.docstring or mentions(text, member.name)):
                        found.append(f"{obj.path}: field {member.name}")
        elif init is not None and init.is_function:
            init_text = init.docstring.value if init.docstring else ""
            found += [
                f"{obj.path}: argument {name}" for name in arguments(init) if not mentions(text + init_text, name)
            ]
        for member in obj.members.values():
            if member.name.startswith("_") or member.is_alias:
                continue
            if member.is_function and "property" not in member.labels:
                found += problems(member)
            elif member.is_function and not member.docstring:
                found.append(f"{member.path}: no docstring")
    return found


def test_every_documented_name_has_a_docstring_naming_its_arguments(package):
    found = []
    for entry in reference_entries():
        found += problems(package[entry.removeprefix("vizdeconv.")])
    assert found == []


def test_the_check_catches_a_missing_argument_and_a_missing_docstring(tmp_path):
    (tmp_path / "toy").mkdir()
    (tmp_path / "toy" / "__init__.py").write_text(
        '"""A toy."""\n\n'
        'def half(x, scale):\n    """Half of `x`."""\n\n'
        "def bare(y):\n    return y\n\n"
        "class Box:\n"
        '    """A box of `size`."""\n\n'
        "    def __init__(self, size, colour):\n        pass\n\n"
        '    def fill(self, amount):\n        """Fills it with `amount`."""\n'
    )
    toy = griffe.load("toy", search_paths=[str(tmp_path)])
    assert problems(toy) == ["toy.half: argument scale", "toy.bare: no docstring", "toy.Box: argument colour"]
    (tmp_path / "toy" / "__init__.py").write_text(
        "import dataclasses\n\n"
        "@dataclasses.dataclass\nclass Result:\n"
        '    """What came out: `maps`."""\n\n'
        "    maps: int\n    scores: int\n"
    )
    toy = griffe.load("toy", search_paths=[str(tmp_path)])
    assert problems(toy) == ["toy.Result: field scores"]
