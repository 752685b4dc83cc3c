"""The ``conll`` data source on tiny made-up CoNLL files: tasks, tag schemes, padding, the
position task, unseen tags, word vectors, and bad input through the command line."""

from __future__ import annotations

import json
import pickle
import re

import pytest
import torch

from mtlshare.app.build import build_problem
from mtlshare.cli import main
from mtlshare.config import load_config
from mtlshare.errors import ConfigError, DataError, UnseenTagsWarning
from mtlshare.tasks.metrics import IGNORE_INDEX

TRAIN = """-DOCSTART- -X- -X- O

EU NNP B-NP B-ORG
rejects VBZ B-VP O
German JJ B-NP B-MISC
call NN I-NP O

Peter NNP B-NP B-PER
Blackburn NNP I-NP I-PER

Bonn NNP B-NP B-LOC
"""
DEV = """Peter NNP B-NP B-PER
Blackburn NNP I-NP I-PER
rejects VBZ B-VP O

German JJ B-NP B-MISC
"""
TEST = """EU NNP B-NP B-ORG
call NN I-NP O
"""

CONFIG = """
mechanism = "hard"
[data]
source = "conll"
train = "train.txt"
dev = "dev.txt"
test = "test.txt"
[data.tasks.pos]
column = "pos"
[data.tasks.chunk]
column = "chunk"
scheme = "iob2"
[data.tasks.ner]
column = 3
scheme = "iob2"
encode = "bioes"
[trunk]
kind = "lstm"
hidden = [8]
[train]
epochs = 2
batch_size = 2
"""


@pytest.fixture
def corpus(tmp_path):
    for name, text in (("train", TRAIN), ("dev", DEV), ("test", TEST)):
        (tmp_path / f"{name}.txt").write_text(text, encoding="utf-8")
    (tmp_path / "run.toml").write_text(CONFIG, encoding="utf-8")
    return tmp_path


def problem(corpus, *overrides):
    cfg = load_config(corpus / "run.toml", list(overrides))
    return build_problem(cfg, corpus)


def test_tasks_inputs_and_padding(corpus):
    p = problem(corpus)
    names = [td.task.name for td in p.tasks]
    assert names == ["pos", "chunk", "ner"]
    pos, chunk, ner = p.tasks
    assert pos.task.metric == "accuracy" and chunk.task.metric == "span_f1"
    assert ner.task.metric == "span_f1"
    # NER is trained in BIOES: single-token entities are S-, two-token ones B- E-
    assert {"S-ORG", "S-MISC", "B-PER", "E-PER", "S-LOC", "O"} == set(ner.task.labels)
    assert chunk.task.labels == ("B-NP", "I-NP", "B-VP")  # most frequent first
    train = pos.train
    assert train.lengths.tolist() == [4, 2, 1]
    assert train.x.dtype == torch.int32 and train.x.shape[:2] == (3, 4)
    assert train.y[1].tolist()[2:] == [IGNORE_INDEX, IGNORE_INDEX]  # padding is a missing label
    assert (train.x[1, 2:] == 0).all()  # and an all-zero input step
    labels = ner.task.labels
    assert [labels[i] for i in ner.train.y[1, :2].tolist()] == ["B-PER", "E-PER"]
    # every task reads the same sentences
    assert torch.equal(pos.train.x, ner.train.x)
    # a batch is cut to its longest sentence
    x, y = train.take(torch.tensor([1, 2]))
    assert x.shape[1] == 2 and y.shape == (2, 2)
    assert p.meta["sentences"] == {"train": 3, "dev": 2, "test": 1}
    assert ner.dev.lengths.tolist() == [3, 1]
    assert p.meta["tokens"]["train"] == 7


def test_words_unknown_in_training_map_to_the_unknown_id(corpus):
    p = problem(corpus)
    dev_words = p.tasks[0].dev.x[:, :, 0]
    assert int(dev_words.min()) >= 0
    p2 = problem(corpus, "data.min_freq=2")
    # only "rejects"... nothing occurs twice except none: every word is unknown (id 1)
    real = p2.tasks[0].train.lengths
    ids = p2.tasks[0].train.x[:, :, 0]
    for row, n in enumerate(real.tolist()):
        assert set(ids[row, :n].tolist()) <= {1}


def test_position_task_labels_are_token_indices(corpus):
    (corpus / "pos.toml").write_text(
        CONFIG.replace('[data.tasks.pos]\ncolumn = "pos"', '[data.tasks.pos]\nkind = "position"'),
        encoding="utf-8",
    )
    cfg = load_config(corpus / "pos.toml", ["data.tasks.pos.max_position=3"])
    p = build_problem(cfg, corpus)
    position = p.tasks[0]
    assert position.task.labels == ("0", "1", "2")
    assert position.train.y[0].tolist() == [0, 1, 2, 2]  # later positions share the last class
    assert position.train.y[1].tolist() == [0, 1, IGNORE_INDEX, IGNORE_INDEX]


def test_tag_never_seen_in_training_is_an_error_or_mapped(corpus):
    (corpus / "dev.txt").write_text(
        "Peter NNP B-NP B-PER\nBlackburn NNP I-NP I-PER\nruns VBZ B-VP B-EVENT\n", "utf-8"
    )
    with pytest.raises(DataError, match=r"dev\.txt:3: task 'ner': tag 'B-EVENT' is 'S-EVENT' in"):
        problem(corpus)
    with pytest.warns(UserWarning, match=r"dev\.txt:3: task 'ner': tags never seen in training"):
        p = problem(corpus, "data.unseen_tags=map")
    ner = p.tasks[2].task
    # a gold-only class after the trained ones: the gold keeps its tag, no prediction has it
    assert int(p.tasks[2].dev.y[0, 2]) == ner.out_dim and ner.gold_only == ("S-EVENT",)


def test_the_unseen_tags_warning_survives_pickling_as_errors_from_workers_do():
    """Under ``-W error`` the warning is an exception, and a worker process pickles it back."""
    w = pickle.loads(pickle.dumps(UnseenTagsWarning("dev.txt:3: tags never seen", "ner", "dev")))
    assert (str(w), w.task, w.split) == ("dev.txt:3: tags never seen", "ner", "dev")


def test_unseen_tags_are_reported_as_the_file_writes_them_not_as_trained(corpus):
    """NER is IOB2 in the files and trained in BIOES; training saw LOC only as one word (S-LOC).
    A two-word LOC in dev is B-LOC E-LOC in BIOES, both unseen: the warning counts the file's
    B-LOC and I-LOC (the one-word B-LOC, S-LOC when trained, was seen), while the classes kept
    in the gold stay the BIOES ones."""
    (corpus / "dev.txt").write_text(
        "Berlin NNP B-NP B-LOC\nMitte NNP I-NP I-LOC\nrejects VBZ B-VP O\n\nBonn NNP B-NP B-LOC\n",
        "utf-8",
    )
    with pytest.raises(DataError, match=r":1: task 'ner': tag 'B-LOC' is 'B-LOC' in bioes"):
        problem(corpus)
    with pytest.warns(UserWarning) as caught:
        p = problem(corpus, "data.unseen_tags=map")
    (message,) = [str(w.message) for w in caught if "never seen" in str(w.message)]
    assert "dev.txt:1: task 'ner': tags never seen in training (as bioes" in message
    assert message.endswith(": {'B-LOC': 1, 'I-LOC': 1}")
    ner = p.tasks[2]
    assert ner.task.gold_only == ("B-LOC", "E-LOC")
    labels = [*ner.task.labels, *ner.task.gold_only]
    assert [labels[int(i)] for i in ner.dev.y[0, :3]] == ["B-LOC", "E-LOC", "O"]
    assert labels[int(ner.dev.y[1, 0])] == "S-LOC"


def test_malformed_tag_names_file_and_line(corpus):
    (corpus / "test.txt").write_text("EU NNP B-NP X-ORG\n", "utf-8")
    with pytest.raises(DataError, match=r"test\.txt:1: task 'ner': tag 'X-ORG'"):
        problem(corpus)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("data.tasks.pos.colour=1", "unknown key data.tasks.pos.colour"),
        ("data.tasks.pos.metric=span_f1", "span_f1 needs a span scheme"),
        ("data.tasks.pos.encode=bioes", "set scheme"),
        ("data.tasks.pos.column=lemma", "no column named 'lemma'"),
        ("data.tasks.ner.scheme=bio", "'bio' is not one of"),
        # it listed ('linear', 'crf', 'affine'), and affine was then refused for tagging
        (
            "data.tasks.ner.head=softmax",
            r"^data.tasks.ner.head: 'softmax' is not one of linear, crf$",
        ),
        (
            "data.tasks.pos.head=affine",
            r"^data.tasks.pos.head: 'affine' is not one of linear, crf \(an affine "
            "head is for regression tasks\\)$",
        ),
        ("data.unseen_tags=drop", "data.unseen_tags"),
        ("data.word_column=token", "data.word_column"),
        ("data.char_width=2", "data.char_width"),
        ("data.train=", "data.train"),
        # each refusal of the [data] table and of a task's table, whole
        ("data.tasks={}", r"^data\.tasks: define at least one task$"),
        (
            "data.dev=",
            r"^data\.dev: the path of a CoNLL file is required \(or dev_from_train = N\)$",
        ),
        ("data.dev_from_train=1", r"^data: give a dev file or dev_from_train = N, not both$"),
        ("data.train_sentences=-1", r"^data\.train_sentences: must be >= 0, got -1$"),
        ("data.min_freq=0", r"^data\.min_freq: must be >= 1, got 0$"),
        (
            "data.char_filters=-1",
            r"^data\.char_filters: must be >= 0 \(0: no character CNN\), got -1$",
        ),
        ("data.dropout=1.0", r"^data\.dropout: must be in \[0, 1\), got 1\.0$"),
        (
            "data.tasks.pos.kind=lemma",
            r"^data\.tasks\.pos\.kind: 'lemma' is not one of tags, position, next_word$",
        ),
        (
            "data.tasks.x={kind='tags'}",
            r"^data\.tasks\.x\.column: which column holds this task's tags\?$",
        ),
        (
            "data.tasks.x={column=1.5}",
            r"^data\.tasks\.x\.column: expected a name or an index, got 1\.5$",
        ),
        (
            "data.tasks.lm={kind='next_word', column=1}",
            r"^data\.tasks\.lm: a next_word task reads no column and has no scheme$",
        ),
        (
            "data.tasks.pos.tie_embedding=1",
            r"^data\.tasks\.pos\.tie_embedding: expected true or false, got 1$",
        ),
        (
            "data.tasks.pos.max_position=-1",
            r"^data\.tasks\.pos\.max_position: expected an integer >= 0, got -1$",
        ),
    ],
)
def test_bad_settings_name_the_key(corpus, override, message):
    with pytest.raises(ConfigError, match=message):
        problem(corpus, override)


def test_a_task_that_is_no_table_is_refused_where_the_config_is_built_in_python():
    """A config file's ``data.tasks.pos = 3`` is refused as it is read; a ``ConllConfig`` made
    in Python is checked by the source itself."""
    from mtlshare.data.tagging import ConllConfig

    with pytest.raises(ConfigError, match=r"^data\.tasks\.pos: expected a table, got 3$"):
        ConllConfig(train="t", dev="d", test="s", tasks={"pos": 3}).validate()  # type: ignore[dict-item]


def test_glove_vectors_initialise_the_embeddings(corpus):
    (corpus / "vec.txt").write_text("peter 1 2 3\ncall 4 5 6\nunseen 7 8 9\n", "utf-8")
    with pytest.raises(ConfigError, match="holds 3-d vectors"):
        problem(corpus, "data.glove=vec.txt")
    p = problem(corpus, "data.glove=vec.txt", "data.word_dim=3")
    assert p.meta["glove_found"] == 2  # "Peter" (lower-cased) and "call"
    stem = p.build_stem()
    weights = stem.words.weight
    assert any(torch.equal(row, torch.tensor([1.0, 2.0, 3.0])) for row in weights)


def run_cli(capsys, corpus, out, command="run"):
    """``mtlshare COMMAND corpus/run.toml --out OUT`` in this process: exit code and stderr."""
    capsys.readouterr()
    code = main([command, str(corpus / "run.toml"), "--out", str(out)])
    return code, capsys.readouterr().err


def test_run_prints_tokens_per_second_and_records_it(corpus, capsys):
    out = corpus / "out"
    code, err = run_cli(capsys, corpus, out)
    assert code == 0, err
    # each epoch's line says its seconds (dev scoring included) and speed: a log of hours
    # tells how long the epochs left would take
    assert re.search(r"^epoch 2/2: [\d,]+ s, [\d,]+ tokens/s, dev ", err, re.MULTILINE), err
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    # 7 labelled training tokens per task, 3 tasks: every epoch sees tokens
    assert all(r["tokens_per_second"] > 0 for r in records)
    results = json.loads((out / "results.json").read_text())
    assert set(results["tasks"]) == {"pos", "chunk", "ner"}


def test_bad_file_gives_one_line_and_no_output(corpus, capsys):
    (corpus / "train.txt").write_text("EU NNP B-NP B-ORG\nrejects VBZ B-VP\n", "utf-8")
    out = corpus / "out"
    code, err = run_cli(capsys, corpus, out)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err
    assert "train.txt:2: 3 columns where every token line has 4" in lines[0]
    assert not out.exists()
    code, err = run_cli(capsys, corpus, out, "compare")  # compare fails before making --out too
    assert code == 2 and "train.txt:2:" in err
    assert not out.exists()


def test_lowercase_merges_words_and_min_freq_drops_rare_ones(corpus):
    (corpus / "train.txt").write_text(
        "The DT B-NP O\nthe DT B-NP O\ncat NN I-NP O\n\nTHE DT B-NP O\ndog NN I-NP O\n",
        "utf-8",
    )
    cased = problem(corpus, "data.unseen_tags=map")
    lower = problem(corpus, "data.unseen_tags=map", "data.lowercase=true")
    assert cased.meta["words"] == 2 + 5  # The, the, cat, THE, dog
    assert lower.meta["words"] == 2 + 3  # the, cat, dog
    ids = lower.tasks[0].train.x[:, 0, 0].tolist()
    assert ids[0] == ids[1]  # "The" and "THE" read as "the"
    rare = problem(corpus, "data.unseen_tags=map", "data.lowercase=true", "data.min_freq=2")
    assert rare.meta["words"] == 2 + 1  # only "the" occurs twice
    assert rare.tasks[0].train.x[0, 2, 0].item() == 1  # "cat" is now the unknown word


def test_a_sparse_run_prints_its_warm_up_and_every_search_round(corpus, capsys):
    """The mask search has no epoch lines of its own: a background run's log shows the
    warm-up and one line per pruning round (task, round, density, dev score)."""
    out = corpus / "sparse"
    args = ["mechanism=sparse", "sparse.warmup_steps=2", "sparse.round_steps=2"]
    args += ["sparse.alpha=0.5", "sparse.target_density=0.3"]
    capsys.readouterr()
    code = main(["run", str(corpus / "run.toml"), "--out", str(out), *args])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "mask search: multi-task warm-up, 2 steps" in err
    rounds = [line for line in err.splitlines() if line.startswith("mask search ner round")]
    assert [r.split(":")[0] for r in rounds] == [f"mask search ner round {i}" for i in range(3)]
    assert rounds[0].split(": ")[1].startswith("density 1.000, dev ")
    capsys.readouterr()
    quiet = ["run", str(corpus / "run.toml"), "--out", str(corpus / "q"), "--quiet", *args]
    assert main(quiet) == 0
    assert "mask search" not in capsys.readouterr().err


def test_a_test_tag_never_seen_in_training_stays_in_the_gold(corpus):
    """data.unseen_tags = "map" must not rewrite the gold of dev or test: a token whose gold
    tag never occurs in training is one the model can only get wrong, as conlleval (or plain
    accuracy) reads the file. Rewriting it to the fallback tag credited a model predicting that
    tag: CoNLL-2000's test file has "( 1" tagged B-LST I-LST, and I-LST never occurs in its
    training file, so a model writing B-LST O scored a correct chunk."""
    # POS: VBD never occurs in training (NNP, the most frequent training tag, was the fallback);
    # chunking: I-VP never occurs in training (B-VP does): the gold chunk is VP over 2 tokens
    (corpus / "test.txt").write_text("EU NNP B-VP O\nsaid VBD I-VP O\n", "utf-8")
    with pytest.warns(UserWarning, match=r"test\.txt:2: task 'pos'"):
        p = problem(corpus, "data.unseen_tags=map")
    pos, chunk, _ = p.tasks
    guess = pos.task.labels.index("NNP")
    pred = torch.full_like(pos.test.y, guess)
    assert pos.task.evaluate(pred, pos.test.y) == 0.5  # NNP is right once, VBD never
    b_vp, b_np = chunk.task.labels.index("B-VP"), chunk.task.labels.index("B-NP")
    pred = torch.tensor([[b_vp, b_np]])  # B-NP, the most frequent training tag, was the fallback
    assert chunk.task.evaluate(pred, chunk.test.y) == 0.0  # VP(0,1), NP(1,2): not VP(0,2)
    exact = torch.tensor([[b_vp, chunk.task.out_dim]])  # the gold itself scores 1
    assert chunk.task.evaluate(exact, chunk.test.y) == 1.0
    # the classes the model predicts are the training tags only
    assert pos.task.out_dim == len(pos.task.labels) and "VBD" not in pos.task.labels


def test_a_malformed_tag_inside_a_sentence_names_its_own_line(corpus):
    (corpus / "test.txt").write_text("EU NNP B-NP B-ORG\ncall NN I-NP X-ORG\n", "utf-8")
    with pytest.raises(DataError, match=r"test\.txt:2: task 'ner': tag 'X-ORG'"):
        problem(corpus)


def test_sentence_limits_read_exactly_that_many_sentences(corpus):
    p = problem(corpus, "data.train_sentences=2", "data.dev_sentences=1")
    assert p.meta["sentences"] == {"train": 2, "dev": 1, "test": 1}
    assert [len(td.train) for td in p.tasks] == [2, 2, 2]
