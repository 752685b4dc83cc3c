"""``mtlshare add-task``: a new task trained on a trained hard, sparse, MMoE or PLE model leaves
the trained tasks' outputs and every parameter they read bitwise unchanged."""

from __future__ import annotations

import json
import shutil
import tomllib
from pathlib import Path

import pytest
import torch

from mtlshare.app.add_task import _check_data, _load_trained, _undeclared_tables
from mtlshare.app.build import build_model, build_problem
from mtlshare.cli import main
from mtlshare.config import from_dict, load_config
from mtlshare.errors import CheckpointError, MtlshareError
from mtlshare.sharing.hard import HardSharing
from mtlshare.training.checkpoint import load_checkpoint, save_checkpoint
from mtlshare.training.folder import RunFolder

ROOT = Path(__file__).resolve().parents[1]
DEMO = str(ROOT / "recipes" / "demo" / "demo.toml")
SMALL = ["data.n_tasks=3", "data.n_dev=60", "data.n_test=60", "train.epochs=4", "--quiet"]
SPARSE = ["sparse.round_epochs=1", "sparse.warmup_epochs=1", "sparse.target_density=0.5"]
# the trained tasks keep half the weights each, so some entries are free for the new task
SELECT = ["sparse.select=density", "sparse.select_density=0.55"]
CONLL = """
[data]
source = "conll"
train = "train.txt"
dev = "train.txt"
test = "train.txt"
columns = ["word", "pos", "ner"]
[data.tasks.pos]
column = "pos"
[data.tasks.ner]
column = "ner"
scheme = "iob2"
"""


def model_of(run: Path, tasks: list[str] | None = None):
    cfg = load_config(run / "config.toml")
    problem = build_problem(cfg)
    model = build_model(cfg, problem)
    tensors, _ = load_checkpoint(run / "checkpoint" / "best")
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    return model.eval(), problem


@pytest.fixture(scope="module", params=["hard", "sparse", "mmoe", "ple"])
def added(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(request.param)
    mech = request.param
    extra = SPARSE if mech == "sparse" else []
    select = SELECT if mech == "sparse" else []
    trained, out = tmp / "trained", tmp / "added"
    assert (
        main(
            [
                "run",
                DEMO,
                f"mechanism={mech}",
                'tasks=["t1","t2"]',
                *SMALL,
                *extra,
                *select,
                "--out",
                str(trained),
            ]
        )
        == 0
    )
    assert (
        main(["add-task", str(trained), DEMO, 'tasks=["t3"]', *SMALL, *extra, "--out", str(out)])
        == 0
    )
    return mech, trained, out


def test_trained_tasks_outputs_are_bitwise_unchanged(added):
    mech, trained, out = added
    before, problem = model_of(trained)
    after, _ = model_of(out)
    assert after.task_names == ["t1", "t2", "t3"]
    x = problem.tasks[0].test.x
    with torch.no_grad():
        for task in ("t1", "t2"):
            assert torch.equal(before(x, task), after(x, task)), (mech, task)
    summary = json.loads((out / "add_task.json").read_text())
    assert summary["existing_unchanged"] is True and summary["changed_parameters"] == []
    for task, r in summary["existing_tasks"].items():
        assert r["dev_before"] == r["dev_after"] and r["test_before"] == r["test_after"], task
    assert set(summary["new_tasks"]) == {"t3"}


def test_a_kept_addition_keeps_its_summary_and_reports_as_the_run_does(added, tmp_path, capsys):
    """recipes/keep_runs.py keeps ``add_task.json`` (the addition's own account, with its best
    epoch and a sparse model's masks), so ``curves`` and ``masks`` say of the kept copy what
    they say of the run."""
    import importlib.util

    mech, _, out = added
    spec = importlib.util.spec_from_file_location("keep_runs", ROOT / "recipes" / "keep_runs.py")
    assert spec is not None and spec.loader is not None
    keep = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(keep)
    kept = tmp_path / "kept"
    assert keep.keep_runs(out, kept) == 1
    assert (kept / "add_task.json").read_bytes() == (out / "add_task.json").read_bytes()
    best = json.loads((out / "add_task.json").read_text())["best_epoch"]
    capsys.readouterr()
    assert main(["curves", str(kept), "--out", str(tmp_path / "c.png")]) == 0
    row = capsys.readouterr().out.splitlines()[-1]
    assert row.startswith(f"| kept | {best} | ") and "not finished" not in row, row
    if mech != "sparse":
        return
    assert main(["masks", str(out)]) == 0
    report = capsys.readouterr().out.splitlines()
    assert main(["masks", str(kept)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        *report,
        f"(read from {kept / 'add_task.json'}: the run's checkpoints were not kept)",
    ]


def test_what_the_new_task_may_change(added):
    mech, trained, out = added
    before, _ = model_of(trained)
    after, _ = model_of(out)
    b, a = dict(before.named_parameters()), dict(after.named_parameters())
    moved = [n for n in b if not torch.equal(b[n], a[n])]
    summary = json.loads((out / "add_task.json").read_text())
    head = sum(p.numel() for n, p in a.items() if n.startswith("heads.t3"))
    if mech == "hard":
        assert moved == []  # trunk, embeddings and the trained heads: all frozen
        assert head > 0 and summary["trainable_params"] == head
        return
    if mech in ("mmoe", "ple"):  # its own gate(s), head and (PLE) experts over frozen experts
        assert moved == []
        # a PLE shared gate's logits for t3 stay out of the shared stream, frozen
        own = [n for n in a if ".t3." in f".{n}" and "shared_gate" not in n]
        assert any(".gates.t3." in f".{n}" for n in own)
        assert summary["trainable_params"] == sum(a[n].numel() for n in own) > head
        assert summary["gates"]["positions"]["t3"] == 60  # t3's dev examples
        return
    free = sum(
        int((~(before.masks["t1"][k] | before.masks["t2"][k])).sum()) for k in after.prunable_names
    )
    assert summary["trainable_params"] == head + free
    # sparse: only prunable entries outside every trained mask may move
    assert moved, "the new task trained nothing"
    for name in moved:
        key = name.removeprefix("layers.")
        assert key in after.prunable_names, name
        used = before.masks["t1"][key] | before.masks["t2"][key]
        assert torch.equal(a[name][used], b[name][used]), name
    assert summary["new_mask_free_entries"] > 0
    # the new task has its own searched mask, the trained ones kept theirs
    for task in ("t1", "t2"):
        for key in after.prunable_names:
            assert torch.equal(after.masks[task][key], before.masks[task][key])
    assert len(summary["sparse"]["rounds"]) >= 2


def test_add_task_refuses_what_it_cannot_do(tmp_path, capsys):
    trained = tmp_path / "soft"
    assert (
        main(["run", DEMO, "mechanism=soft", 'tasks=["t1","t2"]', *SMALL, "--out", str(trained)])
        == 0
    )
    assert (
        main(["add-task", str(trained), DEMO, 'tasks=["t3"]', *SMALL, "--out", str(tmp_path / "o")])
        == 2
    )
    err = capsys.readouterr().err
    assert "was trained with 'soft', which cannot add a task; mechanisms that can: hard" in err
    assert "sparse (new mask, frozen entries)" in err
    assert main(["add-task", str(tmp_path), DEMO, *SMALL, "--out", str(tmp_path / "o")]) == 2
    assert "not a finished mtlshare run" in capsys.readouterr().err
    hard = tmp_path / "hard"
    assert main(["run", DEMO, 'tasks=["t1","t2"]', *SMALL, "--out", str(hard)]) == 0
    assert (
        main(["add-task", str(hard), DEMO, 'tasks=["t1"]', *SMALL, "--out", str(tmp_path / "o")])
        == 2
    )
    assert "no new task" in capsys.readouterr().err
    # the data of the config must hold the trained tasks too
    assert (
        main(
            ["add-task", str(hard), DEMO, "data.n_tasks=1", "--quiet", "--out", str(tmp_path / "o")]
        )
        == 2
    )
    assert "differs from the trained run's" in capsys.readouterr().err
    # data settings that differ from the trained run's (here: the inputs' width)
    assert (
        main(
            [
                "add-task",
                str(hard),
                DEMO,
                'tasks=["t3"]',
                *SMALL,
                "data.input_dim=8",
                "--out",
                str(tmp_path / "o2"),
            ]
        )
        == 2
    )
    assert "data.input_dim: 8 differs from the trained run's" in capsys.readouterr().err


def test_an_interrupted_add_task_resumes_to_the_same_result(tmp_path, capsys):
    trained, full, cut = tmp_path / "trained", tmp_path / "full", tmp_path / "cut"
    args = [DEMO, 'tasks=["t3"]', *SMALL, "train.epochs=6", "trunk.dropout=0.2"]
    assert main(["run", DEMO, 'tasks=["t1","t2"]', *SMALL, "--out", str(trained)]) == 0
    assert main(["add-task", str(trained), *args, "--out", str(full)]) == 0
    # the same run stopped after 3 epochs, then resumed to 6 with the same config
    assert main(["add-task", str(trained), *args, "train.epochs=3", "--out", str(cut)]) == 0
    config = (cut / "config.toml").read_text().replace("epochs = 3", "epochs = 6")
    (cut / "config.toml").write_text(config)
    (cut / "results.json").unlink()
    assert main(["add-task", str(trained), *args, "--out", str(cut)]) == 2
    assert "holds an earlier run" in capsys.readouterr().err
    source = cut / "trained_run.json"  # the selected model the addition started on
    kept = source.read_bytes()
    for damaged in ("{}", "[]", "{", "[" * 100_000 + "]" * 100_000):  # the last too deep
        source.write_text(damaged)
        assert main(["add-task", str(trained), *args, "--out", str(cut), "--resume"]) == 2
        assert f"{source}: unreadable" in capsys.readouterr().err
    source.write_bytes(kept)
    # the trained run's last checkpoint is no part of it: only its selected one (best) is
    (trained / "checkpoint" / "last" / "tensors.safetensors").write_bytes(b"moved on")
    assert main(["add-task", str(trained), *args, "--out", str(cut), "--resume"]) == 0
    a, b = (json.loads((d / "add_task.json").read_text()) for d in (full, cut))
    assert a["new_tasks"] == b["new_tasks"] and a["existing_tasks"] == b["existing_tasks"]
    assert (
        main(["add-task", str(trained), *args, "train.lr=0.5", "--out", str(cut), "--resume"]) == 2
    )
    assert "the config differs" in capsys.readouterr().err
    source.unlink()  # as if cut before it was written: nothing to compare with, resumed
    assert main(["add-task", str(trained), *args, "--out", str(cut), "--resume"]) == 0


def test_a_sparse_addition_resumes_with_the_config_it_was_started_with(added, capsys):
    # the sparse search drops its warm-up for the addition; the config the run folder keeps
    # must still be the one asked for, or --resume with the same overrides is refused
    mech, trained, out = added
    if mech != "sparse":
        pytest.skip("sparse only")
    args = [DEMO, 'tasks=["t3"]', *SMALL, *SPARSE]
    assert "warmup_epochs = 1.0" in (out / "config.toml").read_text()
    assert main(["add-task", str(trained), *args, "--out", str(out), "--resume"]) == 0
    assert "the config differs" not in capsys.readouterr().err


@pytest.mark.parametrize("damage", ["masks' metadata", "no model"])
def test_a_damaged_selected_checkpoint_of_the_trained_run_is_one_line_naming_it_once(
    added, tmp_path, capsys, damage
):
    """A trained run's ``checkpoint/best`` saved whole but damaged: masks the model reads
    itself (their metadata not JSON), or no model state at all, is one line that names the
    checkpoint, once."""
    mech, trained, _ = added
    if mech != "sparse":
        pytest.skip("sparse only")
    copy = tmp_path / "copy"
    shutil.copytree(trained, copy)
    best = copy / "checkpoint" / "best"
    tensors, meta = load_checkpoint(best)
    if damage == "no model":
        tensors = {"not.a.model": torch.zeros(1)}
    else:
        tensors["model.sparse_masks.meta"] = torch.tensor(list(b"{nope"), dtype=torch.uint8)
    save_checkpoint(best, tensors, meta)
    out = tmp_path / "o"
    args = [DEMO, 'tasks=["t3"]', *SMALL, *SPARSE, "--out", str(out)]
    capsys.readouterr()
    assert main(["add-task", str(copy), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    said = {"no model": "holds no model state", "masks' metadata": "masks' metadata is not JSON"}
    assert len(err) == 1 and f"{best}: {said[damage]}" in err[0], err
    assert err[0].count(str(best)) == 1, err


# -- what add-task checks and keeps, on one trained hard run -------------------------------------
@pytest.fixture(scope="module")
def hard_run(tmp_path_factory):
    trained = tmp_path_factory.mktemp("hard") / "trained"
    assert main(["run", DEMO, 'tasks=["t1","t2"]', *SMALL, "--out", str(trained)]) == 0
    return trained


def test_the_trained_network_is_kept_whatever_the_config_says(hard_run, tmp_path):
    out = tmp_path / "added"
    args = [DEMO, 'tasks=["t3"]', *SMALL, "trunk.hidden=[5]", "hard.shared_layers=1"]
    assert main(["add-task", str(hard_run), *args, "--out", str(out)]) == 0
    trained, added = load_config(hard_run / "config.toml"), load_config(out / "config.toml")
    assert added.trunk == trained.trunk and added.trunk.hidden != [5]
    assert added.mechanism_config == trained.mechanism_config


@pytest.mark.skipif(torch.cuda.is_available(), reason="a machine with a GPU can use it")
def test_a_run_trained_on_a_gpu_takes_a_new_task_here_on_the_cpu(
    hard_run, tmp_path, trained_on_a_gpu
):
    """Its ``config.toml`` says ``train.device = "cuda"``, which ``load_config`` refuses here;
    the new task trains where the new config says, with the same result as from the CPU run."""
    gpu = trained_on_a_gpu(hard_run, tmp_path / "gpu-run")
    args = [DEMO, 'tasks=["t3"]', *SMALL]
    assert main(["add-task", str(gpu), *args, "--out", str(tmp_path / "from-gpu")]) == 0
    assert main(["add-task", str(hard_run), *args, "--out", str(tmp_path / "from-cpu")]) == 0
    from_gpu, from_cpu = (
        json.loads((tmp_path / name / "results.json").read_text())["tasks"]
        for name in ("from-gpu", "from-cpu")
    )
    assert from_gpu == from_cpu and set(from_gpu) == {"t1", "t2", "t3"}


def test_a_run_without_results_is_no_trained_run(hard_run, tmp_path, capsys):
    cut = tmp_path / "cut"
    shutil.copytree(hard_run, cut)
    (cut / "results.json").unlink()  # its checkpoints are there, but it did not finish
    args = [DEMO, 'tasks=["t3"]', *SMALL, "--out", str(tmp_path / "o")]
    assert main(["add-task", str(cut), *args]) == 2
    # it says so (it said "not a finished run ... give the --out folder of `mtlshare run`",
    # which is what it had been given)
    err = capsys.readouterr().err
    assert f"{cut}: the run has not finished (still training, or cut: resume it" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "damage",
    [
        lambda spec: spec["tasks"].__setitem__(0, "t1"),
        lambda spec: spec["tasks"][0].pop("name"),
        lambda spec: spec.update(codec="tensor"),
    ],
    ids=["task a string", "task without a name", "codec a string"],
)
def test_a_damaged_inference_json_of_the_trained_run_is_one_line(
    hard_run, tmp_path, capsys, damage
):
    """``add-task`` compares the trained run's ``inference.json`` with the data read again: a
    task entry that is no object with a name, or a codec that is no object, was a
    ``TypeError``, ``KeyError`` or ``AttributeError`` traceback."""
    copy = tmp_path / "copy"
    shutil.copytree(hard_run, copy)
    spec = json.loads((copy / "inference.json").read_text())
    damage(spec)
    (copy / "inference.json").write_text(json.dumps(spec))
    out = tmp_path / "o"
    assert main(["add-task", str(copy), DEMO, 'tasks=["t3"]', *SMALL, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{copy / 'inference.json'}: damaged" in err[0], err
    assert not out.exists()


def test_a_changed_parameter_fails_the_addition_even_with_equal_metrics(
    hard_run, tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(HardSharing, "changed_since", lambda self, snapshot: ["trunk.0.weight"])
    out = tmp_path / "o"
    assert main(["add-task", str(hard_run), DEMO, 'tasks=["t3"]', *SMALL, "--out", str(out)]) == 2
    assert "changed what the trained tasks use (['trunk.0.weight'])" in capsys.readouterr().err
    summary = json.loads((out / "add_task.json").read_text())
    assert summary["existing_unchanged"] is False
    assert summary["changed_parameters"] == ["trunk.0.weight"]


def test_a_trained_parameter_missing_from_the_checkpoint_is_refused(hard_run, monkeypatch):
    cfg = load_config(DEMO, ['tasks=["t1","t2","t3"]', *SMALL[:-1]])
    model = build_model(cfg, build_problem(cfg))
    folder = RunFolder(hard_run)
    state = folder.model_state("best")
    head = next(k for k in state if k.startswith("heads.t1."))
    partial = {k: v for k, v in state.items() if k != head}
    monkeypatch.setattr(folder, "model_state", lambda name="best": partial)
    with pytest.raises(CheckpointError, match=head.replace(".", r"\.")):
        _load_trained(model, folder, ["t3"])
    _load_trained(build_model(cfg, build_problem(cfg)), RunFolder(hard_run), ["t3"])


def test_the_trained_tasks_data_settings_must_not_change():
    old = from_dict(tomllib.loads(CONLL))
    _check_data(old.replace(**{"data.tasks.chunk": {"column": "pos"}}), old, ["pos", "ner"])
    _check_data(old.replace(**{"data.tasks.ner.column": "pos"}), old, ["pos"])  # not trained
    with pytest.raises(MtlshareError, match=r"data\.tasks\.ner: .* the trained tasks' data"):
        _check_data(old.replace(**{"data.tasks.ner.scheme": "iob1"}), old, ["pos", "ner"])


def test_a_task_table_the_trained_run_lacked_is_refused_by_name(tmp_path, capsys):
    """The words and tags are encoded over every table of [data]: a table the trained run's
    config did not hold is named, not blamed on changed data files."""
    sentences = ["EU NNP B-NP B-ORG\nrejects VBZ B-VP O\n", "Peter NNP B-NP B-PER\n"]
    (tmp_path / "train.txt").write_text("\n".join(sentences))
    small = ["train.epochs=1", "trunk.kind=mlp", "trunk.hidden=[8]", "--quiet"]
    base = CONLL.replace('"word", "pos", "ner"', '"word", "pos", "chunk", "ner"')
    (tmp_path / "old.toml").write_text(base)
    (tmp_path / "new.toml").write_text(base + '[data.tasks.pos2]\ncolumn = "pos"\n')
    trained = tmp_path / "trained"
    assert main(["run", str(tmp_path / "old.toml"), *small, "--out", str(trained)]) == 0
    capsys.readouterr()
    argv = ["add-task", str(trained), str(tmp_path / "new.toml"), 'tasks=["pos2"]', *small]
    assert main([*argv, "--out", str(tmp_path / "added")]) == 2
    err = capsys.readouterr().err
    assert "data.tasks: ['pos2'] not in the [data] of" in err
    assert "data files changed" not in err


def test_sparse_masks_that_leave_no_free_weight_are_warned_of_before_the_search(tmp_path, capsys):
    """Trained masks of density 1.0 (the search's round 0 selected) freeze every prunable
    weight: add-task says so in one line before searching a mask for the new task."""
    trained, out = tmp_path / "trained", tmp_path / "added"
    dense = ["sparse.select=round", "sparse.select_round=0"]
    argv = ["run", DEMO, "mechanism=sparse", 'tasks=["t1","t2"]', *SMALL, *SPARSE, *dense]
    assert main([*argv, "--out", str(trained)]) == 0
    capsys.readouterr()
    argv = ["add-task", str(trained), DEMO, 'tasks=["t3"]', *SMALL, *SPARSE, "--out", str(out)]
    assert main(argv) == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if "none is free" in line]
    assert len(warned) == 1, warned
    assert warned[0].startswith("mtlshare: warning: adding ['t3']: the trained masks of ")
    assert "can only select among frozen weights" in warned[0]
    assert json.loads((out / "add_task.json").read_text())["new_mask_free_entries"] == 0


def test_an_addition_whose_figures_fail_still_writes_its_results(tmp_path, capsys, monkeypatch):
    """The new task's gates cannot be drawn: a warning, and the addition is finished."""
    import mtlshare.sharing.gating.plots as gate_plots

    trained, out = tmp_path / "trained", tmp_path / "added"
    run = ["run", DEMO, "mechanism=mmoe", 'tasks=["t1","t2"]', *SMALL, "--out", str(trained)]
    assert main(run) == 0

    def fails(*args, **kwargs):
        raise RuntimeError("no canvas")

    monkeypatch.setattr(gate_plots, "plot_run_gates", fails)
    capsys.readouterr()
    assert main(["add-task", str(trained), DEMO, 'tasks=["t3"]', *SMALL, "--out", str(out)]) == 0
    assert RunFolder(out).finished and not (out / "gates.png").exists()
    warned = [ln for ln in capsys.readouterr().err.splitlines() if "not drawn" in ln]
    assert warned == [f"mtlshare: warning: {out}: the figures: not drawn (RuntimeError: no canvas)"]


def test_add_task_from_python_reads_relative_data_paths_from_the_config_folder(
    tmp_path, monkeypatch
):
    """``mtlshare.add_task`` with a config read from a file, called from another directory:
    its relative data paths are the config folder's, as for ``mtlshare.run``."""
    import mtlshare

    sentences = ["EU NNP B-ORG\nrejects VBZ O\n", "Peter NNP B-PER\n"]
    (tmp_path / "train.txt").write_text("\n".join(sentences))
    (tmp_path / "c.toml").write_text(CONLL)
    small = ["train.epochs=1", "trunk.kind=mlp", "trunk.hidden=[8]"]
    trained = tmp_path / "trained"
    assert (
        main(
            [
                "run",
                str(tmp_path / "c.toml"),
                *small,
                'tasks=["pos"]',
                "--out",
                str(trained),
                "--quiet",
            ]
        )
        == 0
    )
    cfg = mtlshare.load_config(tmp_path / "c.toml", [*small, 'tasks=["ner"]'])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # train.txt does not exist from here
    mtlshare.add_task(trained, cfg, tmp_path / "added", progress=False)
    assert (tmp_path / "added" / "add_task.json").is_file()


def test_the_checkpoint_folder_given_for_the_run_adds_to_the_run_it_belongs_to(hard_run, tmp_path):
    """``mtlshare add-task RUN/checkpoint/best ...`` (the selected model's folder, not the
    run's): the addition is made to that run, and says so."""
    out = tmp_path / "added"
    best = hard_run / "checkpoint" / "best"
    assert main(["add-task", str(best), DEMO, 'tasks=["t3"]', *SMALL, "--out", str(out)]) == 0
    assert json.loads((out / "add_task.json").read_text())["trained_run"] == str(hard_run)
    assert json.loads((out / "trained_run.json").read_text())["trained_run"] == str(hard_run)


def test_a_config_reading_another_data_source_is_refused_naming_both(hard_run, tmp_path, capsys):
    (tmp_path / "conll.toml").write_text(CONLL)  # its files need not exist: refused before
    out = tmp_path / "o"
    argv = ["add-task", str(hard_run), str(tmp_path / "conll.toml"), "--quiet", "--out", str(out)]
    assert main(argv) == 2
    assert capsys.readouterr().err.splitlines() == [
        "mtlshare: error: the config reads data source 'conll', the trained model 'synthetic'"
    ]
    assert not out.exists()


def test_synthetic_data_encoded_otherwise_than_the_trained_run_is_refused_as_changed_data(
    hard_run, tmp_path, capsys
):
    """A data source without task tables (synthetic) has no table the trained run could have
    lacked: data encoded otherwise than its ``inference.json`` says is blamed on the data."""
    copy = tmp_path / "copy"
    shutil.copytree(hard_run, copy)
    spec = json.loads((copy / "inference.json").read_text())
    spec["input_dim"] += 1
    (copy / "inference.json").write_text(json.dumps(spec))
    out = tmp_path / "o"
    assert main(["add-task", str(copy), DEMO, 'tasks=["t3"]', *SMALL, "--out", str(out)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"mtlshare: error: the data the config reads is not what {copy} was trained on: its "
        "inference.json differs in the input width (were the data files changed since?)"
    ]
    assert not out.exists()
    cfg = load_config(DEMO)
    assert _undeclared_tables(cfg, cfg) == []


def test_a_run_older_than_inference_json_whose_data_changed_since_is_refused_in_one_line(
    tmp_path, capsys
):
    """Without the trained run's ``inference.json`` (runs older than it) the data read again
    cannot be compared with what it was trained on: a vocabulary grown since makes the trained
    weights another shape than the network built for the config, one line naming the run."""
    (tmp_path / "train.txt").write_text("EU NNP B-ORG\nrejects VBZ O\n\nPeter NNP B-PER\n")
    (tmp_path / "c.toml").write_text(CONLL)
    small = ["train.epochs=1", "trunk.kind=mlp", "trunk.hidden=[8]", "--quiet"]
    trained = tmp_path / "trained"
    argv = ["run", str(tmp_path / "c.toml"), *small, 'tasks=["pos"]', "--out", str(trained)]
    assert main(argv) == 0
    (trained / "inference.json").unlink()
    # the file as it was: the addition is made (nothing to compare it with)
    added = ["add-task", str(trained), str(tmp_path / "c.toml"), *small, 'tasks=["ner"]']
    assert main([*added, "--out", str(tmp_path / "added")]) == 0
    assert RunFolder(tmp_path / "added").finished
    # new words since: the embedding the config's network has is larger than the trained one
    with (tmp_path / "train.txt").open("a") as f:
        f.write("\nZebras NNS O\ngraze VBP O\n")
    capsys.readouterr()
    assert main([*added, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(
        f"mtlshare: error: {trained}: the trained model does not fit the config's data or "
        "network (RuntimeError: "
    ), err
    assert "size mismatch" in err[0], err
    assert not (tmp_path / "o").exists()


def test_a_config_whose_data_lacks_a_trained_task_is_refused_naming_it(tmp_path, capsys):
    """A daily CSV's series are its tasks: a series the trained run was trained on and the file
    no longer holds is named, and nothing is written."""
    csv = tmp_path / "daily.csv"

    def write(series: tuple[str, ...]) -> None:
        rows = ["date,series,value"]
        rows += [f"2011-01-{d:02d},{s},{d + i}" for d in range(1, 29) for i, s in enumerate(series)]
        csv.write_text("\n".join(rows) + "\n", encoding="utf-8")

    write(("a", "b"))
    config = tmp_path / "run.toml"
    config.write_text(
        f'[data]\nsource = "daily_csv"\npath = "{csv}"\norigin = "2011-01-20"\nhorizon = 5\n'
        '[trunk]\nkind = "mlp"\nhidden = [4]\n[train]\nepochs = 1\n',
        encoding="utf-8",
    )
    trained = tmp_path / "trained"
    assert main(["run", str(config), 'tasks=["a","b"]', "--out", str(trained), "--quiet"]) == 0
    write(("a", "c"))  # series b left the file, c came
    out = tmp_path / "o"
    capsys.readouterr()
    assert main(["add-task", str(trained), str(config), "--quiet", "--out", str(out)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "mtlshare: error: the config's data has no task(s) ['b'] that the trained model has; it "
        "must hold the trained tasks as well as the new ones"
    ]
    assert not out.exists()
