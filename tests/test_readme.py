"""README's install and test commands are exactly what CI runs."""
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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


def readme_commands() -> list[list[str]]:
    """Every `python ...` command in README's bash blocks, as argument lists."""
    import shlex
    readme = open(os.path.join(ROOT, "README.md")).read()
    text = "\n".join(re.findall(r"```bash\n(.*?)```", readme, re.S)).replace("\\\n", " ")
    commands = []
    for line in text.splitlines():
        words = shlex.split(line.split(" #")[0])
        while words and "=" in words[0] and not words[0].startswith("-"):  # VAR=value prefixes
            words = words[1:]
        if words and words[0] == "python":
            commands.append(words)
    return commands


def _help(program: list[str]) -> str:
    import subprocess
    import sys
    flag = ["--help"]
    result = subprocess.run([sys.executable, *program, *flag], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    return result.stdout + result.stderr


def test_every_flag_in_readme_commands_exists():
    from configs import default
    commands = readme_commands()
    programs = {}
    for words in commands:
        program = words[1:3] if words[1] == "-m" else words[1:2]
        programs.setdefault(tuple(program), set()).update(
            w.split("=")[0] for w in words if w.startswith("--"))
    assert {("train.py",), ("-m", "vizdeconv.explore"), ("-m", "vizdeconv.bench"),
            ("-m", "vizdeconv.shapes"), ("scripts/readme_images.py",), ("-m", "pytest")} <= set(programs)
    config = default.get_config()
    for program, flags in programs.items():
        if program == ("-m", "pytest"):
            continue
        text = _help(list(program))
        for flag in flags:
            if flag.startswith("--config."):
                config_field = config
                for part in flag[len("--config."):].split("."):
                    config_field = config_field[part]  # KeyError: the README names a missing field
            else:
                assert flag in text, f"{' '.join(program)} has no {flag}"
