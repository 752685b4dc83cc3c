"""Chunk tags (IOB1, IOB2, BIOES): reading spans as conlleval does, converting, span scores.

A tag is ``O`` or ``P-TYPE`` with prefix ``P`` in B (begin), I (inside), E (end), S (single)
and a non-empty ``TYPE`` (everything after the first hyphen, as conlleval's 2004 version reads
it). ``spans`` turns one sentence's tags into chunks ``(type, start, end)``, ``end`` exclusive.

The reading follows conlleval, the evaluation script of the CoNLL-2000 chunking shared task
(Tjong Kim Sang & Buchholz 2000), also the scorer of CoNLL-2003 NER; version 2004-01-26 at
https://www.clips.uantwerpen.be/conll2000/chunking/conlleval.txt. conlleval walks the tags once
with two tests between each token and the one before it (a sentence boundary counts as ``O``):
``endOfChunk`` says the open chunk ended there and ``startOfChunk`` says a chunk starts there. A
chunk is the run between a start and the next end. It does not check the tags against a scheme,
so it reads IOB1, IOB2 and IOES text alike, and it is lenient: an ``I-`` after ``O`` starts a
chunk, and a type change ends one and starts another. Here, the rules are:

* a chunk ends before ``O``, ``B`` or ``S``, after ``E`` or ``S``, and where the type changes;
* a chunk starts at ``B`` and ``S``, at ``I``/``E`` after ``O`` or after another type, and at
  ``I``/``E`` after an ``E`` or ``S`` of the same type.

The original script knows no ``S`` prefix and does not end a chunk between ``E-X`` and ``B-X``.
The S-aware rules above come from the BIOES versions of conlleval that NER code uses, and
from seqeval's default mode. On B/I/O tags (IOB1, IOB2) they are the same as the original's.

conlleval counts a guessed chunk as correct when its type, start and end match a gold chunk.
Precision, recall and F1 are micro-averaged over all chunks, and are 0 when a denominator is 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mtlshare.errors import ConfigError, DataError, one_of

SCHEMES = ("iob1", "iob2", "bioes")
PREFIXES = ("B", "I", "E", "S")
OUTSIDE = "O"

Span = tuple[str, int, int]  # (type, start, end): tokens start..end-1 of one sentence


def check_tag(tag: str) -> None:
    """Raise ``DataError`` unless ``tag`` is ``O`` or ``P-TYPE`` with ``P`` in B, I, E, S and a
    non-empty ``TYPE``. The message names the tag; callers add the file and line."""
    if tag == OUTSIDE:
        return
    prefix, dash, kind = tag.partition("-")
    if prefix not in PREFIXES or not dash or not kind:
        raise DataError(
            f"tag {tag!r}: expected 'O' or B-, I-, E- or S- followed by a type (e.g. 'B-PER')"
        )


def _split(tag: str) -> tuple[str, str]:
    """``'B-PER'`` -> ``('B', 'PER')``; ``'O'`` -> ``('O', '')``."""
    prefix, _, kind = tag.partition("-")
    return prefix, kind


def _ends(prev: str, prev_kind: str, cur: str, kind: str) -> bool:
    """endOfChunk, S-aware: does a chunk end between ``prev`` and ``cur``?"""
    if prev == OUTSIDE:
        return False
    return prev in ("E", "S") or cur in ("B", "S", OUTSIDE) or prev_kind != kind


def _starts(prev: str, prev_kind: str, cur: str, kind: str) -> bool:
    """startOfChunk, S-aware: does a chunk start at ``cur``?"""
    if cur == OUTSIDE:
        return False
    return cur in ("B", "S") or prev in (OUTSIDE, "E", "S") or prev_kind != kind


def spans(tags: Sequence[str]) -> list[Span]:
    """Chunks of one sentence in order, read as conlleval reads them (see the module docstring).

    Works for IOB1, IOB2 and BIOES (and any mixture), because it follows only local rules.
    ``tags`` are assumed valid (``check_tag``); ``["O", "I-PER", "I-LOC"]`` reads as
    ``[("PER", 1, 2), ("LOC", 2, 3)]``.
    """
    found: list[Span] = []
    prev, prev_kind, start = OUTSIDE, "", 0
    # A trailing "O" plays the part of conlleval's sentence boundary and closes the last chunk.
    for i, tag in enumerate([*tags, OUTSIDE]):
        cur, kind = _split(tag)
        if _ends(prev, prev_kind, cur, kind):
            found.append((prev_kind, start, i))
        if _starts(prev, prev_kind, cur, kind):
            start = i
        prev, prev_kind = cur, kind
    return found


def _check_scheme(scheme: str) -> None:
    if scheme not in SCHEMES:
        raise ConfigError(f"tag scheme {scheme!r} is not one of {one_of(SCHEMES)}")


def encode(spans: Sequence[Span], length: int, scheme: str) -> list[str]:
    """Tags of ``length`` tokens that write the non-overlapping ``spans`` in ``scheme``.

    iob1: ``I-`` throughout, ``B-`` only on the first token of a chunk that directly follows a
    chunk of the same type. iob2: ``B-`` on every first token, ``I-`` on the rest. bioes: ``S-``
    for a one-token chunk, else ``B-``, ``I-``..., ``E-``. Tokens outside every span get ``O``.
    ``ValueError`` if a span is empty, out of range, typeless or overlaps another.
    """
    _check_scheme(scheme)
    tags = [OUTSIDE] * length
    prev_end, prev_kind = -1, ""
    for kind, start, end in sorted(spans, key=lambda span: span[1]):
        if not kind or not 0 <= start < end <= length:
            raise ValueError(f"span {(kind, start, end)} is empty, typeless or outside 0..{length}")
        if start < prev_end:
            raise ValueError(f"span {(kind, start, end)} overlaps a span ending at {prev_end}")
        if scheme == "iob1":
            first = "B" if (start == prev_end and kind == prev_kind) else "I"
            tags[start:end] = [f"{first}-{kind}"] + [f"I-{kind}"] * (end - start - 1)
        elif scheme == "iob2":
            tags[start:end] = [f"B-{kind}"] + [f"I-{kind}"] * (end - start - 1)
        elif end - start == 1:
            tags[start] = f"S-{kind}"
        else:
            tags[start:end] = [f"B-{kind}"] + [f"I-{kind}"] * (end - start - 2) + [f"E-{kind}"]
        prev_end, prev_kind = end, kind
    return tags


def convert(tags: Sequence[str], source: str, target: str) -> list[str]:
    """Rewrite one sentence's ``tags`` from scheme ``source`` to ``target``, keeping the chunks
    conlleval reads. ``source`` is only checked: the reading (``spans``) is the same for all
    schemes, so ill-formed input (``I-`` after ``O`` in IOB2) still converts as conlleval
    would read it. ``ConfigError`` for an unknown scheme name, ``DataError`` for a tag that is
    not ``O`` or ``P-TYPE``."""
    _check_scheme(source)
    _check_scheme(target)
    for tag in tags:
        check_tag(tag)
    return encode(spans(tags), len(tags), target)


@dataclass(frozen=True)
class SpanScores:
    """Micro-averaged chunk scores as conlleval prints them, but as fractions in [0, 1].

    ``gold``/``predicted``: numbers of chunks in the gold and predicted tags; ``correct``:
    predicted chunks whose type, start and end match a gold chunk of the same sentence.
    """

    precision: float
    recall: float
    f1: float
    gold: int
    predicted: int
    correct: int


def span_scores(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> SpanScores:
    """Precision, recall and F1 of the chunks in ``pred`` against those in ``gold``, both lists
    of sentences (each a list of tags), pooled over all sentences. A score whose denominator is 0
    is 0.0, as in conlleval. ``ValueError`` if the numbers of sentences or a sentence's lengths
    differ, or if a sentence is a bare string (a flat tag list passed instead of sentences)."""
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold sentences but {len(pred)} predicted")
    n_gold = n_pred = n_correct = 0
    for i, (gold_tags, pred_tags) in enumerate(zip(gold, pred, strict=True)):
        if isinstance(gold_tags, str) or isinstance(pred_tags, str):
            raise ValueError(f"sentence {i} is a string; expected a list of sentences of tags")
        if len(gold_tags) != len(pred_tags):
            raise ValueError(
                f"sentence {i}: {len(gold_tags)} gold tags but {len(pred_tags)} predicted"
            )
        gold_spans, pred_spans = spans(gold_tags), spans(pred_tags)
        n_gold += len(gold_spans)
        n_pred += len(pred_spans)
        # A sentence's chunks have distinct starts, so set intersection counts each match once.
        n_correct += len(set(gold_spans) & set(pred_spans))
    precision = n_correct / n_pred if n_pred else 0.0
    recall = n_correct / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return SpanScores(precision, recall, f1, n_gold, n_pred, n_correct)
