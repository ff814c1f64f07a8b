"""README's install and test commands are exactly what CI runs; every command in the README and the documentation
site names only flags that command has."""

import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def section_commands(readme: str, heading: str) -> list[str]:
    section = readme.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, re.S)
    return [line.split("#")[0].strip() for block in blocks for line in block.splitlines() if line.strip()]


def test_ci_runs_the_readme_install_and_test_commands():
    readme = open(os.path.join(ROOT, "README.md")).read()
    ci = open(os.path.join(ROOT, ".ci", "run")).read().splitlines()
    install, test = section_commands(readme, "Install"), section_commands(readme, "Test")
    assert len(install) == 1 and len(test) == 1
    assert install[0] in ci and test[0] in ci
    assert ci.index(install[0]) < ci.index(test[0])


def documents() -> list[str]:
    """README.md and every page of the documentation site."""
    docs = os.path.join(ROOT, "docs")
    return [os.path.join(ROOT, "README.md")] + [
        os.path.join(docs, n) for n in sorted(os.listdir(docs)) if n.endswith(".md")
    ]


def readme_commands(paths: list[str] | None = None) -> list[list[str]]:
    """Every `python ...` and `vizdeconv ...` command in the bash blocks of README.md and the docs, as argument
    lists."""
    import shlex

    texts = [open(path).read() for path in paths or documents()]
    text = "\n".join(re.findall(r"```bash\n(.*?)```", "\n".join(texts), re.S)).replace("\\\n", " ")
    # The benchmarks page's "Run:" line above each table names the command that made it.
    text += "\n" + "\n".join(re.findall(r"^\*Run: `([^`]+)`", "\n".join(texts), re.M))
    commands = []
    for line in text.splitlines():
        words = shlex.split(line.split(" #")[0])
        while words and "=" in words[0] and not words[0].startswith("-"):  # VAR=value prefixes
            words = words[1:]
        if words and words[0] in ("python", "vizdeconv"):
            commands.append(words)
    return commands


COMMAND_OF = {
    ("train.py",): "train",
    **{
        (m,): m.split(".")[-1]
        for m in ("vizdeconv.explore", "vizdeconv.analyze", "vizdeconv.export", "vizdeconv.bench", "vizdeconv.shapes")
    },
}


def program_of(words: list[str]) -> tuple[str, ...]:
    if words[0] == "vizdeconv":
        return ("vizdeconv", *words[1 : 3 if words[1] == "analyze" else 2])  # each analysis has its own flags
    if words[1].endswith(".py") and len(words) > 2 and not words[2].startswith("-"):
        return tuple(words[1:3])  # a script's subcommand has flags of its own (bench_scan.py speed)
    return tuple(words[1:3]) if words[1] == "-m" else tuple(words[1:2])


def flags_in(text: str) -> set[str]:
    """The flags a help text names, as whole words (`--mode` is not found inside `--model`)."""
    return set(re.findall(r"(?<![\w-])(--[A-Za-z][\w-]*)", text))


def help_text(program: tuple[str, ...], capsys) -> str:
    """A command's --help, in process for vizdeconv's commands, else from a subprocess."""
    import subprocess
    import sys

    from vizdeconv import cli

    name = program[1] if program[0] == "vizdeconv" else COMMAND_OF.get(program[1:] if program[0] == "-m" else program)
    if name is not None:
        capsys.readouterr()
        try:
            cli.command(name)([*program[2:], "--help"], "readme")
        except SystemExit:
            pass
        return capsys.readouterr().out
    result = subprocess.run([sys.executable, *program, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    return result.stdout + result.stderr


def test_flag_words_are_matched_whole():
    assert flags_in("usage: x [--model MODEL] [--mode_x] --top_k N") == {"--model", "--mode_x", "--top_k"}
    assert "--mode" not in flags_in("[--model MODEL]")


@pytest.mark.slow
def test_every_flag_in_readme_commands_exists(capsys):
    from vizdeconv.config import default_config

    programs = {}
    for words in readme_commands():
        program = program_of(words)
        programs.setdefault(program, set()).update(w.split("=")[0] for w in words if w.startswith("--"))
    assert {
        ("train.py",),
        ("vizdeconv", "explore"),
        *(
            ("vizdeconv", "analyze", name)
            for name in ("occlusion", "evolution", "invariance", "sanity", "optimize", "attribute")
        ),
        ("vizdeconv", "bench"),
        ("vizdeconv", "shapes"),
        ("vizdeconv", "export"),
        ("scripts/readme_images.py",),
        ("-m", "pytest"),
    } <= set(programs)
    config = default_config()
    for program, flags in programs.items():
        if program == ("-m", "pytest"):
            continue
        known = flags_in(help_text(program, capsys))
        assert known, program
        for flag in flags:
            if flag.startswith("--config."):
                config_field = config
                for part in flag[len("--config.") :].split("."):
                    config_field = config_field[part]  # KeyError: the README names a missing field
            else:
                assert flag in known, f"{' '.join(program)} has no {flag}"


def test_the_docs_kinds_table_is_the_registry():
    from vizdeconv.nn.registry import keras_table

    readme = open(os.path.join(ROOT, "docs", "keras.md")).read()
    section = readme.split("| kind | Keras layers |\n|---|---|\n", 1)[1].split("\n\n", 1)[0]
    rows = [tuple(cell.strip().strip("`") for cell in line.strip("|").split("|", 1)) for line in section.splitlines()]
    assert rows == keras_table()
