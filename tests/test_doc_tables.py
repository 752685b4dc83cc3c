"""The results tables the guide (README.md and its pages in docs/) and docs/results/*.md copy
from kept result files say what those files say. A kept result file is a table a run wrote
(``comparison.md``, ``forecast.md``, the demo's ``output.txt``, and the other Markdown files in
the folders under docs/results/). A doc table whose header, the first column aside, is that of a
kept table copies rows: each of its rows must match a row of a kept table with that header in
every cell but the first (the docs may name a row in words; bold is dropped). A result rerun
without its copies updated fails here."""

from __future__ import annotations

from pathlib import Path

import pytest

from md_tables import GUIDE, Cells, section, table, tables

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"


def kept_rows() -> dict[Cells, set[Cells]]:
    """Header (first column aside) -> the rows (first column aside) of every kept table."""
    kept: dict[Cells, set[Cells]] = {}
    for path in sorted(RESULTS.rglob("*")):
        if path.parent == RESULTS or not (path.suffix == ".md" or path.name == "output.txt"):
            continue
        for _, header, rows in tables(path.read_text(encoding="utf-8")):
            if header[1:]:
                kept.setdefault(header[1:], set()).update(row[1:] for row in rows)
    return kept


def copied_tables() -> list[tuple[str, Cells, list[Cells]]]:
    kept = kept_rows()
    found = []
    for doc in [*GUIDE, *sorted(RESULTS.glob("*.md"))]:
        for number, header, rows in tables(doc.read_text(encoding="utf-8")):
            if header[1:] in kept:
                found.append((f"{doc.relative_to(ROOT)}:{number}", header, rows))
    return found


def test_every_copied_table_row_is_a_kept_row():
    kept = kept_rows()
    wrong = [
        f"{where}: {' | '.join(row)}"
        for where, header, rows in copied_tables()
        for row in rows
        if row[1:] not in kept[header[1:]]
    ]
    assert not wrong, wrong


def test_the_copies_are_found():
    """README's demo tables, the guide's forecasting table and the result docs' copies are
    among the tables checked (a pattern that found none would check nothing)."""
    where = [w for w, _, _ in copied_tables()]
    assert len(where) >= 15, where
    assert sum(w.startswith("README.md:") for w in where) >= 2, where
    assert any(w.startswith("docs/forecasting.md:") for w in where), where
    assert any(w.startswith("docs/results/forecasting.md:") for w in where), where


def test_tables_are_parsed_with_their_line_and_without_the_separator():
    text = "intro\n\n| a | b |\n|---|---:|\n| x | **1** |\n| y | 2 |\nafter\n"
    assert tables(text) == [(3, ("a", "b"), [("x", "1"), ("y", "2")])]


def test_a_section_ends_at_its_level_or_a_higher_one_and_a_table_is_found_by_its_header():
    text = (
        "## A\n\n### B\n| x | y |\n|---|---|\n| 1 | 2 |\n\n| x | z |\n|---|---|\n| **3** | 4 |\n"
        "#### deeper\ntext\n### C\n| x | y |\n|---|---|\n| 5 | 6 |\n## D\n"
    )
    body = section(text, "### B")
    assert "deeper" in body and "### C" not in body and "| 5 |" not in body
    assert table(body, "| x | z") == {"3": ["4"]}
    assert table(body, "| x |") == {"1": ["2"]}
    assert "## D" not in section(text, "## A") and "| 5 | 6 |" in section(text, "## A")
    with pytest.raises(AssertionError, match="no table"):
        table(body, "| y |")
    with pytest.raises(AssertionError):
        section(text + "### B\n", "### B")
