"""Every relative link in README.md and docs/ leads somewhere: the file exists, and a link to a
heading of a Markdown file (``file.md#heading``, or ``#heading`` within one) names a heading it
has, spelt as GitHub spells its anchors. A renamed result file or a reworded heading shows here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"```.*?```", flags=re.S)
LINK = re.compile(r"\]\(([^)\s]+)\)")


def github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives the headings of ``markdown``: lower case, links reduced to
    their text, every character but letters, digits, ``_``, ``-`` and spaces dropped, spaces
    made ``-``; a repeated anchor gets ``-1``, ``-2`` ..."""
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    for line in FENCE.sub("", markdown).splitlines():
        heading = re.match(r"#{1,6}\s+(.*)", line)
        if heading is None:
            continue
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.group(1).strip())
        anchor = re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")
        n = seen.get(anchor, 0)
        seen[anchor] = n + 1
        anchors.add(anchor if n == 0 else f"{anchor}-{n}")
    return anchors


def relative_links(doc: Path) -> list[str]:
    body = FENCE.sub("", doc.read_text(encoding="utf-8"))
    return [link for link in LINK.findall(body) if not re.match(r"[a-z]+:", link)]


def test_anchors_are_spelt_as_github_spells_them():
    heading = "A `key` (a check; it's here)"
    text = f"# {heading}\n## A [link](x.md) and_more\n# {heading}\n"
    assert github_anchors(text) == {
        "a-key-a-check-its-here",
        "a-link-and_more",
        "a-key-a-check-its-here-1",
    }
    assert github_anchors("```\n# not a heading\n```\n") == set()


@pytest.mark.parametrize("doc", DOCS, ids=[str(d.relative_to(ROOT)) for d in DOCS])
def test_every_relative_link_resolves(doc):
    broken = []
    for link in relative_links(doc):
        path, _, fragment = link.partition("#")
        target = (doc.parent / path) if path else doc
        if not target.exists():
            broken.append(f"{link}: no such file")
        elif (
            fragment
            and target.suffix == ".md"
            and fragment not in github_anchors(target.read_text(encoding="utf-8"))
        ):
            broken.append(f"{link}: no such heading")
    assert not broken, broken


def test_the_docs_have_links_to_check():
    """The pattern finds links at all (a test that checks nothing cannot fail)."""
    links = [link for doc in DOCS for link in relative_links(doc)]
    assert len(links) > 50 and sum("#" in link for link in links) > 10
