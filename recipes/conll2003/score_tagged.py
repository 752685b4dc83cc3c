"""Score a CoNLL-2003 file tagged by ``mtlshare predict`` with seqeval, apart from mtlshare.

    mtlshare predict RUN ../shared/data/conll2003/test.txt --out tagged.conll
    python recipes/conll2003/score_tagged.py tagged.conll

The tagged file keeps the four columns of the input (word, POS, chunk, NER) and gains one
predicted column per task (POS, chunk, NER, in the run's order); ``-DOCSTART-`` lines are left
out of the scores, as the reader leaves them out of training. Prints POS accuracy and the span F1
of chunking and NER by seqeval's default (conlleval's) rules, the run's own ``results.json``
metric, and by strict IOB2 rules beside them.
"""

from __future__ import annotations

import sys
from pathlib import Path

from seqeval.metrics import f1_score
from seqeval.scheme import IOB2

GOLD = {"pos": 1, "chunk": 2, "ner": 3}
PREDICTED = {"pos": 4, "chunk": 5, "ner": 6}


def sentences(path: Path) -> list[list[list[str]]]:
    """The file's sentences, each a list of its tokens' columns; ``-DOCSTART-`` left out."""
    found: list[list[list[str]]] = []
    current: list[list[str]] = []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise SystemExit(f"{path}: cannot read: {e}") from None
    for number, line in enumerate(text.splitlines(), 1):
        columns = line.split()
        if not columns:
            if current:
                found.append(current)
                current = []
        elif columns[0] != "-DOCSTART-":
            if len(columns) != 7:
                raise SystemExit(f"{path}:{number}: {len(columns)} columns, expected 7")
            current.append(columns)
    if current:
        found.append(current)
    return found


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        raise SystemExit("usage: python recipes/conll2003/score_tagged.py TAGGED_FILE")
    path = Path(argv[0])
    tagged = sentences(path)
    tokens = [t for s in tagged for t in s]
    if not tokens:
        raise SystemExit(f"{path}: no tokens to score")
    right = sum(t[GOLD["pos"]] == t[PREDICTED["pos"]] for t in tokens)
    print(f"{len(tagged):,} sentences, {len(tokens):,} tokens")
    print(f"pos accuracy {right / len(tokens)!r}")
    for task in ("chunk", "ner"):
        gold = [[t[GOLD[task]] for t in s] for s in tagged]
        predicted = [[t[PREDICTED[task]] for t in s] for s in tagged]
        strict = f1_score(gold, predicted, mode="strict", scheme=IOB2)
        print(f"{task} span F1 {float(f1_score(gold, predicted))!r} (strict IOB2 {strict:.4f})")


if __name__ == "__main__":
    main(sys.argv[1:])
