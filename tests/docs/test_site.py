"""The documentation site builds strictly, the README stays short, every benchmark table says how it was made,
the gallery's pictures exist, and the rendered notebook is the project's notebook."""

import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOCS = os.path.join(ROOT, "docs")
CPU = re.compile(r"EPYC|Xeon|H200|AMX|Zen|AVX")
DATE = re.compile(r"20\d\d-\d\d-\d\d")


def read(*path: str) -> str:
    return open(os.path.join(ROOT, *path)).read()


def test_the_readme_is_short_and_links_into_the_site():
    readme = read("README.md")
    assert len(readme.splitlines()) <= 250
    for link in re.findall(r"\]\((docs/[^)#]+)", readme):
        assert os.path.isfile(os.path.join(ROOT, link)), link


def tables(text: str) -> list[tuple[int, list[str]]]:
    """(line number of the header, the lines above it) of every Markdown table."""
    lines = text.splitlines()
    found = []
    for number, line in enumerate(lines):
        if line.startswith("|") and (number == 0 or not lines[number - 1].startswith("|")):
            found.append((number, lines[:number]))
    return found


def run_line(above: list[str]) -> str:
    """The paragraph right above a table (blank lines skipped)."""
    lines = [line for line in above if line.strip()]
    return lines[-1] if lines else ""


def test_every_benchmark_table_names_its_command_cpu_and_date():
    text = read("docs", "benchmarks.md")
    found = tables(text)
    assert len(found) >= 12
    for number, above in found:
        line = run_line(above)
        assert line.startswith("*Run: `"), f"benchmarks.md line {number + 1}: no Run line above the table"
        command = line.split("`")[1]
        assert command.split()[0] in ("python", "vizdeconv"), command
        script = next((word for word in command.split() if word.startswith("scripts/")), None)
        assert script is None or os.path.isfile(os.path.join(ROOT, script)), script
        assert CPU.search(line) and DATE.search(line), f"benchmarks.md line {number + 1}: CPU or date missing"


def test_the_table_check_sees_a_table_without_its_run_line():
    text = "# Page\n\n*Run: `python scripts/x.py` · AMD EPYC · 2026-12-03*\n\n| a | b |\n|---|---|\n\nMore.\n\n| c |\n"
    found = tables(text)
    assert [run_line(above).startswith("*Run:") for _, above in found] == [True, False]


def test_the_gallery_shows_pictures_that_exist_and_says_how_to_make_them():
    text = read("docs", "gallery.md")
    pictures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(pictures) >= 12  # six views of two networks
    for picture in pictures:
        assert os.path.isfile(os.path.join(DOCS, picture)), picture
    assert "python scripts/gallery.py" in text


def test_the_rendered_notebook_is_the_projects_notebook():
    import nbformat

    def code(path):
        return [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]

    rendered = os.path.join(DOCS, "notebook.ipynb")
    assert code(rendered) == code(os.path.join(ROOT, "notebooks", "inspect_features.ipynb"))
    outputs = [c.outputs for c in nbformat.read(rendered, as_version=4).cells if c.cell_type == "code"]
    assert all(outputs), "docs/notebook.ipynb is the executed copy: python scripts/gallery.py --notebook ..."


@pytest.mark.slow
def test_the_site_builds_strictly(tmp_path):
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1", TF_CPP_MIN_LOG_LEVEL="3")
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    api = (tmp_path / "site" / "api" / "methods" / "index.html").read_text()
    assert "Deconvnet" in api and "project" in api
    commands = (tmp_path / "site" / "api" / "commands" / "index.html").read_text()
    assert "Activations kept per feature map" in commands  # an options field documented by its flag's help
    browse_every_page(str(tmp_path / "site"))


def browse_every_page(site: str) -> None:
    """Opens every page of the built site in headless Chromium: each picture loads (a decoded image, not a
    broken one), and each link inside the site leads to a page that exists."""
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    import site_screenshots
    import tab_walkthrough

    if tab_walkthrough.find_browser() is None:
        pytest.skip("no chromium + chromedriver on PATH (Debian: apt-get install chromium chromium-driver)")
    pages = sorted(os.path.relpath(os.path.join(folder, "index.html"), site)
                   for folder, _, files in os.walk(site) if "index.html" in files)  # fmt: skip
    assert len(pages) >= 20
    server, base = site_screenshots.serve(site)
    driver = tab_walkthrough.open_browser(width=1280, height=1000)
    try:
        for page in pages:
            driver.get(f"{base}/{page}")
            broken = driver.execute_script(
                "return [...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)"
            )
            assert broken == [], (page, broken)
            links = driver.execute_script(
                "return [...document.querySelectorAll('a[href]')].map(a => a.href)"
                ".filter(h => h.startsWith(location.origin))"
            )
            for link in links:
                path = link[len(base) + 1 :].split("#")[0].split("?")[0]
                target = (
                    os.path.join(site, path, "index.html")
                    if not os.path.splitext(path)[1]
                    else os.path.join(site, path)
                )
                assert os.path.isfile(target), (page, link)
    finally:
        driver.quit()
        server.shutdown()
