"""Reading the Markdown tables of the docs, for the tests that check them against kept runs.
One reader, so that every doc test splits a row the same way (bold dropped, outer pipes
stripped) and finds a section's table the same way; and the user's guide (the README and the
pages it sends a user to), whose examples the tests run."""

from __future__ import annotations

import re
from pathlib import Path

Cells = tuple[str, ...]

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
# README.md and the pages of docs/ it sends a user to, in the README's order: where the tests
# that run the docs' examples look for them, so that an example moved between pages keeps its
# test
GUIDE = [
    ROOT / "README.md",
    *(
        DOCS / name
        for name in (
            "command-line.md",
            "config.md",
            "mechanisms.md",
            "data.md",
            "forecasting.md",
            "predict.md",
            "experiments.md",
            "performance.md",
        )
    ),
]


def code_blocks(language: str) -> list[str]:
    """The fenced code blocks of ``language`` (a regular expression: ``python|py``) in the
    guide's pages, in order."""
    pattern = re.compile(rf"```(?:{language})\n(.*?)```", flags=re.S)
    return [b for page in GUIDE for b in pattern.findall(page.read_text(encoding="utf-8"))]


def cells(row: str) -> Cells:
    """A table row's cells, stripped, bold dropped."""
    return tuple(c.strip().replace("**", "") for c in row.strip().strip("|").split("|"))


def tables(text: str) -> list[tuple[int, Cells, list[Cells]]]:
    """Each Markdown table of ``text``: its first line's number, its header and its rows (the
    separator line dropped)."""
    found: list[tuple[int, list[str]]] = []
    start, lines = 0, []
    for number, line in enumerate([*text.splitlines(), ""], 1):
        stripped = line.strip()
        if stripped.startswith("|") and stripped.endswith("|"):
            if not lines:
                start = number
            lines.append(stripped)
        elif lines:
            found.append((start, lines))
            lines = []
    return [(n, cells(t[0]), [cells(r) for r in t[2:]]) for n, t in found if len(t) >= 2]


def section(text: str, heading: str) -> str:
    """The text under ``heading`` (which must occur once) up to the next heading of its level or
    a higher one."""
    assert text.count(heading) == 1, heading
    level = heading.split(" ", 1)[0]
    body = text.split(heading, 1)[1]
    for depth in range(1, len(level) + 1):
        body = body.split("\n" + "#" * depth + " ", 1)[0]
    return body


def table(text: str, header: str) -> dict[str, list[str]]:
    """The rows of the first table of ``text`` whose header line starts with ``header``: first
    cell -> the other cells."""
    for _, head, rows in tables(text):
        if ("| " + " | ".join(head) + " |").startswith(header.strip()):
            return {row[0]: list(row[1:]) for row in rows}
    raise AssertionError(f"no table with the header {header!r}")
