"""The package's imports only run down the floors of ../shared/STYLE.md (checked over every module's
imports with ast, lazy ones included), and the checker itself catches an upward and a sideways arrow."""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))

import import_graph  # noqa: E402


def test_no_import_runs_up_or_sideways_and_the_library_never_imports_configs():
    assert import_graph.violations(os.path.join(ROOT, "vizdeconv")) == []


def test_no_two_modules_import_each_other_even_inside_one_room():
    assert import_graph.cycles(os.path.join(ROOT, "vizdeconv")) == []


def test_the_checker_flags_upward_sideways_and_configs_imports(tmp_path):
    package = tmp_path / "vizdeconv"
    for room in ("methods", "data", "runs", "training", "explore"):
        (package / room).mkdir(parents=True)
        (package / room / "__init__.py").write_text("")
    (package / "methods" / "sanity.py").write_text("def f():\n    from vizdeconv.viz import pictures\n")
    (package / "training" / "loop.py").write_text(
        "from vizdeconv.explore import render\nimport vizdeconv.data.cifar10\n"
    )
    (package / "runs" / "rundir.py").write_text("from configs import default\nfrom vizdeconv.methods import engine\n")
    found = import_graph.violations(str(package))
    assert len(found) == 3, found
    assert any("methods/sanity.py:2" in line and line.endswith(": up") for line in found)
    assert any("training/loop.py:1" in line and line.endswith(": sideways") for line in found)
    assert any("runs/rundir.py:1" in line and "never imports configs" in line for line in found)


def test_the_checker_finds_a_circle_inside_a_room_lazy_imports_included(tmp_path):
    package = tmp_path / "vizdeconv"
    (package / "data").mkdir(parents=True)
    (package / "data" / "__init__.py").write_text("")
    (package / "data" / "cifar10.py").write_text("def f():\n    from vizdeconv.data import sources\n")
    (package / "data" / "sources.py").write_text("from vizdeconv.data.cifar10 import CLASS_NAMES\n")
    (package / "data" / "preprocess.py").write_text("from vizdeconv.data import cifar10\n")
    assert import_graph.cycles(str(package)) == [["vizdeconv.data.cifar10", "vizdeconv.data.sources"]]


def test_the_reconstruct_module_keeps_its_name():
    import vizdeconv.methods.reconstruct as reconstruct

    assert callable(reconstruct.project_signals) and reconstruct.MODES == ("deconvnet", "bias_subtract", "guided")


def test_what_loads_before_tensorflow_chooses_its_kernels_does_not_import_it():
    """`python -m vizdeconv.<command>` imports its package before choosing oneDNN, and TensorBoard imports the
    plugin when it starts: none of these may import TensorFlow (it would fix the kernels, and cost seconds)."""
    import subprocess

    modules = ["vizdeconv", "vizdeconv.explore", "vizdeconv.analyze", "vizdeconv.bench", "vizdeconv.cli",
               "vizdeconv.commands.flags", "vizdeconv.options", "vizdeconv.runs",
               "vizdeconv.viz.plugin.plugin"]  # fmt: skip
    code = f"import sys\nfor m in {modules!r}:\n    __import__(m)\nprint('tensorflow' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.stdout.strip() == "False", result.stdout + result.stderr[-2000:]
