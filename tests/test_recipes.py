"""Every shipped recipe loads, and every mechanism its [compare] table lists builds on its data
(a few sentences of it), with its own overrides. Recipes reading ../shared/data skip when it is
absent."""

from __future__ import annotations

from pathlib import Path

import pytest

from mtlshare.app.build import build_model, build_problem
from mtlshare.app.compare import row_config
from mtlshare.config import SINGLE, SUBNET, load_config
from mtlshare.training.joint import check_joint

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted((ROOT / "recipes").rglob("*.toml"))
SHARED = ROOT.parent / "shared" / "data"
CUT = {"train_sentences": 50, "dev_sentences": 20, "test_sentences": 20}  # a few sentences


def test_recipes_exist():
    names = {str(p.relative_to(ROOT / "recipes")) for p in RECIPES}
    for expected in (
        "conll2003/quick.toml",
        "conll2003/full.toml",
        "negative_transfer/quick.toml",
        "negative_transfer/full.toml",
    ):
        assert expected in names


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: str(p.relative_to(ROOT / "recipes")))
def test_recipe_builds_every_listed_mechanism(path):
    cfg = load_config(path)
    if cfg.experiment != "train":
        return
    small = []
    if cfg.data_source == "conll":
        if not (SHARED / "conll2003" / "train.txt").is_file():
            pytest.skip(f"{SHARED / 'conll2003'} is absent")
        small = [f"data.{k}={n}" for k, n in CUT.items()]
        small.append("data.unseen_tags=map")
        for name, task in cfg.data.tasks.items():  # a task's own corpus is cut the same way
            if task.get("train"):
                small += [f"data.tasks.{name}.{k}={n}" for k, n in CUT.items()]
                if task.get("dev_from_train"):
                    small.append(f"data.tasks.{name}.dev_from_train=10")
    if cfg.data_source == "table" and not (path.parent / cfg.data.path).is_file():
        pytest.skip(f"{path.parent / cfg.data.path} is absent")
    cfg = load_config(path, small)
    problem = build_problem(cfg, path.parent)
    for name in cfg.compare.mechanisms:
        if name in (SINGLE, SUBNET):
            continue
        row = row_config(cfg, name)
        model = build_model(row, problem)
        assert model.param_counts()["counted"] > 0
        if row.train.schedule == "joint":  # a weighting the model cannot take fails here
            check_joint(row.weighting.kind, model)


def test_score_tagged_reads_a_predicted_conll_file_as_the_run_scores_it(tmp_path):
    """``recipes/conll2003/score_tagged.py``: POS accuracy and span F1 over the predicted columns,
    ``-DOCSTART-`` left out; a line of another width is one line naming it."""
    import subprocess
    import sys

    script = ROOT / "recipes" / "conll2003" / "score_tagged.py"
    tagged = tmp_path / "t.conll"
    tagged.write_text(
        "-DOCSTART- -X- -X- O O O O\n\n"
        "EU NNP B-NP B-ORG NNP B-NP B-ORG\nrejects VBZ B-VP O NN B-NP O\n\n"
        "Peter NNP B-NP B-PER NNP B-NP B-LOC\n"
    )
    score = [sys.executable, str(script), str(tagged)]
    done = subprocess.run(score, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "2 sentences, 3 tokens",
        f"pos accuracy {2 / 3!r}",
        f"chunk span F1 {2 / 3!r} (strict IOB2 0.6667)",  # EU and Peter right, rejects not
        "ner span F1 0.5 (strict IOB2 0.5000)",  # EU right, Peter not
    ]
    tagged.write_text("EU NNP B-NP B-ORG NNP B-NP\n")
    done = subprocess.run(score, capture_output=True, text=True)
    assert done.returncode == 1 and done.stderr.strip() == f"{tagged}:1: 6 columns, expected 7"


def test_score_tagged_gives_strict_iob2_beside_conlleval_and_refuses_bad_input(tmp_path):
    """A chunk predicted ``I-NP I-NP`` is the gold ``B-NP I-NP`` chunk by conlleval's rules but
    no chunk by strict IOB2's: the two scores differ. A line of eight columns, and a second
    argument, are refused (exit 1, one line), not scored."""
    import subprocess
    import sys

    script = ROOT / "recipes" / "conll2003" / "score_tagged.py"
    tagged = tmp_path / "t.conll"
    tagged.write_text("EU NNP B-NP B-ORG NNP I-NP B-ORG\nrejects NN I-NP O NN I-NP O\n")
    done = subprocess.run(
        [sys.executable, str(script), str(tagged)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[2:] == [
        "chunk span F1 1.0 (strict IOB2 0.0000)",
        "ner span F1 1.0 (strict IOB2 1.0000)",
    ]
    wide = tmp_path / "wide.conll"
    wide.write_text("EU NNP B-NP B-ORG NNP B-NP B-ORG B-ORG\n")
    done = subprocess.run([sys.executable, str(script), str(wide)], capture_output=True, text=True)
    assert done.returncode == 1 and done.stderr.strip() == f"{wide}:1: 8 columns, expected 7"
    two = [sys.executable, str(script), str(tagged), str(wide)]
    done = subprocess.run(two, capture_output=True, text=True)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.strip() == "usage: python recipes/conll2003/score_tagged.py TAGGED_FILE"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (None, "cannot read"),  # no such file
        ("", "no tokens to score"),
        ("-DOCSTART- -X- -X- O O O O\n\n", "no tokens to score"),
    ],
)
def test_score_tagged_refuses_a_missing_or_empty_file_in_one_line(tmp_path, text, says):
    """A missing file, an empty one or one of document markers only: one line naming the file
    (exit 1), not a traceback (a ZeroDivisionError for the empty ones)."""
    import subprocess
    import sys

    script = ROOT / "recipes" / "conll2003" / "score_tagged.py"
    tagged = tmp_path / "t.conll"
    if text is not None:
        tagged.write_text(text)
    done = subprocess.run(
        [sys.executable, str(script), str(tagged)], capture_output=True, text=True
    )
    assert done.returncode == 1
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert done.stderr.startswith(f"{tagged}: ") and says in done.stderr, done.stderr
