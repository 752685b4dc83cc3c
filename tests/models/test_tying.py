"""Weight tying: a next-word task's output projection is the input word embedding; one tensor
through training, saving and loading, counted once."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mtlshare.app.build import build_model, build_problem
from mtlshare.app.run import train
from mtlshare.config import load_config
from mtlshare.errors import ConfigError
from mtlshare.models.tying import are_tied, tie_weights
from mtlshare.registry import MECHANISMS, Entry
from mtlshare.training.checkpoint import load_checkpoint

TEXT = """EU NNP B-ORG
rejects VBZ O
German JJ B-MISC
call NN O

Peter NNP B-PER
Blackburn NNP I-PER
rejects VBZ O
"""

CONFIG = """
mechanism = "hard"
[data]
source = "conll"
train = "t.txt"
dev = "t.txt"
test = "t.txt"
columns = ["word", "pos", "ner"]
word_dim = 12
char_filters = 4
[data.tasks.pos]
column = "pos"
[data.tasks.lm]
kind = "next_word"
tie_embedding = true
[trunk]
kind = "lstm"
hidden = [8]
bidirectional = false
[train]
epochs = 3
batch_size = 1
lr = 0.05
"""


@pytest.fixture
def config(tmp_path):
    (tmp_path / "t.txt").write_text(TEXT, encoding="utf-8")
    (tmp_path / "run.toml").write_text(CONFIG, encoding="utf-8")
    return tmp_path / "run.toml"


def parts(model, task="lm"):
    return model.head(task).out, model.stem_for(task).words


@pytest.mark.parametrize("mechanism", MECHANISMS.names())
def test_the_head_is_tied_to_the_embedding_it_reads(config, mechanism):
    """Every mechanism (its parameter groups checked as it is built: the tied matrix is the one
    parameter in two groups, the task's and the shared embedding's, that is not refused)."""
    cfg = load_config(config, [f"mechanism={mechanism}"])
    problem = build_problem(cfg, config.parent)
    lm = problem.tasks[1]
    assert lm.task.out_dim == problem.meta["words"]
    # labels: the next word's id; the last token predicts the padding id (end of sentence)
    assert lm.train.y[1, :3].tolist() == [
        problem.tasks[0].train.x[1, 1, 0].item(),
        problem.tasks[0].train.x[1, 2, 0].item(),
        0,
    ]
    model = build_model(cfg, problem)
    out, words = parts(model)
    assert are_tied(out, words)


def test_tied_through_training_saving_and_loading(config, tmp_path):
    cfg = load_config(config)
    problem = build_problem(cfg, config.parent)
    run = train(cfg, tmp_path / "out", problem=problem, progress=False)
    out, words = parts(run.model)
    assert are_tied(out, words)
    fresh = build_model(cfg, problem)
    assert not torch.equal(parts(fresh)[1].weight, words.weight)  # it did train
    tensors, _ = load_checkpoint(tmp_path / "out" / "checkpoint" / "last")
    assert torch.equal(tensors["model.heads.lm.out.weight"], tensors["model.stem.words.weight"])
    fresh.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    f_out, f_words = parts(fresh)
    assert are_tied(f_out, f_words) and torch.equal(f_words.weight, words.weight)
    with torch.no_grad():  # one tensor: a change through one name shows through the other
        f_words.weight[3, 0] += 1.0
    assert torch.equal(f_out.weight, f_words.weight)


def test_counted_once(config):
    cfg = load_config(config)
    problem = build_problem(cfg, config.parent)
    tied = build_model(cfg, problem)
    plain = cfg.replace(**{"data.tasks.lm.tie_embedding": False})
    untied = build_model(plain, build_problem(plain, config.parent))
    assert not isinstance(untied.head("lm"), type(tied.head("lm")))
    vocab, dim = parts(tied)[1].weight.shape
    # untied: a plain linear head (hidden 8 -> vocab); tied: 8 -> dim, then the shared matrix
    tied_head = 8 * dim + dim + vocab  # proj weight and bias, output bias
    untied_head = 8 * vocab + vocab
    assert tied.param_counts()["total"] - untied.param_counts()["total"] == tied_head - untied_head


def test_counted_leaves_out_the_tied_matrix_once(config):
    """Embeddings and heads are not counted; the tied matrix is both, and subtracted once."""
    cfg = load_config(config)
    tied = build_model(cfg, build_problem(cfg, config.parent))
    plain = cfg.replace(**{"data.tasks.lm.tie_embedding": False})
    untied = build_model(plain, build_problem(plain, config.parent))
    assert tied.param_counts()["counted"] == untied.param_counts()["counted"]


def test_a_mechanism_without_self_heads_and_a_tied_task_is_one_config_error(config, monkeypatch):
    """Tying reads the task's head (``SharingModel.head``) before the mechanism is checked, and
    when a run is loaded: without ``self.heads`` that was a TypeError, not the one line."""
    hard = MECHANISMS["hard"]

    class HeadsElsewhere(hard.build):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.outputs = self.heads
            del self.heads

    monkeypatch.setitem(
        MECHANISMS._entries, "mine", Entry("mine", HeadsElsewhere, hard.config, "", "")
    )
    cfg = load_config(config, ["mechanism=mine"])
    with pytest.raises(ConfigError, match=r"^mechanism 'mine': self\.heads is missing; "):
        build_model(cfg, build_problem(cfg, config.parent))


def test_equal_values_are_not_a_tie():
    embedding, output = nn.Embedding(10, 4), nn.Linear(4, 10)
    with torch.no_grad():
        output.weight.copy_(embedding.weight)
    assert not are_tied(output, embedding)
    tie_weights(output, embedding)
    assert are_tied(output, embedding)


def test_shapes_and_settings_are_checked(config):
    with pytest.raises(ConfigError, match="cannot tie"):
        tie_weights(nn.Linear(4, 10), nn.Embedding(10, 5))
    with pytest.raises(ConfigError, match="only a next_word task"):
        build_problem(load_config(config, ["data.tasks.pos.tie_embedding=true"]), config.parent)
    crf = load_config(config, ['data.tasks.lm.head="crf"'])
    with pytest.raises(ConfigError, match=r"ties a linear head's output.*its head is 'crf'"):
        build_model(crf, build_problem(crf, config.parent))


def test_shared_and_task_specific_count_the_tied_matrix_once(config):
    cfg = load_config(config)
    model = build_model(cfg, build_problem(cfg, config.parent))
    counts = model.param_counts()
    assert counts["shared"] + counts["task_specific"] == counts["total"]


def test_a_tied_task_added_to_a_trained_model_leaves_the_shared_embedding_alone(config, tmp_path):
    from mtlshare.cli import main

    trained, added = tmp_path / "trained", tmp_path / "added"
    assert main(["run", str(config), 'tasks=["pos"]', "--quiet", "--out", str(trained)]) == 0
    assert (
        main(
            ["add-task", str(trained), str(config), 'tasks=["lm"]', "--quiet", "--out", str(added)]
        )
        == 0
    )
    before, _ = load_checkpoint(trained / "checkpoint" / "best")
    after, _ = load_checkpoint(added / "checkpoint" / "best")
    assert torch.equal(before["model.stem.words.weight"], after["model.stem.words.weight"])
    assert torch.equal(after["model.heads.lm.out.weight"], after["model.stem.words.weight"])
    for key, value in before.items():
        if key.startswith("model."):
            assert torch.equal(value, after[key]), key


def test_a_next_word_task_is_scored_in_batches_its_outputs_fit(config, tmp_path, monkeypatch):
    """A next_word task's outputs are a row per vocabulary word at every position: at the
    default eval_batch_size (512) CoNLL-2003's dev asked for 5.3 GB at once and the run died at
    its first scoring. Evaluation batches are cut to keep the outputs under EVAL_OUTPUT_BYTES,
    in training's scoring and in predict, and the scores and predictions are the same."""
    import mtlshare.training.loop as loop
    from mtlshare.app.predict import load_run
    from mtlshare.data.datasets import Split
    from mtlshare.data.tagging_codec import TaggingCodec

    assert loop.eval_rows(512, 124, 23_625) == 22  # CoNLL-2003's dev, its vocabulary
    assert loop.eval_rows(512, 124, 45) == 512  # a tags task: as before
    assert loop.eval_rows(512, 1, 3) == 512 and loop.eval_rows(4, 10**9, 10**9) == 1
    cfg = load_config(config)
    problem = build_problem(cfg, config.parent)
    whole = train(cfg, tmp_path / "whole", problem=problem, progress=False)
    sizes: list[int] = []
    batches = Split.batches

    def recorded(self, size):
        sizes.append(size)
        return batches(self, size)

    lm = problem.tasks[1]
    per_row = lm.train.x.shape[1] * lm.task.out_dim * 4
    monkeypatch.setattr(loop, "EVAL_OUTPUT_BYTES", 2 * per_row)  # two sentences a batch
    monkeypatch.setattr(Split, "batches", recorded)
    cut = train(cfg, tmp_path / "cut", problem=problem, progress=False)
    assert 2 in sizes and max(sizes) == 512  # the lm task cut, pos not
    for task in ("pos", "lm"):
        for split in ("dev", "test"):
            ours, theirs = cut.results["tasks"][task], whole.results["tasks"][task]
            assert ours[split] == theirs[split], (task, split)
    encoded: list[int] = []
    encode_batches = TaggingCodec.encode_batches

    def recorded_encode(self, doc, size):
        encoded.append(size)
        return encode_batches(self, doc, size)

    monkeypatch.setattr(TaggingCodec, "encode_batches", recorded_encode)
    text = tmp_path / "new.txt"
    text.write_text("EU rejects German call\nPeter rejects\n", encoding="utf-8")
    loaded = load_run(tmp_path / "whole")
    loaded.predict_file(text, tmp_path / "cut.conll")
    assert encoded and encoded[0] < 512
    monkeypatch.undo()
    loaded.predict_file(text, tmp_path / "whole.conll")
    cut_text = (tmp_path / "cut.conll").read_text(encoding="utf-8")
    assert cut_text == (tmp_path / "whole.conll").read_text(encoding="utf-8")
