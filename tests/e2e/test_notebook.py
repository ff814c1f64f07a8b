"""The notebook runs top to bottom, headless, against a short run made here on small data."""

import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NOTEBOOK = os.path.join("notebooks", "inspect_features.ipynb")


def test_notebook_has_no_outputs_committed():
    import nbformat

    notebook = nbformat.read(os.path.join(ROOT, NOTEBOOK), as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(not cell.outputs and cell.execution_count is None for cell in code)


@pytest.mark.slow
def test_notebook_executes_against_a_short_run(trained_smoke_run, tmp_path):
    # A copy no other test writes into: the explorer's pictures found afterwards are the notebook's.
    run = str(tmp_path / "run")
    shutil.copytree(trained_smoke_run, run, ignore=shutil.ignore_patterns("explore", "analyze"))
    assert not os.path.exists(os.path.join(run, "explore"))
    env = dict(os.environ, VIZDECONV_RUN=run, TF_CPP_MIN_LOG_LEVEL="3", MPLBACKEND="Agg")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbmake", NOTEBOOK, "-q", "-p", "no:cacheprovider", "--nbmake-timeout=600"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-4000:]
    assert "1 passed" in result.stdout
    assert os.path.isfile(os.path.join(run, "explore", "test", "conv3", "channel_001.png"))
