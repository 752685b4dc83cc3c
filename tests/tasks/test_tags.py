"""Chunk tags: conlleval's reading on hand-built cases, scheme conversion, and span scores checked
against seqeval's conlleval-compatible default mode."""

from __future__ import annotations

import itertools
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mtlshare.errors import ConfigError, DataError
from mtlshare.tasks.tags import (
    SCHEMES,
    SpanScores,
    check_tag,
    convert,
    encode,
    span_scores,
    spans,
)

# A type with a hyphen checks that the type is everything after the first hyphen.
TYPES = ("PER", "LOC", "MISC-X")
tag = st.one_of(
    st.just("O"),
    st.builds(lambda p, t: f"{p}-{t}", st.sampled_from("BIES"), st.sampled_from(TYPES)),
)
sentence = st.lists(tag, max_size=12)
# deadline=None: the suite may share two cores with a long experiment.
quick = settings(max_examples=200, deadline=None)


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        ([], []),
        (["O", "O"], []),
        # I- after O starts a chunk (how conlleval reads ill-formed IOB2)
        (["O", "I-PER", "I-PER", "O"], [("PER", 1, 3)]),
        (["I-PER"], [("PER", 0, 1)]),
        # a type change inside a chunk splits it
        (["B-PER", "I-LOC"], [("PER", 0, 1), ("LOC", 1, 2)]),
        (["B-PER", "I-PER", "I-LOC", "I-LOC"], [("PER", 0, 2), ("LOC", 2, 4)]),
        # B- after I- of the same type starts a new chunk
        (["B-PER", "I-PER", "B-PER", "I-PER"], [("PER", 0, 2), ("PER", 2, 4)]),
        # IOB1: B- only separates two adjacent chunks of one type
        (["I-PER", "I-PER", "B-PER"], [("PER", 0, 2), ("PER", 2, 3)]),
        (["I-PER", "I-LOC", "O", "I-ORG"], [("PER", 0, 1), ("LOC", 1, 2), ("ORG", 3, 4)]),
        # BIOES: S- is a one-token chunk, E- closes one
        (["S-PER", "S-PER", "O", "S-LOC"], [("PER", 0, 1), ("PER", 1, 2), ("LOC", 3, 4)]),
        (["B-PER", "I-PER", "E-PER", "I-PER"], [("PER", 0, 3), ("PER", 3, 4)]),
        (["B-PER", "E-PER", "E-PER"], [("PER", 0, 2), ("PER", 2, 3)]),
        (["B-PER", "S-PER", "E-PER"], [("PER", 0, 1), ("PER", 1, 2), ("PER", 2, 3)]),
        # E-X then B-X: two chunks by the S-aware rules (the 2004 perl script would merge them)
        (["E-PER", "B-PER"], [("PER", 0, 1), ("PER", 1, 2)]),
        # E- after O starts a chunk; the end of the sentence closes the last one
        (["O", "E-LOC", "B-LOC", "I-LOC"], [("LOC", 1, 2), ("LOC", 2, 4)]),
        (["B-MISC-X", "I-MISC-X"], [("MISC-X", 0, 2)]),
    ],
)
def test_spans_known_answers(tags, expected):
    assert spans(tags) == expected


# One sentence, written in each scheme: adjacent PER chunks, a one-token LOC, a 3-token MISC.
SPANS = [("PER", 0, 2), ("PER", 2, 3), ("LOC", 4, 5), ("MISC", 5, 8)]
WRITTEN = {
    "iob1": ["I-PER", "I-PER", "B-PER", "O", "I-LOC", "I-MISC", "I-MISC", "I-MISC", "O"],
    "iob2": ["B-PER", "I-PER", "B-PER", "O", "B-LOC", "B-MISC", "I-MISC", "I-MISC", "O"],
    "bioes": ["B-PER", "E-PER", "S-PER", "O", "S-LOC", "B-MISC", "I-MISC", "E-MISC", "O"],
}


@pytest.mark.parametrize("scheme", SCHEMES)
def test_encode_known_answers(scheme):
    assert encode(SPANS, 9, scheme) == WRITTEN[scheme]
    assert encode(list(reversed(SPANS)), 9, scheme) == WRITTEN[scheme]
    assert spans(WRITTEN[scheme]) == SPANS


@pytest.mark.parametrize(("source", "target"), list(itertools.product(SCHEMES, SCHEMES)))
def test_convert_known_answers(source, target):
    assert convert(WRITTEN[source], source, target) == WRITTEN[target]


def test_convert_repairs_ill_formed_iob2():
    ill = ["O", "I-PER", "I-PER", "B-LOC", "I-ORG"]
    assert convert(ill, "iob2", "iob2") == ["O", "B-PER", "I-PER", "B-LOC", "B-ORG"]
    assert convert(ill, "iob2", "bioes") == ["O", "B-PER", "E-PER", "S-LOC", "S-ORG"]


def test_encode_empty_and_bad_spans():
    assert encode([], 3, "bioes") == ["O", "O", "O"]
    assert encode([], 0, "iob1") == []
    for bad in ([("PER", 0, 2), ("LOC", 1, 3)], [("PER", 2, 2)], [("PER", 0, 4)], [("", 0, 1)]):
        with pytest.raises(ValueError):
            encode(bad, 3, "iob2")


@pytest.mark.parametrize("name", ["IOB2", "bio", "", "ioe1"])
def test_unknown_scheme_is_config_error(name):
    for call in (
        lambda: convert(["O"], name, "iob2"),
        lambda: convert(["O"], "iob2", name),
        lambda: encode([], 1, name),
    ):
        with pytest.raises(ConfigError, match=r"iob1, iob2, bioes"):
            call()


@pytest.mark.parametrize("bad", ["X-PER", "B-", "PER", "", "O-PER", "b-PER", "BPER"])
def test_check_tag_rejects(bad):
    with pytest.raises(DataError, match=rf"^tag {bad!r}: "):
        check_tag(bad)


@pytest.mark.parametrize("good", ["O", "B-MISC", "I-PER", "E-ORG", "S-LOC", "B-MISC-X"])
def test_check_tag_accepts(good):
    check_tag(good)


@quick
@given(sentence)
def test_chunks_partition_the_non_o_tokens(tags):
    found = spans(tags)
    covered = [i for _, start, end in found for i in range(start, end)]
    assert covered == [i for i, t in enumerate(tags) if t != "O"]  # sorted, disjoint, no O
    for kind, start, end in found:
        assert start < end
        assert {t.partition("-")[2] for t in tags[start:end]} == {kind}


@quick
@given(sentence)
def test_convert_keeps_every_chunk(tags):
    chunks = spans(tags)
    for source, target in itertools.product(SCHEMES, SCHEMES):
        converted = convert(tags, source, target)
        assert len(converted) == len(tags)
        assert spans(converted) == chunks
        for t in converted:
            check_tag(t)
        # a well-formed sequence is its own conversion
        assert convert(converted, target, target) == converted
    chained = convert(convert(convert(tags, "iob1", "iob2"), "iob2", "bioes"), "bioes", "iob1")
    assert spans(chained) == chunks
    assert spans(encode(chunks, len(tags), "bioes")) == chunks


@pytest.fixture(scope="module")
def seqeval():
    return pytest.importorskip("seqeval")


# seqeval 1.2.2's default mode (mode=None, "compatible with conlleval.pl") reads chunks with
# endOfChunk/startOfChunk rules that include S- and treat E- as closing: the same S-aware rules
# as spans(). So the cross-checks draw B, I, E, S and O tags, not only B/I/O. (The 2004 perl
# script itself has no S- rules and keeps E-X B-X as one chunk; on B/I/O tags, i.e. IOB1 and
# IOB2, all three agree.)
@quick
@given(sentence)
def test_spans_match_seqeval(seqeval, tags):
    from seqeval.metrics.sequence_labeling import get_entities

    inclusive = get_entities(list(tags))  # (type, first, last)
    assert spans(tags) == [(kind, start, last + 1) for kind, start, last in inclusive]


@st.composite
def gold_and_pred(draw):
    """1-5 sentences of gold tags, and predictions that copy about half of the gold tags so
    that some chunks match."""
    lengths = draw(st.lists(st.integers(0, 10), min_size=1, max_size=5))
    gold = [draw(st.lists(tag, min_size=n, max_size=n)) for n in lengths]
    pred = [[t if draw(st.booleans()) else draw(tag) for t in g] for g in gold]
    return gold, pred


@quick
@given(gold_and_pred())
def test_span_scores_match_seqeval(seqeval, gold_pred):
    from seqeval.metrics import f1_score, precision_score, recall_score

    gold, pred = gold_pred
    scores = span_scores(gold, pred)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # seqeval warns when a denominator is 0, then gives 0
        assert abs(scores.precision - precision_score(gold, pred)) <= 1e-12
        assert abs(scores.recall - recall_score(gold, pred)) <= 1e-12
        assert abs(scores.f1 - f1_score(gold, pred)) <= 1e-12
    assert scores.gold == sum(len(spans(g)) for g in gold)
    assert scores.predicted == sum(len(spans(p)) for p in pred)


def test_span_scores_hand_counted():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG"], []]
    pred = [["B-PER", "I-PER", "O", "B-ORG"], ["O"], []]
    # gold PER, LOC, ORG; predicted PER (right), ORG at the wrong place
    scores = span_scores(gold, pred)
    assert (scores.gold, scores.predicted, scores.correct) == (3, 2, 1)
    assert (scores.precision, scores.recall) == (0.5, 1 / 3)
    assert scores.f1 == pytest.approx(0.4, abs=1e-15)
    # I-PER I-PER reads as the same chunk as B-PER I-PER
    assert span_scores([["B-PER", "I-PER"]], [["I-PER", "I-PER"]]).f1 == 1.0
    # one chunk too short is neither a match nor half of one
    assert span_scores([["B-PER", "I-PER"]], [["B-PER", "O"]]).correct == 0


def test_span_scores_zero_denominators():
    nothing = span_scores([["O", "O"]], [["O", "O"]])
    assert nothing == SpanScores(0.0, 0.0, 0.0, 0, 0, 0)
    assert span_scores([], []) == SpanScores(0.0, 0.0, 0.0, 0, 0, 0)
    missed = span_scores([["B-PER"]], [["O"]])
    assert (missed.precision, missed.recall, missed.f1) == (0.0, 0.0, 0.0)
    invented = span_scores([["O"]], [["S-PER"]])
    assert (invented.precision, invented.recall, invented.f1) == (0.0, 0.0, 0.0)


def test_span_scores_shape_mismatch():
    with pytest.raises(ValueError, match="sentences"):
        span_scores([["O"]], [["O"], ["O"]])
    with pytest.raises(ValueError, match="sentence 1"):
        span_scores([["O"], ["O", "O"]], [["O"], ["O"]])
    with pytest.raises(ValueError, match="string"):
        span_scores(["B-PER", "O"], ["B-PER", "O"])
