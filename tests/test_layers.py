"""The package's imports only run down the floors of ../shared/STYLE.md (checked over every module's
imports with ast, lazy ones included), and the checker itself catches an upward and a sideways arrow."""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))

import import_graph  # noqa: E402


def test_no_import_runs_up_or_sideways_and_the_library_never_imports_configs():
    assert import_graph.violations(os.path.join(ROOT, "vizdeconv")) == []


def test_the_checker_flags_upward_sideways_and_configs_imports(tmp_path):
    package = tmp_path / "vizdeconv"
    for room in ("deconv", "io", "training", "explore"):
        (package / room).mkdir(parents=True)
        (package / room / "__init__.py").write_text("")
    (package / "deconv" / "sanity.py").write_text("def f():\n    from vizdeconv.io import pictures\n")
    (package / "training" / "loop.py").write_text("from vizdeconv.explore import render\nimport vizdeconv.io.data\n")
    (package / "io" / "rundir.py").write_text("from configs import default\nfrom vizdeconv.deconv import engine\n")
    found = import_graph.violations(str(package))
    assert len(found) == 3, found
    assert any("deconv/sanity.py:2" in line and line.endswith(": up") for line in found)
    assert any("training/loop.py:1" in line and line.endswith(": sideways") for line in found)
    assert any("io/rundir.py:1" in line and "never imports configs" in line for line in found)


def test_the_reconstruct_module_keeps_its_name():
    import vizdeconv.deconv.reconstruct as reconstruct

    assert callable(reconstruct.project_signals) and reconstruct.MODES == ("deconvnet", "bias_subtract", "guided")
