"""README.md says what the code does: its commands are the ones CI runs, its Python examples
(and those of the pages it links) run, its table of mechanisms lists every registered one, and
its table of the docs lists every page."""

from __future__ import annotations

import os
import re
from pathlib import Path

import mtlshare.sharing  # noqa: F401
from md_tables import GUIDE, code_blocks
from mtlshare.registry import MECHANISMS
from mtlshare.sharing.base import INTERFACE_DOC

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def test_ci_runs_the_readme_test_command():
    commands = [
        line
        for b in blocks("bash")
        for line in b.splitlines()
        if line.startswith("python3 -m venv")
    ]
    assert len(commands) == 2, commands
    setup_and_demo, setup_and_test = commands
    assert "mtlshare demo" in setup_and_demo
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert setup_and_test in ci


def test_every_registered_mechanism_is_in_the_readme_table():
    for entry in MECHANISMS:
        assert f"| `{entry.name}` |" in README, entry.name


def test_readme_has_no_placeholders():
    assert "DEMO_RESULTS" not in README and "BENCHMARK_RESULTS" not in README


def test_python_examples_run(tmp_path, monkeypatch):
    (tmp_path / "recipes").symlink_to(ROOT / "recipes")
    monkeypatch.chdir(tmp_path)
    examples = code_blocks("python")
    assert len(examples) > len(blocks("python")) >= 3  # the README's, then predict.md's
    for code in examples:
        exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
    assert (tmp_path / "runs" / "sparse-5-epochs" / "results.json").is_file()
    assert os.listdir(tmp_path / "runs")


def test_every_test_the_docs_name_exists():
    """The docs name tests as proof (docs/reliability.md a test per row): each named file must
    exist and each named test be defined in it, so that a renamed or removed test shows."""
    named = 0
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        text = doc.read_text(encoding="utf-8")
        for path, test in re.findall(r"(tests/[\w/]+\.py)(?:::(\w+))?", text):
            source = ROOT / path
            assert source.is_file(), f"{doc.name}: {path} does not exist"
            if test:
                assert re.search(rf"^def {test}\(", source.read_text(encoding="utf-8"), re.M), (
                    f"{doc.name}: {path}::{test} is not defined"
                )
            named += 1
    assert named > 100  # the reliability tables alone name more


def test_the_mechanism_of_ones_own_example_runs(tmp_path):
    """The ``py`` block registers a mechanism: run in a process of its own, so that this one's
    registry (which the other tests read) stays the library's."""
    import subprocess
    import sys

    (code,) = code_blocks("py")  # docs/mechanisms.md's
    (tmp_path / "gated.py").write_text(code, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "gated.py"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "runs" / "gated-vs-hard" / "comparison.md").is_file()
    contract = ["-m", "pytest", "-q", "-p", "gated", "-p", "no:cacheprovider", "-k", "gated"]
    done = subprocess.run(
        [sys.executable, *contract, str(ROOT / "tests" / "sharing" / "test_contract.py")],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": f"{tmp_path}{os.pathsep}{env['PYTHONPATH']}"},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout[-2000:]


def test_the_readme_lists_every_page_of_the_docs():
    """Its Documentation table links each page of docs/ (and docs/results/), and the pages
    whose examples the tests run are the ones it links."""
    listed = set(re.findall(r"^\| \[docs/([\w/.-]+)\]\(docs/\1\) \|", README, flags=re.M))
    pages = {p.name for p in (ROOT / "docs").glob("*.md")}
    assert listed == pages | {"results/"}, listed ^ (pages | {"results/"})
    assert {p.name for p in GUIDE[1:]} == pages - {"reliability.md"}


def test_the_errors_about_a_mechanism_of_ones_own_name_a_heading_there_is():
    """``INTERFACE_DOC``, which those one-line errors name, is a page and one of its headings."""
    page, heading = INTERFACE_DOC.split(": ", 1)
    text = (ROOT / page).read_text(encoding="utf-8")
    assert f"\n## {heading}\n" in text


def test_the_guide_has_no_cut_code_span_nor_stray_list_marker():
    """Prose rewrapped by hand or by a script can start a line with ``* `` or ``+ `` (a code span
    such as `` `M_t * theta` `` cut at its space renders as a list item) or ``12. `` (a number
    ending a sentence renders as a numbered list); the guide writes its lists with ``- ``, so such
    a line is damage. A paragraph with an odd number of backticks has a code span cut open."""
    damaged = []
    for page in GUIDE:
        text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
        for number, paragraph in enumerate(text.split("\n\n")):
            if paragraph.count("`") % 2:
                damaged.append(f"{page.name}: paragraph {number}: {paragraph[:60]!r}")
            for line in paragraph.splitlines():
                if re.match(r"\s*([*+] |\d+\. )", line):
                    damaged.append(f"{page.name}: {line[:60]!r}")
    assert not damaged, damaged
