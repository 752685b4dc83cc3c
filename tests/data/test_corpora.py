"""Tasks from different corpora (the Sparse Sharing paper's Experiment 3 setting) on tiny
made-up files of different sizes, one corpus without a dev file: each task reads its own
files and columns, vocabularies span every training corpus, a dev slice taken from training is
never trained on, every mechanism trains, and bad corpora are one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import mtlshare.sharing  # noqa: F401  (registers the mechanisms)
from mtlshare.app.add_task import add_task
from mtlshare.app.build import build_problem
from mtlshare.app.compare import compare
from mtlshare.app.run import run
from mtlshare.cli import main
from mtlshare.config import load_config
from mtlshare.data.corpora import read_corpus, shared_spec
from mtlshare.data.datasets import PackedSplit
from mtlshare.data.tag_tasks import task_spec
from mtlshare.errors import ConfigError, DataError

# POS: word POS (two sentences of dev), chunking: word POS chunk (no dev file), NER: the
# shared word POS chunk NER files
POS_TRAIN = "The DT\ncat NN\nsat VBD\n\nA DT\ndog NN\nran VBD\n\nDogs NNS\nbark VBP\n"
POS_DEV = "The DT\ndog NN\n\nA DT\ncat NN\n"
POS_TEST = "A DT\ncat NN\nran VBD\n"
CHUNK_TRAIN = "".join(
    f"w{i} NN B-NP\nv{i} VBZ B-VP\nx{i} DT B-NP\ny{i} NN I-NP\n\n" for i in range(12)
)
CHUNK_TEST = "w1 NN B-NP\nv2 VBZ B-VP\n"
NER_TRAIN = (
    "EU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\nPeter NNP B-NP B-PER\nBlackburn NNP I-NP I-PER\n"
)
NER_DEV = "Peter NNP B-NP B-PER\nBlackburn NNP I-NP I-PER\n"
NER_TEST = "EU NNP B-NP B-ORG\ncall NN I-NP O\n"
CONFIG = """
[data]
source = "conll"
train = "ner_train.txt"
dev = "ner_dev.txt"
test = "ner_test.txt"
columns = ["word", "pos", "chunk", "ner"]
word_dim = 8
char_dim = 4
char_filters = 4
dev_seed = 3
[data.tasks.pos]
column = "pos"
train = "pos_train.txt"
dev = "pos_dev.txt"
test = "pos_test.txt"
columns = ["word", "pos"]
head = "crf"
[data.tasks.chunk]
column = "chunk"
scheme = "iob2"
train = "chunk_train.txt"
test = "chunk_test.txt"
columns = ["word", "pos", "chunk"]
dev_from_train = 4
head = "crf"
[data.tasks.ner]
column = "ner"
scheme = "iob2"
encode = "bioes"
head = "crf"
[trunk]
kind = "lstm"
hidden = [8, 8]
[train]
epochs = 2
batch_size = 2
[hierarchical]
depths = { pos = 1 }
[sparse]
warmup_steps = 2
round_steps = 2
alpha = 0.5
target_density = 0.3
"""
FILES = {
    "pos_train": POS_TRAIN,
    "pos_dev": POS_DEV,
    "pos_test": POS_TEST,
    "chunk_train": CHUNK_TRAIN,
    "chunk_test": CHUNK_TEST,
    "ner_train": NER_TRAIN,
    "ner_dev": NER_DEV,
    "ner_test": NER_TEST,
}


@pytest.fixture
def corpora(tmp_path):
    for name, text in FILES.items():
        (tmp_path / f"{name}.txt").write_text(text, encoding="utf-8")
    (tmp_path / "run.toml").write_text(CONFIG, encoding="utf-8")
    return tmp_path


def problem(folder: Path, *overrides: str):
    return build_problem(load_config(folder / "run.toml", list(overrides)), folder)


def test_each_task_reads_its_own_corpus(corpora):
    p = problem(corpora)
    data = {td.task.name: td for td in p.tasks}
    assert p.meta["corpora"] == {
        "pos": {"train": 3, "dev": 2, "test": 1},
        "chunk": {"train": 8, "dev": 4, "test": 1},
        "ner": {"train": 2, "dev": 1, "test": 1},
    }
    assert len(data["pos"].train) == 3 and data["pos"].train.tokens == 8
    assert data["pos"].task.labels == ("DT", "NN", "VBD", "NNS", "VBP")
    assert set(data["chunk"].task.labels) == {"B-NP", "B-VP", "I-NP"}
    assert "E-PER" in data["ner"].task.labels  # NER trained in BIOES
    # one vocabulary over the sentences trained on, of every corpus: the special entries, 8
    # POS words, 32 chunking words (8 sentences; the 4 of dev are never trained on), 4 NER words
    assert p.build_stem().words.weight.shape[0] == 2 + 8 + 32 + 4


def test_the_dev_slice_is_seeded_and_never_trained_on(corpora):
    def lines(seed: int) -> tuple[list[int], list[int]]:
        spec = task_spec("chunk", chunk, shared).corpus
        read = read_corpus(spec, str(corpora), seed, "chunk")
        return [s.line for s in read.sentences["dev"]], [s.line for s in read.sentences["train"]]

    cfg = load_config(corpora / "run.toml").data
    shared, chunk = shared_spec(cfg), cfg.tasks["chunk"]
    dev, train = lines(3)
    assert len(dev) == 4 and len(train) == 8 and not set(dev) & set(train)
    assert sorted(dev + train) == [1 + 5 * i for i in range(12)]  # every sentence, once
    assert dev == sorted(dev) and train == sorted(train)  # file order kept
    assert lines(3) == (dev, train) and lines(4)[0] != dev  # seeded
    # the problem trains on exactly those 8 sentences
    chunk_data = {td.task.name: td for td in problem(corpora).tasks}["chunk"]
    assert len(chunk_data.train) == 8 and len(chunk_data.dev) == 4


@pytest.mark.parametrize(
    "mechanism", ["hard", "soft", "cross_stitch", "hierarchical", "sparse", "adapters"]
)
def test_every_mechanism_trains_on_per_task_corpora(corpora, mechanism):
    cfg = load_config(corpora / "run.toml", [f"mechanism={mechanism}"])
    results = run(cfg, corpora / mechanism, base_dir=corpora, progress=False)
    assert set(results["tasks"]) == {"pos", "chunk", "ner"}
    assert results["params"]["counted"] > 0
    if mechanism == "sparse":
        assert set(results["sparse"]["pairwise_overlap"]) == {"pos", "chunk", "ner"}


def test_a_step_of_a_task_reads_only_its_corpus(corpora, monkeypatch):
    from mtlshare.training.loop import Trainer

    p = problem(corpora)
    own = {td.task.name: {tuple(r.tolist()) for r in td.train.x[..., 0]} for td in p.tasks}
    seen: list[tuple[str, set]] = []
    real = Trainer.step

    def spy(self, optimizer, task, x, y, share=1.0):
        seen.append((task, {tuple(r.tolist()) for r in x[..., 0]}))
        return real(self, optimizer, task, x, y, share)

    monkeypatch.setattr(Trainer, "step", spy)
    cfg = load_config(corpora / "run.toml")
    run(cfg, corpora / "spy", base_dir=corpora, problem=p, progress=False)
    assert {task for task, _ in seen} == {"pos", "chunk", "ner"}
    for task, rows in seen:  # every row (cut to its batch) is a prefix of one of its own
        assert all(any(r == o[: len(r)] for o in own[task]) for r in rows), task


def test_compare_and_add_task_work_across_corpora(corpora):
    cfg = load_config(corpora / "run.toml")
    table = compare(
        cfg, ["single", "hard", "sparse"], corpora / "cmp", base_dir=corpora, progress=False
    )
    assert [r["mechanism"] for r in table["rows"]] == ["single", "hard", "sparse"]
    assert "overlap_vs_gain" in table
    trained = corpora / "two"
    run(load_config(corpora / "run.toml", ['tasks=["pos", "ner"]']), trained, base_dir=corpora)
    summary = add_task(trained, cfg, corpora / "added", base_dir=corpora, progress=False)
    assert summary["existing_unchanged"] and set(summary["new_tasks"]) == {"chunk"}
    # the trained tasks' data changed since: other ids for the words, so the trained weights
    # would read other words; refused before anything is written
    pos = corpora / "pos_train.txt"
    pos.write_text(pos.read_text() + "\nZebras NNS\ngraze VBP\n")
    with pytest.raises(
        DataError,
        match=r"is not what .*two was trained on: its inference.json differs in the codec's "
        r"chars, .*words",
    ):
        add_task(trained, cfg, corpora / "again", base_dir=corpora, progress=False)
    assert not (corpora / "again").exists()


def test_epochs_span_every_corpus_under_every_sampler(corpora):
    for sampler in ("proportional", "uniform", "round_robin", "temperature"):
        out = corpora / sampler
        cfg = load_config(corpora / "run.toml", [f"train.sampler={sampler}", "train.epochs=1"])
        run(cfg, out, base_dir=corpora, progress=False)
        record = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
        # an epoch: as many steps as batches in every task's training split (2 + 4 + 1)
        assert record["step"] == 7, sampler
        assert set(record["train_loss"]) <= {"pos", "chunk", "ner"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        # the key, which names the task, and (before it) the line that sets it
        ("pos_train", "run.toml:14: data.tasks.pos.train: {path}: no such file (relative paths"),
        ("empty", "task 'pos': {path}: no sentences"),
        ("ragged", "task 'pos': {path}:2: 3 columns where every token line has 2"),
        ("test_only_tag", "{path}:3: task 'pos': tag 'JJ' never occurs in the training file"),
    ],
)
def test_a_bad_task_corpus_is_one_line_naming_task_file_and_line(corpora, capsys, change, message):
    path = corpora / "pos_train.txt"
    if change == "pos_train":
        path.unlink()
    elif change == "empty":
        path.write_text("\n\n")
    elif change == "ragged":
        path.write_text("The DT\ncat NN x\n")
    else:
        path = corpora / "pos_test.txt"
        path.write_text("A DT\ncat NN\nbig JJ\n")
    out = corpora / "out"
    assert main(["run", str(corpora / "run.toml"), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message.format(path=path) in err[0], err
    assert not out.exists()


def test_a_missing_file_of_a_task_or_of_glove_names_its_key_and_its_override(corpora, capsys):
    """A task's own file or the vectors' file, given as an override, is read from the config's
    folder too: the error names the override, the key and that folder."""
    config = corpora / "run.toml"
    read = (
        f"(relative paths are read from {corpora.resolve()}: the config's folder, or the "
        "--data-dir of evaluate and predict)"
    )
    for item in ("data.tasks.chunk.test=gone.txt", "data.glove=gone.txt"):
        out = corpora / "out"
        assert main(["run", str(config), "--out", str(out), "--quiet", item]) == 2
        key = item.split("=")[0]
        assert capsys.readouterr().err == (
            f"mtlshare: error: override {item!r} (on {config}): {key}: "
            f"{corpora.resolve() / 'gone.txt'}: no such file {read}\n"
        )
        assert not out.exists()


def test_a_missing_file_of_a_task_whose_name_is_no_bare_key_names_its_quoted_key_and_line(
    corpora, capsys
):
    """A task name with a space is quoted in the key (``data.tasks."p os".train``), which is
    how its line is found: unquoted, the message named no key and so no line."""
    config = corpora / "run.toml"
    text = config.read_text(encoding="utf-8").replace("[data.tasks.pos]", '[data.tasks."p os"]')
    config.write_text(text.replace('"pos_train.txt"', '"gone.txt"'), encoding="utf-8")
    out = corpora / "out"
    assert main(["run", str(config), "--out", str(out), "--quiet"]) == 2
    assert capsys.readouterr().err.startswith(
        f'mtlshare: error: {config}:14: data.tasks."p os".train: {corpora / "gone.txt"}: '
    )
    assert not out.exists()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ('data.tasks.pos.column = "ner"', "no column named 'ner'"),
        ("data.tasks.chunk.dev_from_train = 0", "one of the two"),
        ('data.tasks.chunk.dev = "x.txt"', "one of the two"),
        ('data.tasks.pos.test = ""', "needs its own test file"),
        ("data.tasks.chunk.dev_from_train = 12", "leaves no training sentence of 12"),
        ("data.tasks.pos.train = 3", r"^data\.tasks\.pos\.train: expected a string, got 3$"),
        (
            "data.tasks.chunk.dev_from_train = -1",
            r"^data\.tasks\.chunk\.dev_from_train: expected an integer >= 0, got -1$",
        ),
        (
            "data.tasks.pos.columns = []",
            r"^data\.tasks\.pos\.columns: expected a list of column names, got \[\]$",
        ),
    ],
)
def test_bad_corpus_settings_are_refused(corpora, override, message):
    key, _, value = override.partition(" = ")
    with pytest.raises((ConfigError, DataError), match=message):
        problem(corpora, f"{key}={value}")


def test_a_shared_setting_without_own_train_is_refused(corpora):
    with pytest.raises(ConfigError, match="starts with its own train file"):
        problem(corpora, 'data.tasks.ner.columns=["word", "ner"]')


def test_without_a_task_reading_the_shared_corpus_its_files_are_not_required(corpora):
    """When every task has files of its own, ``[data]``'s train, dev and test may be left
    empty: nothing reads them."""
    own = [f"data.tasks.ner.{k}=ner_{k}.txt" for k in ("train", "dev", "test")]
    p = problem(corpora, *own, "data.train=", "data.dev=", "data.test=")
    assert p.meta["corpora"]["ner"] == {"train": 2, "dev": 1, "test": 1}
    with pytest.raises(ConfigError, match=r"^data\.train: the path of a CoNLL file is required$"):
        problem(corpora, "data.train=", "data.dev=", "data.test=")  # ner reads them


def test_a_training_file_is_held_as_its_tokens_not_padded_to_its_longest_sentence(
    corpora, monkeypatch
):
    """Training's inputs are held end to end (``PackedSplit``): one long sentence costs its own
    tokens, not every sentence padded to it (one 1,000-token sentence in CoNLL-2003 train took
    its inputs from 188 MiB to 1.6 GiB), so no padded-size warning is given at any size."""
    import warnings

    import mtlshare.data.tagging_codec as tagging_codec

    train = corpora / "pos_train.txt"
    long = "".join(f"w{i} NN\n" for i in range(40))
    train.write_text(
        f"The DT\ncat NN\n\n{long}\nA DT\nbig JJ\ndog NN\nran VBD\n\nDogs NNS\n", "utf-8"
    )
    monkeypatch.setattr(tagging_codec, "PADDED_WARNING_BYTES", 0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        built = problem(corpora)
    assert not [w for w in caught if "held padded to it" in str(w.message)]
    pos = built.tasks[0].train
    assert isinstance(pos, PackedSplit) and pos.lengths.tolist() == [2, 40, 4, 1]
    assert pos.held()[0].shape[0] == 47  # 47 tokens held, where padded: 4 x 40
    x, y = pos.take(torch.tensor([0, 3]))
    assert x.shape[:2] == y.shape == (2, 2)  # the short sentences' batch: their own length
