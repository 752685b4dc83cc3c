"""Span F1 over class-id tensors, as a task's metric: ids named by the task's labels,
missing positions (-100) ending each sequence."""

from __future__ import annotations

import math

import pytest
import torch

from mtlshare.errors import ConfigError
from mtlshare.tasks.metrics import IGNORE_INDEX, accuracy, span_f1
from mtlshare.tasks.task import Task

LABELS = ("O", "B-PER", "I-PER", "B-LOC", "S-LOC", "E-PER")


def ids(*tags):
    return [LABELS.index(t) if t else IGNORE_INDEX for t in tags]


def test_span_f1_over_padded_id_sequences():
    target = torch.tensor([ids("B-PER", "I-PER", "O", None), ids("B-LOC", "O", "B-PER", "I-PER")])
    # sentence 1 right; sentence 2: LOC right, PER cut short (B-PER I-PER -> B-PER O)
    pred = torch.tensor([ids("B-PER", "I-PER", "O", "B-LOC"), ids("B-LOC", "O", "B-PER", "O")])
    # gold 3 spans, predicted 3 (the B-LOC on a padded step is not read), 2 correct
    assert span_f1(pred, target, LABELS) == pytest.approx(2 / 3)


def test_i_after_o_and_type_change_read_as_conlleval_does():
    target = torch.tensor([ids("O", "I-PER", "I-PER", "O")])  # I- after O opens a span
    assert span_f1(target, target, LABELS) == 1.0
    pred = torch.tensor([ids("O", "B-PER", "I-PER", "O")])
    assert span_f1(pred, target, LABELS) == 1.0  # same span (1, 3)
    changed = torch.tensor([ids("O", "B-PER", "B-LOC", "O")])  # the type changes inside
    assert span_f1(changed, target, LABELS) == 0.0


def test_bioes_single_token_spans():
    target = torch.tensor([ids("S-LOC", "B-PER", "E-PER", "S-LOC")])
    pred = torch.tensor([ids("S-LOC", "B-PER", "E-PER", "O")])
    # gold: 3 spans (two one-token S-LOC, one B- E-); predicted 2, both right: P 1, R 2/3
    assert span_f1(pred, target, LABELS) == pytest.approx(0.8)


def test_nothing_observed_is_nan():
    target = torch.full((2, 3), IGNORE_INDEX)
    assert math.isnan(span_f1(torch.zeros(2, 3, dtype=torch.long), target, LABELS))


def test_task_with_span_f1_needs_one_label_per_class():
    task = Task("ner", "classification", out_dim=len(LABELS), metric="span_f1", labels=LABELS)
    assert task.higher_is_better
    target = torch.tensor([ids("B-PER", "E-PER")])
    logits = torch.nn.functional.one_hot(target, len(LABELS)).float()
    assert task.score(logits, target) == 1.0
    with pytest.raises(ConfigError, match="needs one label per class"):
        Task("ner", "classification", out_dim=3, metric="span_f1", labels=LABELS)


def test_accuracy_reads_ids_or_logits():
    target = torch.tensor([[1, 2, IGNORE_INDEX]])
    assert accuracy(torch.tensor([[1, 0, 5]]), target) == 0.5
    logits = torch.nn.functional.one_hot(torch.tensor([[1, 2, 0]]), 3).float()
    assert accuracy(logits, target) == 1.0


def test_a_gold_only_tag_is_a_missed_span_not_an_error():
    """``gold_only`` tags (seen only in dev/test gold) take ids from ``out_dim`` on; no prediction
    can match them, so their spans count in the recall's denominator."""
    task = Task(
        "ner", "classification", len(LABELS), "span_f1", labels=LABELS, gold_only=("S-MISC",)
    )
    misc = len(LABELS)  # the id of the gold-only tag
    target = torch.tensor([[LABELS.index("S-LOC"), LABELS.index("O"), misc]])
    pred = torch.tensor([[LABELS.index("S-LOC"), LABELS.index("O"), LABELS.index("O")]])
    # gold: LOC and MISC; predicted: LOC, right -> precision 1, recall 1/2
    assert task.evaluate(pred, target) == pytest.approx(2 / 3)
