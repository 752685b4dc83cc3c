"""Using a trained run: ``load_run``, ``mtlshare predict`` and ``mtlshare evaluate``.

The agreement test trains hard, sparse and cross-stitch runs on a slice of the real CoNLL-2003
files, tags the test file, and scores the written file with two scorers that share no code with
mtlshare: ``conlleval`` below (written from the documented behaviour of the CoNLL script) and
seqeval. Both must give the run's own test span F1, and the POS column its accuracy.
"""

from __future__ import annotations

import csv
import json
import os
import stat
from pathlib import Path

import pytest
import torch

from mtlshare.app.build import build_problem
from mtlshare.app.predict import load_run
from mtlshare.app.run import run
from mtlshare.cli import main
from mtlshare.config import load_config
from mtlshare.errors import MtlshareError
from mtlshare.training.loop import Trainer
from mtlshare.training.objective import LossWeighting, WeightingConfig

WEIGHTS = WeightingConfig()

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data" / "conll2003"
QUICK = ROOT / "recipes" / "conll2003" / "quick.toml"
DEMO = ROOT / "recipes" / "demo" / "demo.toml"
TINY = [
    "data.train_sentences=300",
    "data.dev_sentences=100",
    "data.unseen_tags=map",  # dev tags the 300 sentences lack
    "data.word_dim=16",
    "data.char_filters=8",
    "trunk.hidden=[24]",
    "train.epochs=1",  # a trained model, not a good one: the tests compare its own scores
    "train.batch_size=32",
    "sparse.warmup_epochs=0.5",
    "sparse.round_epochs=0.5",
    "sparse.target_density=0.6",
]
needs_conll = pytest.mark.skipif(
    not (DATA / "test.txt").is_file(),
    reason=f"the real CoNLL-2003 files are not at {DATA} (../shared/data beside the repository)",
)


# -- an independent conlleval -----------------------------------------------------------------
def _end_of_chunk(prev: str, cur: str, prev_type: str, cur_type: str) -> bool:
    """conlleval's endOfChunk: does a chunk end between the previous tag and this one?"""
    return (
        (prev in ("B", "I") and cur in ("B", "O"))
        or (prev == "E" and cur in ("E", "I", "O", "B", "S"))
        or (prev == "S" and cur in ("E", "I", "O", "B", "S"))
        or (prev != "O" and prev != "." and prev_type != cur_type)
        or prev in ("]", "[")
    )


def _start_of_chunk(prev: str, cur: str, prev_type: str, cur_type: str) -> bool:
    """conlleval's startOfChunk: does a chunk start at this tag?"""
    return (
        (prev in ("E", "S", "O") and cur in ("E", "I"))
        or cur in ("B", "S")
        or (cur != "O" and cur != "." and prev_type != cur_type)
        or cur in ("[", "]")
    )


def _split(tag: str) -> tuple[str, str]:
    if tag == "O":
        return "O", ""
    prefix, _, kind = tag.partition("-")
    return prefix, kind


def conlleval(rows: list[tuple[str, str] | None]) -> tuple[int, int, int]:
    """(correct chunks, gold chunks, guessed chunks) over token rows (gold, guess); None is a
    sentence boundary, as a blank line is for the script."""
    correct = found_gold = found_guess = 0
    in_correct = False
    last_gold, last_guess, last_gold_type, last_guess_type = "O", "O", "", ""
    for row in [*rows, None]:
        gold, guess = row if row is not None else ("O", "O")
        g, gt = _split(gold)
        p, pt = _split(guess)
        end_gold = _end_of_chunk(last_gold, g, last_gold_type, gt)
        end_guess = _end_of_chunk(last_guess, p, last_guess_type, pt)
        start_gold = _start_of_chunk(last_gold, g, last_gold_type, gt)
        start_guess = _start_of_chunk(last_guess, p, last_guess_type, pt)
        if in_correct:
            if end_gold and end_guess and last_gold_type == last_guess_type:
                in_correct = False
                correct += 1
            elif end_gold != end_guess or gt != pt:
                in_correct = False
        if start_gold and start_guess and gt == pt:
            in_correct = True
        found_gold += start_gold
        found_guess += start_guess
        if row is None:  # a boundary: the next sentence starts afresh
            last_gold, last_guess, last_gold_type, last_guess_type = "O", "O", "", ""
            continue
        last_gold, last_guess, last_gold_type, last_guess_type = g, p, gt, pt
    return correct, found_gold, found_guess


def f1(correct: int, gold: int, guess: int) -> float:
    precision = correct / guess if guess else 0.0
    recall = correct / gold if gold else 0.0
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def test_the_independent_conlleval_on_a_hand_counted_example():
    rows = [("B-PER", "B-PER"), ("I-PER", "I-PER"), ("O", "B-LOC"), None, ("B-ORG", "I-ORG")]
    assert conlleval(rows) == (2, 2, 3)  # PER right, ORG right (I- after boundary starts one)


def columns(path: Path) -> list[list[str] | None]:
    out: list[list[str] | None] = []
    for line in path.read_text(encoding="utf-8").split("\n"):
        fields = line.split()
        if not fields or fields[0] == "-DOCSTART-":
            if out and out[-1] is not None:
                out.append(None)
            continue
        out.append(fields)
    return out


# -- agreement with the scorers --------------------------------------------------------------
@pytest.fixture(scope="module")
def conll_runs(tmp_path_factory, first_sentences):
    """Runs tested on the first 200 of their 300 training sentences: every tag of that "test"
    file was seen in training, so the run scores it against the file's own tags (a tag never
    seen would be mapped, and the file's scorers would see another gold)."""
    base = tmp_path_factory.mktemp("conll")
    test = first_sentences(DATA / "train.txt", 200, base / "seen.txt")
    paths = [f"data.train={DATA / 'train.txt'}", f"data.dev={DATA / 'dev.txt'}"]
    paths.append(f"data.test={test}")
    runs = {}
    problem = None  # the same data for every run: read once
    for mechanism in ("hard", "sparse", "cross_stitch"):
        cfg = load_config(QUICK, [*paths, *TINY, f"mechanism={mechanism}"])
        problem = problem or build_problem(cfg)
        runs[mechanism] = base / mechanism
        run(cfg, runs[mechanism], problem=problem, progress=False)
    return runs


@needs_conll
@pytest.mark.parametrize("mechanism", ["hard", "sparse", "cross_stitch"])
def test_predictions_score_what_results_json_says(conll_runs, tmp_path, mechanism, capsys):
    seqeval = pytest.importorskip("seqeval.metrics")
    folder = conll_runs[mechanism]
    results = json.loads((folder / "results.json").read_text())["tasks"]
    test = folder.parent / "seen.txt"
    out = tmp_path / "tagged.conll"
    assert main(["predict", str(folder), str(test), "--out", str(out)]) == 0
    assert "tokens/s" in capsys.readouterr().out
    rows = columns(out)
    tokens = [r for r in rows if r is not None]
    words = [line.split() for line in test.open()]
    assert len(tokens) == sum(len(w) == 4 and w[0] != "-DOCSTART-" for w in words)
    # columns: word POS chunk NER (gold), then pos chunk ner (predicted)
    assert {len(r) for r in tokens} == {7}
    pos = sum(r[1] == r[4] for r in tokens) / len(tokens)
    assert pos == results["pos"]["test"]
    for task, gold_col, pred_col in (("chunk", 2, 5), ("ner", 3, 6)):
        pairs = [(r[gold_col], r[pred_col]) if r is not None else None for r in rows]
        got = f1(*conlleval(pairs))
        assert got == pytest.approx(results[task]["test"], abs=1e-12), task
        gold, guess, sent_gold, sent_guess = [], [], [], []
        for r in [*rows, None]:
            if r is None:
                if sent_gold:
                    gold.append(sent_gold)
                    guess.append(sent_guess)
                sent_gold, sent_guess = [], []
                continue
            sent_gold.append(r[gold_col])
            sent_guess.append(r[pred_col])
        assert seqeval.f1_score(gold, guess) == pytest.approx(results[task]["test"], abs=1e-12)
        assert not any(t[:2] in ("E-", "S-") for t in (r[pred_col] for r in tokens))  # IOB2
    assert main(["evaluate", str(folder)]) == 0
    printed = capsys.readouterr().out
    for task in ("pos", "chunk", "ner"):
        assert f"{task}: test" in printed and f"{results[task]['test']:.6g}" in printed


@needs_conll
def test_ner_on_the_real_test_file_scores_what_evaluate_says(conll_runs, tmp_path, capsys):
    """NER has no test tag unseen in training: the whole CoNLL-2003 test file, tagged and
    scored by conlleval, gives what ``evaluate`` computes on it with the run's own scorer."""
    folder = conll_runs["hard"]
    out = tmp_path / "test.conll"
    assert main(["predict", str(folder), str(DATA / "test.txt"), "--out", str(out)]) == 0
    rows = columns(out)
    assert sum(r is not None for r in rows) == 46435
    pairs = [(r[3], r[6]) if r is not None else None for r in rows]
    loaded = load_run(folder)
    problem = build_problem(loaded.config.replace(**{"data.test": str(DATA / "test.txt")}))
    scorer = Trainer(
        loaded.model, problem, loaded.config.train, LossWeighting(list(loaded.tasks), WEIGHTS)
    )
    assert f1(*conlleval(pairs)) == pytest.approx(scorer.score("ner", "test"), abs=1e-12)


@needs_conll
def test_load_run_predicts_per_task_in_eval_mode(conll_runs):
    loaded = load_run(conll_runs["sparse"])
    assert loaded.mechanism == "sparse" and set(loaded.tasks) == {"pos", "chunk", "ner"}
    assert not loaded.model.training
    x, lengths = loaded.codec.encode(loaded.codec.read(DATA / "test.txt", "conll"))
    first = loaded.predict("ner", x[:7], lengths[:7])
    again = loaded.predict("ner", x[:7], lengths[:7])
    assert torch.equal(first, again)
    assert (first[0, int(lengths[0]) :] == -100).all()


def test_predict_puts_back_the_modes_the_caller_set(synthetic_run):
    """``predict`` runs in eval mode, then gives each module back its mode: a model the caller
    set training (dropout on) stays so (predict left it in eval mode for good)."""
    run = load_run(synthetic_run)
    x = torch.randn(4, 16)
    expected = run.predict("t1", x)
    run.model.train()
    next(run.model.children()).eval()  # a module the caller keeps in eval mode
    modes = [m.training for m in run.model.modules()]
    seen: list[bool] = []  # the mode each module predicted in (this run has no dropout to tell)
    for module in run.model.modules():
        module.register_forward_pre_hook(lambda m, _: seen.append(m.training))
    assert torch.equal(run.predict("t1", x), expected)
    assert seen and not any(seen)
    assert [m.training for m in run.model.modules()] == modes

    def interrupted(module: torch.nn.Module, inputs: object) -> None:
        raise KeyboardInterrupt

    # and when predict fails on the way (out of memory, an interrupt)
    run.model.register_forward_pre_hook(interrupted)
    with pytest.raises(KeyboardInterrupt):
        run.predict("t1", x)
    assert [m.training for m in run.model.modules()] == modes


def test_an_unknown_task_checkpoint_or_split_is_one_line_from_python(synthetic_run):
    from mtlshare import evaluate

    run = load_run(synthetic_run)
    with pytest.raises(MtlshareError, match=r"^no task 't9'; this run has \['t1', 't2'\]$"):
        run.predict("t9", torch.randn(2, 16))
    with pytest.raises(MtlshareError, match=r"^--checkpoint: 'worst' is not one of best, last$"):
        load_run(synthetic_run, "worst")
    with pytest.raises(MtlshareError, match=r"^--split: 'train' is not one of dev, test$"):
        evaluate(synthetic_run, split="train")


def test_loading_and_evaluating_a_run_leave_the_callers_random_stream_alone(synthetic_run):
    """The initial weights that the checkpoint replaces are drawn aside: a caller's torch
    random stream goes on after ``load_run`` and ``evaluate`` as it would have (it was reseeded
    with the run's seed, so every caller drew the same numbers next)."""
    from mtlshare import evaluate

    torch.manual_seed(1234)
    expected = torch.rand(3)
    torch.manual_seed(1234)
    load_run(synthetic_run)
    evaluate(synthetic_run)
    assert torch.equal(torch.rand(3), expected)


def test_loading_a_run_on_the_cpu_leaves_the_gpus_random_streams_alone(synthetic_run, monkeypatch):
    """The initial weights are drawn aside on the CPU's generator alone: a GPU's stream, which
    the fork does not put back, is not reseeded (``torch.manual_seed`` reseeds every GPU's
    too, and a caller's dropout on the GPU drew the same numbers after every ``load_run``)."""
    seeded: list[int] = []
    monkeypatch.setattr(torch.cuda, "manual_seed_all", seeded.append)
    load_run(synthetic_run)
    assert seeded == []


@needs_conll
def test_plain_text_gets_a_column_per_task_and_unknown_words_are_fine(conll_runs, tmp_path):
    text = tmp_path / "new.txt"
    text.write_text("Zyxqwv visited Bonn on Tuesday .\n\nGermany rejects it\n", encoding="utf-8")
    out = tmp_path / "out.conll"
    code = main(
        ["predict", str(conll_runs["hard"]), str(text), "--out", str(out), "--tasks", "ner"]
    )
    assert code == 0
    lines = out.read_text().split("\n")
    assert lines[0].startswith("Zyxqwv ") and len(lines[0].split()) == 2
    # the empty input line is an empty sentence: output sentence k is input line k
    assert lines[6:8] == ["", ""] and lines[8].split()[0] == "Germany"


@needs_conll
def test_ids_outside_the_vocabularies_are_one_line_from_python(conll_runs, tmp_path):
    run = load_run(conll_runs["hard"])
    text = tmp_path / "s.txt"
    text.write_text("Germany rejects it\n")
    x, lengths = run.codec.encode(run.codec.read(text, "auto"))
    assert run.predict("ner", x, lengths).shape[0] == 1
    with pytest.raises(MtlshareError, match=r"^x: an id outside the run's vocabularies \("):
        run.predict("ner", torch.full_like(x, 10**6), lengths)
    with pytest.raises(MtlshareError, match=r"^x: negative ids \(min -1\)"):
        run.predict("ner", torch.full_like(x, -1), lengths)


@needs_conll
def test_windows_line_ends_give_the_same_tags_and_one_kind_of_line_end(conll_runs, tmp_path):
    conll = (
        "-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\nPeter NNP B-NP B-PER\n"
    )
    (tmp_path / "lf.conll").write_text(conll)
    (tmp_path / "crlf.conll").write_bytes(conll.replace("\n", "\r\n").encode())
    for name in ("lf", "crlf"):
        source, out = tmp_path / f"{name}.conll", tmp_path / f"{name}.out"
        assert main(["predict", str(conll_runs["hard"]), str(source), "--out", str(out)]) == 0
    assert (tmp_path / "crlf.out").read_bytes() == (tmp_path / "lf.out").read_bytes()
    assert b"\r" not in (tmp_path / "crlf.out").read_bytes()


@needs_conll
def test_a_folder_given_as_the_text_to_tag_is_named_so(conll_runs, tmp_path, capsys):
    assert main(["predict", str(conll_runs["hard"]), str(tmp_path), "--out", "x.conll"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"mtlshare: error: {tmp_path}: a folder, not a file"]


# -- tensor sources ----------------------------------------------------------------------------
def test_a_synthetic_run_predicts_a_csv_of_inputs(tmp_path):
    cfg = load_config(DEMO, ["train.epochs=2", "data.n_dev=50", "data.n_test=50"])
    folder = tmp_path / "run"
    run(cfg, folder, progress=False)
    inputs = tmp_path / "in.csv"
    width = cfg.data.input_dim
    x = torch.randn(5, width)
    with inputs.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", *(f"x{i}" for i in range(width))])
        writer.writerows([[f"row{i}", *map(repr, row.tolist())] for i, row in enumerate(x)])
    out = tmp_path / "out.csv"
    assert main(["predict", str(folder), str(inputs), "--out", str(out)]) == 0
    table = list(csv.DictReader(out.open()))
    loaded = load_run(folder)
    expected = loaded.predict("t1", x)
    assert [r["id"] for r in table] == [f"row{i}" for i in range(5)]
    assert [float(r["t1"]) for r in table] == pytest.approx(expected.tolist(), abs=1e-6)
    done = loaded.predict_file(inputs, tmp_path / "again.csv")
    assert set(done) == {"tasks", "unit", "rows", "seconds", "rows_per_second", "out"}
    assert (done["unit"], done["rows"], done["tasks"]) == ("rows", 5, ["t1", "t2"])


# -- bad input ----------------------------------------------------------------------------------
def one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mtlshare: error:"), err
    return err[0]


def test_out_a_named_pipe_is_refused_and_a_link_is_followed(synthetic_run, tmp_path, capsys):
    """``--out`` at anything but a file (a named pipe here; ``/dev/null`` run as root was
    replaced by a file of predictions) is one line, left as it is; at a symbolic link, the
    link stays and its target gets the predictions."""
    good = tmp_path / "in.csv"
    width = load_run(synthetic_run).spec["input_dim"]
    good.write_text(",".join(f"x{i}" for i in range(width)) + "\n" + ",".join(["0"] * width))
    pipe = tmp_path / "pipe.csv"
    os.mkfifo(pipe)
    assert main(["predict", str(synthetic_run), str(good), "--out", str(pipe)]) == 2
    assert "not a file (a device or a named pipe)" in one_line(capsys)
    assert stat.S_ISFIFO(pipe.lstat().st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "pipe.csv"]
    target = tmp_path / "target.csv"
    target.write_text("old")
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    assert main(["predict", str(synthetic_run), str(good), "--out", str(link)]) == 0
    assert link.is_symlink() and link.resolve() == target
    assert target.read_text().splitlines()[0].endswith("t1,t2")


def test_the_input_may_be_a_pipe(synthetic_run, tmp_path):
    """``predict RUN <(zcat in.csv.gz)``: a named pipe is read as the file it carries (it was
    "no such file"), and gives what the file gives."""
    import threading

    width = load_run(synthetic_run).spec["input_dim"]
    text = ",".join(f"x{i}" for i in range(width)) + "\n" + ",".join(["0.5"] * width) + "\n"
    (tmp_path / "in.csv").write_text(text)
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    writer = threading.Thread(target=pipe.write_text, args=(text,), daemon=True)
    writer.start()
    try:
        assert main(["predict", str(synthetic_run), str(pipe), "--out", str(tmp_path / "a")]) == 0
    finally:
        writer.join(timeout=30)
    assert (
        main(
            ["predict", str(synthetic_run), str(tmp_path / "in.csv"), "--out", str(tmp_path / "b")]
        )
        == 0
    )
    assert (tmp_path / "a").read_text() == (tmp_path / "b").read_text()


def test_bad_runs_and_inputs_are_one_line_and_leave_no_output(synthetic_run, tmp_path, capsys):
    out = tmp_path / "out.csv"
    good = tmp_path / "in.csv"
    width = load_run(synthetic_run).spec["input_dim"]
    good.write_text(",".join(f"x{i}" for i in range(width)) + "\n" + ",".join(["0"] * width))
    cases = {
        "no checkpoint": (tmp_path, good, "not an mtlshare run folder"),
        "empty input": (synthetic_run, tmp_path / "empty.csv", "empty"),
        "not utf-8": (synthetic_run, tmp_path / "latin.csv", "not UTF-8"),
        "another source": (synthetic_run, tmp_path / "words.conll", "no column 'x0'"),
        "missing input": (synthetic_run, tmp_path / "nope.csv", "no such file"),
        "a folder": (synthetic_run, tmp_path / "in", "in: a folder, not a file"),
    }
    (tmp_path / "in").mkdir()
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "latin.csv").write_bytes(b"x0\n\xe9\n")
    (tmp_path / "words.conll").write_text("EU NNP\nrejects VBZ\n")
    for name, (folder, source, message) in cases.items():
        assert main(["predict", str(folder), str(source), "--out", str(out)]) == 2, name
        assert message in one_line(capsys), name
        assert not out.exists(), name
    out.write_text("keep me")
    assert main(["predict", str(synthetic_run), str(tmp_path / "empty.csv"), "--out", str(out)])
    assert out.read_text() == "keep me"  # an error never touches an existing output
    assert "empty" in one_line(capsys)
    nowhere = tmp_path / "no-such-folder" / "out.csv"
    assert main(["predict", str(synthetic_run), str(good), "--out", str(nowhere)]) == 2
    line = one_line(capsys)
    assert f"the folder {nowhere.parent} does not exist" in line and ".tmp" not in line
    assert main(["predict", str(synthetic_run), str(good), "--out", str(tmp_path)]) == 2
    assert "a folder; name the file to write" in one_line(capsys)
    assert not nowhere.parent.exists()
    # --tasks: an unknown task, and a task named twice (two columns of one name), refused
    for tasks, message in [
        ("t1,t9", "--tasks: unknown ['t9']; this run has ['t1', 't2']"),
        ("t2,t1,t2", "--tasks: ['t2'] named more than once"),
        ("t2,t1,t1,t2", "--tasks: ['t2', 't1'] named more than once"),  # once each, as given
    ]:
        args = ["predict", str(synthetic_run), str(good), "--out", str(out), "--tasks", tasks]
        assert main(args) == 2, tasks
        assert one_line(capsys).endswith(message), tasks
        assert out.read_text() == "keep me", tasks


def test_a_csv_run_refuses_another_format_and_a_header_without_rows(
    synthetic_run, tmp_path, capsys
):
    width = load_run(synthetic_run).spec["input_dim"]
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    header = ",".join(f"x{i}" for i in range(width))
    source.write_text(header + "\n" + ",".join(["0"] * width) + "\n")
    args = ["predict", str(synthetic_run), str(source), "--out", str(out)]
    assert main([*args, "--format", "conll"]) == 2
    assert one_line(capsys) == "mtlshare: error: this run reads a CSV of 16 features, not conll"
    assert not out.exists()
    source.write_text(header + "\n\n , \n")  # blank lines are no rows
    assert main(args) == 2
    assert one_line(capsys) == f"mtlshare: error: {source}: no rows after the header"
    assert not out.exists()
    assert main([*args, "--format", "csv"]) == 2  # csv is this run's format: read, then refused
    assert one_line(capsys).endswith("no rows after the header")


def test_an_input_column_named_like_a_task_is_refused_as_a_table_run_refuses_it(
    synthetic_run, tmp_path, capsys
):
    """The plain codec writes each task's predictions under the task's bare name: an input
    with a column ``t1`` gave a header ``x0,...,x15,t1,t1,t2`` (exit 0), whose readers by name
    take one ``t1`` or the other. It is refused in one line naming the column(s), nothing
    written; with ``--tasks`` only the columns that would be written count."""
    width = load_run(synthetic_run).spec["input_dim"]
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    features = [f"x{i}" for i in range(width)]
    source.write_text(",".join([*features, "t1"]) + "\n" + ",".join(["0"] * (width + 1)) + "\n")
    assert main(["predict", str(synthetic_run), str(source), "--out", str(out)]) == 2
    assert one_line(capsys) == (
        f"mtlshare: error: {source}:1: column 't1' is in the file already: the predictions "
        "would write it a second time"
    )
    assert not out.exists()
    source.write_text(
        ",".join([*features, " t2 ", "t1"]) + "\n" + ",".join(["0"] * (width + 2)) + "\n"
    )
    assert main(["predict", str(synthetic_run), str(source), "--out", str(out)]) == 2
    assert f"{source}:1: columns 't1', 't2' are in the file already" in one_line(capsys)
    assert not out.exists()
    source.write_text(",".join([*features, "t2"]) + "\n" + ",".join(["0"] * (width + 1)) + "\n")
    args = ["predict", str(synthetic_run), str(source), "--out", str(out), "--tasks", "t1"]
    assert main(args) == 0
    header = out.read_text().splitlines()[0].split(",")
    assert header == [*features, "t2", "t1"]  # the file's t2 kept, t1 predicted once


def test_an_out_that_would_overwrite_the_input_or_a_run_s_files_is_refused(
    synthetic_run, tmp_path, capsys
):
    """``--out`` naming the input file replaced it with its predictions; one in a run folder
    (its ``results.json``, say) left a run that no longer read back. Both are refused in one
    line, the file untouched; a comparison's folder is an output folder too."""
    width = load_run(synthetic_run).spec["input_dim"]
    good = tmp_path / "in.csv"
    good.write_text(",".join(f"x{i}" for i in range(width)) + "\n" + ",".join(["0"] * width))
    before = good.read_text()
    assert main(["predict", str(synthetic_run), str(good), "--out", str(good)]) == 2
    assert f"--out {good}: the input file" in one_line(capsys)
    assert good.read_text() == before
    (tmp_path / "sub").mkdir()
    for same in (tmp_path / "sub" / ".." / "in.csv", Path(os.path.relpath(good))):
        assert main(["predict", str(synthetic_run), str(good), "--out", str(same)]) == 2
        assert f"--out {same}: the input file" in one_line(capsys)  # the same file, named so
    assert good.read_text() == before
    results = synthetic_run / "results.json"
    kept = results.read_bytes()
    for out in (results, synthetic_run / "checkpoint" / "preds.csv", synthetic_run / "p.csv"):
        assert main(["predict", str(synthetic_run), str(good), "--out", str(out)]) == 2
        assert f"inside {synthetic_run}, an mtlshare output folder" in one_line(capsys)
    assert results.read_bytes() == kept
    assert not (synthetic_run / "p.csv").exists()
    comparison = tmp_path / "cmp"
    comparison.mkdir()
    (comparison / "comparison.json").write_text("{}")
    assert main(["predict", str(synthetic_run), str(good), "--out", str(comparison / "p.csv")])
    assert f"inside {comparison}, an mtlshare output folder" in one_line(capsys)
    beside = synthetic_run.parent / "p.csv"  # the folder that holds the run is the user's
    assert main(["predict", str(synthetic_run), str(good), "--out", str(beside)]) == 0
    assert beside.is_file()
    beside.unlink()


def test_a_checkpoint_of_an_unknown_format_version_is_refused(synthetic_run, tmp_path, capsys):
    copy = tmp_path / "copy"
    import shutil

    shutil.copytree(synthetic_run, copy)
    meta = copy / "checkpoint" / "best" / "meta.json"
    data = json.loads(meta.read_text())
    meta.write_text(json.dumps({**data, "format_version": 99}))
    assert main(["predict", str(copy), str(tmp_path / "x.csv"), "--out", str(tmp_path / "o")]) == 2
    assert "checkpoint format 99" in one_line(capsys)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda spec: spec.pop("tasks"), "'tasks' is None"),
        (lambda spec: spec.pop("input_dim"), "'input_dim' is None"),
        (lambda spec: spec.update(input_dim="16"), "'input_dim' is '16'"),
        (lambda spec: spec["tasks"][0].pop("kind"), "task 0 is not a task's description"),
        (lambda spec: spec["tasks"][0].update(foo=1), "task 0 is not a task's description"),
        (lambda spec: spec["codec"].pop("features"), "codec's description is damaged"),
        # each a traceback before
        (lambda spec: spec.update(input_dim=10**400), "'input_dim' is 1000000000000000000000"),
        (lambda spec: spec.update(input_dim=0), "'input_dim' is 0, expected int"),
        (lambda spec: spec.update(input_dim=2**31), "'input_dim' is 2147483648, expected int"),
        (lambda spec: spec.pop("codec"), "'codec' is None, expected dict"),
        (lambda spec: spec.update(base_dir=[]), "'base_dir' is [], expected a path"),
        (lambda spec: spec["tasks"].__setitem__(0, "t1"), "task 0 is not a task's description"),
        (lambda spec: spec["tasks"].__setitem__(0, 3), "task 0 is not a task's description"),
        (lambda spec: spec["tasks"][0].pop("name"), "damaged: task 0 is not a task's description"),
        (lambda spec: spec["tasks"][0].update(out_dim=1.5), "task 0: out_dim is 1.5, not a whole"),
        (lambda spec: spec["tasks"][0].update(tie_embedding="8"), "tie_embedding is 8, not a"),
        (lambda spec: spec["codec"]["features"].__setitem__(0, None), "is not a list of column"),
        (lambda spec: spec["codec"].update(scales="x"), "scales: x is not a task's log, mean"),
        (lambda spec: spec["tasks"][0].update(out_dim=0), "task 0: out_dim is 0, not a whole"),
        (lambda spec: spec["tasks"][0].update(out_dim=True), "out_dim is True, not a whole"),
        (lambda spec: spec["tasks"][0].update(out_dim=2**31), "out_dim is 2147483648, not a"),
        *(
            (
                lambda spec, bad=bad: spec["codec"].update(
                    scales={"t1": {"log": False, "mean": 0.0, "std": 1.0, **bad}}
                ),
                "is not a task's log, mean and std each",
            )
            for bad in ({"log": "no"}, {"mean": "0"}, {"std": None})
        ),
        (lambda spec: spec.update(format="x"), "inference.json: not an mtlshare inference spec"),
        (
            lambda spec: spec.update(version=2),
            "inference.json: inference spec version 2; this mtlshare reads version 1 (a run of "
            "another mtlshare version)",
        ),
        (lambda spec: spec["codec"].pop("codec"), "inference spec names no codec"),
    ],
    ids=[
        "no tasks",
        "no input_dim",
        "input_dim text",
        "task no kind",
        "task extra",
        "codec",
        "input_dim of 400 digits",
        "input_dim 0",
        "input_dim 2**31",
        "no codec",
        "base_dir a list",
        "task a string",
        "task a number",
        "task no name",
        "out_dim a fraction",
        "tie_embedding text",
        "feature null",
        "scales text",
        "out_dim 0",
        "out_dim true",
        "out_dim 2**31",
        "scale log text",
        "scale mean text",
        "scale std null",
        "not an inference spec",
        "version 2",
        "codec unnamed",
    ],
)
def test_a_damaged_inference_json_is_one_line(synthetic_run, tmp_path, capsys, damage, message):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(synthetic_run, copy)
    path = copy / "inference.json"
    spec = json.loads(path.read_text())
    damage(spec)
    path.write_text(json.dumps(spec))
    assert main(["evaluate", str(copy)]) == 2
    line = one_line(capsys)
    assert message in line and line.startswith(f"mtlshare: error: {path}: "), line


def test_an_inference_json_tying_a_task_to_words_the_run_never_read_is_one_line_naming_the_run(
    synthetic_run, tmp_path, capsys
):
    """A task of ``inference.json`` whose output is tied to the input word embedding, in a run
    whose inputs are no words (synthetic): the network cannot be built. It was blamed on the
    task's ``tie_embedding`` as if a config had set it, naming no file."""
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(synthetic_run, copy)
    path = copy / "inference.json"
    spec = json.loads(path.read_text())
    spec["tasks"][0]["tie_embedding"] = 8
    path.write_text(json.dumps(spec))
    assert main(["evaluate", str(copy)]) == 2
    assert one_line(capsys) == (
        f"mtlshare: error: {copy}: its config.toml and inference.json do not make a network: "
        "task 't1': tie_embedding needs a word-embedding input encoder (the conll data source)"
    )


def test_a_run_without_a_checkpoint_yet_says_so(synthetic_run, tmp_path, capsys):
    copy = tmp_path / "copy"
    import shutil

    shutil.copytree(synthetic_run, copy)
    shutil.rmtree(copy / "checkpoint")
    (copy / "results.json").unlink()
    assert main(["predict", str(copy), str(tmp_path / "x.csv"), "--out", str(tmp_path / "o")]) == 2
    assert "no 'best' checkpoint yet" in one_line(capsys)


def test_a_finished_run_kept_without_checkpoints_says_so(synthetic_run, tmp_path, capsys):
    # what recipes/keep_runs.py leaves: config, results and metrics, no weights
    copy = tmp_path / "copy"
    import shutil

    shutil.copytree(synthetic_run, copy)
    shutil.rmtree(copy / "checkpoint")
    assert main(["predict", str(copy), str(tmp_path / "x.csv"), "--out", str(tmp_path / "o")]) == 2
    message = one_line(capsys)
    assert "the run finished, but its checkpoints were not kept" in message
    assert "still training" not in message


def test_a_finished_run_kept_with_its_best_checkpoint_only_names_it(
    synthetic_run, tmp_path, capsys
):
    # a finished run whose checkpoint/last was removed to free space (two thirds of a tagger's
    # run folder): it predicts and evaluates from best, and asking for last names best
    copy = tmp_path / "copy"
    import shutil

    shutil.copytree(synthetic_run, copy)
    shutil.rmtree(copy / "checkpoint" / "last")
    assert main(["evaluate", str(copy)]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(copy), "--checkpoint", "last"]) == 2
    message = one_line(capsys)
    assert "the run finished and kept only its 'best' checkpoint: use --checkpoint best" in message
    assert "train it again" not in message
    # a run that has not finished, without its last: not said to have finished
    (copy / "results.json").unlink()
    assert main(["evaluate", str(copy), "--checkpoint", "last"]) == 2
    message = one_line(capsys)
    assert "the run has no 'last' checkpoint yet" in message
    assert "the run finished" not in message


@needs_conll
def test_a_line_longer_than_any_training_sentence_is_tagged(conll_runs, tmp_path):
    text = tmp_path / "long.txt"
    text.write_text(" ".join(["Germany"] * 400) + "\n", encoding="utf-8")
    out = tmp_path / "long.conll"
    assert main(["predict", str(conll_runs["hard"]), str(text), "--out", str(out)]) == 0
    lines = [line for line in out.read_text().split("\n") if line]
    assert len(lines) == 400 and all(len(line.split()) == 4 for line in lines)


@needs_conll
def test_a_run_without_inference_json_is_rebuilt_from_its_data(conll_runs, tmp_path, capsys):
    import shutil

    copy = tmp_path / "old"
    shutil.copytree(conll_runs["hard"], copy)
    (copy / "inference.json").unlink()
    test = conll_runs["hard"].parent / "seen.txt"
    args = ["predict", str(copy), str(test), "--out", str(tmp_path / "a")]
    assert main(args) == 2
    assert "pass --data-dir" in one_line(capsys)
    assert main([*args, "--data-dir", str(ROOT / "recipes" / "conll2003")]) == 0
    assert main(["predict", str(conll_runs["hard"]), str(test), "--out", str(tmp_path / "b")]) == 0
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes()


def test_a_run_that_has_not_finished_is_used_with_a_warning(synthetic_run, tmp_path, capsys):
    """Mid-training (or cut), the best checkpoint is the model selected so far: evaluate and
    predict still work, but say on one stderr line that it is not the finished run's."""
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(synthetic_run, copy)
    (copy / "results.json").unlink()  # what a run still training looks like
    assert main(["evaluate", str(copy)]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mtlshare: warning:"), err
    assert "has not finished" in err[0] and "'best' model so far" in err[0]
    assert main(["evaluate", str(synthetic_run)]) == 0  # a finished run: no warning
    assert "warning" not in capsys.readouterr().err


def test_an_out_that_is_a_file_is_refused_before_the_data_is_read(tmp_path, capsys):
    target = tmp_path / "taken"
    target.write_text("a file the user meant to keep\n")
    config = tmp_path / "missing-data.toml"  # the data is never read: the folder fails first
    config.write_text('[data]\nsource = "conll"\ntrain = "nowhere.txt"\ndev = "nowhere.txt"\n')
    assert main(["run", str(config), "--out", str(target)]) == 2
    assert "is a file, not a folder" in one_line(capsys)
    assert target.read_text() == "a file the user meant to keep\n"


def test_a_reader_that_leaves_early_ends_the_command_quietly(synthetic_run):
    """``mtlshare masks DIR | head -1`` and the like: a closed pipe is not an error."""
    import subprocess
    import sys

    code = (
        "import sys, mtlshare.cli as c\n"
        "class Closed:\n"
        "    def write(self, s): raise BrokenPipeError(32, 'Broken pipe')\n"
        "    def flush(self): pass\n"
        "    def fileno(self): return sys.__stdout__.fileno()\n"
        "sys.stdout = Closed()\n"
        f"sys.exit(c.main(['evaluate', {str(synthetic_run)!r}]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "Broken pipe" not in done.stderr


def test_an_output_on_a_full_disk_is_one_line_naming_it(
    synthetic_run, tmp_path, monkeypatch, capsys
):
    """The disk fills while predict writes: one line naming the output, no resume hint
    (predict keeps no checkpoint), the earlier output and its folder as they were."""
    from mtlshare import files

    def full(path: Path) -> None:
        raise OSError(28, os.strerror(28))

    width = load_run(synthetic_run).spec["input_dim"]
    good = tmp_path / "in.csv"
    good.write_text(",".join(f"x{i}" for i in range(width)) + "\n" + ",".join(["0"] * width))
    out = tmp_path / "out" / "pred.csv"
    out.parent.mkdir()
    out.write_text("keep me")
    monkeypatch.setattr(files, "fsync_path", full)
    assert main(["predict", str(synthetic_run), str(good), "--out", str(out)]) == 2
    assert one_line(capsys) == f"mtlshare: error: [Errno 28] No space left on device: '{out}'"
    assert out.read_text() == "keep me" and [p.name for p in out.parent.iterdir()] == ["pred.csv"]


@needs_conll
def test_a_file_is_encoded_a_batch_at_a_time_with_the_predictions_of_it_encoded_whole(
    conll_runs, tmp_path
):
    """``predict`` holds one batch padded, not the whole file padded to its longest line (one
    line of 3,000 words took 3.8 GiB): the predictions, and the file written, are those of
    the file encoded whole, to the bit (blank lines are no sentences: the writer keeps
    them)."""
    text = tmp_path / "mixed.txt"
    lines = ["Germany rejects it .", "", " ".join(["Bonn"] * 60), "EU", "", "", "", "a b c"]
    text.write_text("\n".join(lines) + "\n", encoding="utf-8")
    run = load_run(conll_runs["hard"])
    run.config.train.eval_batch_size = 2  # three batches of the five sentences, longest first
    doc = run.codec.read(text, "auto", None)
    x, lengths = run.codec.encode(doc)
    whole = {t: run.predict(t, x, lengths) for t in run.tasks}
    batch = run._batch
    grads: list[bool] = []

    def batch_without_autograd(*args):
        grads.append(torch.is_grad_enabled())  # a graph kept per batch: 1.4 GB more
        return batch(*args)

    run._batch = batch_without_autograd  # type: ignore[method-assign]
    batched = run._predict_tagged(run.codec, doc, list(run.tasks))
    assert grads and not any(grads)
    for task in run.tasks:
        assert torch.equal(batched[task], whole[task]), task
    out = tmp_path / "mixed.conll"
    run.predict_file(text, out)
    tasks = [run.tasks[t] for t in run.tasks]
    assert out.read_text(encoding="utf-8") == run.codec.write(doc, tasks, whole)
