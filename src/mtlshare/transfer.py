"""Adding a task to a trained multi-task model without changing anything the trained tasks use.

Two strategies, chosen by the trained model's mechanism:

- hard sharing: the new task gets its own head (and its own copies of the task-specific
  layers, if any) on the frozen shared trunk and embeddings;
- sparse sharing: the new task searches its own mask over the trained base network (the
  paper's iterative magnitude pruning, from the trained weights, no warm-up); every entry that
  an existing mask keeps is frozen, so only the entries no trained task uses learn, and the
  new subnet can still read the frozen ones.

The existing tasks' dev and test metrics are measured before and after and must be identical;
so must every parameter they read (``add_task.json`` says so, and the command fails if not).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from mtlshare.errors import CheckpointError, MtlshareError
from mtlshare.experiment import build_model, build_problem, write_json
from mtlshare.sharing.sparse import SparseSharing
from mtlshare.training.checkpoint import atomic_write_text, load_checkpoint
from mtlshare.training.loop import Trainer
from mtlshare.training.objective import LossWeighting

if TYPE_CHECKING:
    from mtlshare.config import Config

STRATEGIES = {"hard": "new head on the frozen shared trunk", "sparse": "new mask, frozen entries"}


def _trained_run(run_dir: Path) -> tuple[Path, Config, list[str]]:
    """The trained run's folder, its config and its tasks."""
    from mtlshare.config import load_config

    if (run_dir / "meta.json").is_file() and run_dir.parent.name == "checkpoint":
        run_dir = run_dir.parent.parent  # given the checkpoint folder itself
    for needed in ("config.toml", "results.json", "checkpoint/best"):
        if not (run_dir / needed).exists():
            raise MtlshareError(
                f"{run_dir}: not a finished mtlshare run ({needed} is missing); give the --out "
                "folder of `mtlshare run`"
            )
    cfg = load_config(run_dir / "config.toml")
    results = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    return run_dir, cfg, list(results["tasks"])


def _model_config(new: Config, old: Config, tasks: list[str]) -> Config:
    """The new config's data and training, the trained model's mechanism and network."""
    import dataclasses

    return new.replace(
        mechanism=old.mechanism,
        tasks=tasks,
        trunk=dataclasses.asdict(old.trunk),
        **{old.mechanism: dataclasses.asdict(old.mechanism_config)},
    )


def _trainable(model: nn.Module, prunable: set[str]) -> int:
    """Scalars the new tasks may change: trainable tensors, and of the prunable weights of a
    sparse model only the entries no trained mask keeps."""
    n = 0
    for name, p in model.named_parameters():
        key = name.removeprefix("layers.")
        if isinstance(model, SparseSharing) and key in prunable:
            n += int((~model.frozen_entries(key)).sum())
        elif p.requires_grad:
            n += p.numel()
    return n


def _snapshot(params: dict[str, nn.Parameter]) -> dict[str, Tensor]:
    return {n: p.detach().clone() for n, p in params.items()}


def add_task(
    run_dir: str | Path,
    cfg: Config,
    out_dir: str | Path,
    *,
    base_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Train the tasks of ``cfg`` that the run in ``run_dir`` was not trained on; see the
    module docstring. Writes ``config.toml``, ``metrics.jsonl``, ``checkpoint/``,
    ``results.json`` and ``add_task.json`` to ``out_dir``; returns the latter's content."""
    run_dir, old_cfg, old_tasks = _trained_run(Path(run_dir))
    if old_cfg.mechanism not in STRATEGIES:
        raise MtlshareError(
            f"add-task supports models trained with {' or '.join(STRATEGIES)} sharing; "
            f"{run_dir} used {old_cfg.mechanism!r}"
        )
    if cfg.data_source != old_cfg.data_source:
        raise MtlshareError(
            f"the config reads data source {cfg.data_source!r}, the trained model "
            f"{old_cfg.data_source!r}"
        )
    problem = build_problem(cfg.replace(tasks=[]), base_dir)
    available = [td.task.name for td in problem.tasks]
    missing = [t for t in old_tasks if t not in available]
    if missing:
        raise MtlshareError(
            f"the config's data has no task(s) {missing} that the trained model has; it must "
            "hold the trained tasks as well as the new ones"
        )
    wanted = cfg.tasks or available
    new_tasks = [t for t in wanted if t not in old_tasks]
    if not new_tasks:
        raise MtlshareError(
            f"no new task: the trained model already has {old_tasks} (name new tasks in `tasks`)"
        )
    full_cfg = _model_config(cfg, old_cfg, [*old_tasks, *new_tasks])
    problem = problem.select([*old_tasks, *new_tasks])
    model = build_model(full_cfg, problem)
    tensors, _ = load_checkpoint(run_dir / "checkpoint" / "best")
    state = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    try:
        result = model.load_state_dict(state, strict=False)
    except (RuntimeError, KeyError) as e:
        raise CheckpointError(
            f"{run_dir}: the trained model does not fit the config's data or network "
            f"({type(e).__name__}: {str(e).splitlines()[0]})"
        ) from None
    unexpected = list(result.unexpected_keys)
    stray = [k for k in result.missing_keys if not any(f".{t}." in f".{k}" for t in new_tasks)]
    if unexpected or stray:
        raise CheckpointError(
            f"{run_dir}: the trained model does not fit (unexpected {unexpected[:3]}, "
            f"missing {stray[:3]})"
        )

    # freeze everything the trained tasks read; what stays trainable belongs to the new tasks
    # (a parameter that is also shared or another task's, e.g. a head tied to the shared word
    # embedding, stays frozen)
    taken = {id(p) for p in model.shared_parameters()}
    taken |= {id(p) for t in old_tasks for p in model.task_parameters(t)}
    new_params = {id(p) for t in new_tasks for p in model.task_parameters(t)} - taken
    sparse = model if isinstance(model, SparseSharing) else None
    prunable = set(sparse.prunable_names) if sparse is not None else set()
    for name, p in model.named_parameters():
        trainable = id(p) in new_params
        if name.removeprefix("layers.") in prunable:
            trainable = True  # entries of the trained tasks' masks are frozen one by one
        p.requires_grad_(trainable)
    if isinstance(model, SparseSharing):
        model.freeze_entries(old_tasks)
        model.search_tasks = new_tasks
        model.searched = False
        model.cfg.warmup_steps, model.cfg.warmup_epochs = 0, 0.0
        model.cfg.rewind = "warmup"  # to the trained weights
        model.cfg.masks_from = ""
    frozen_params = {
        n: p for n, p in model.named_parameters() if id(p) not in new_params
    }  # sparse: prunable weights included, their free entries are checked apart
    before_params = _snapshot(frozen_params)

    out = Path(out_dir)
    if not resume and ((out / "results.json").exists() or (out / "checkpoint").exists()):
        raise MtlshareError(f"{out}: holds an earlier run; choose another --out or pass --resume")
    saved = out / "config.toml"
    if resume and saved.is_file() and saved.read_text(encoding="utf-8") != full_cfg.to_toml():
        raise MtlshareError(
            f"--resume: the config differs from {saved}; resume with the same config and overrides"
        )
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.toml", full_cfg.to_toml())

    scorer = Trainer(
        model,
        problem.select(old_tasks),
        full_cfg.train,
        LossWeighting(old_tasks, full_cfg.weighting),
        progress=False,
    )
    before = {t: {s: scorer.score(t, s) for s in ("dev", "test")} for t in old_tasks}
    trainer = Trainer(
        model,
        problem.select(new_tasks),
        full_cfg.train,
        LossWeighting(new_tasks, full_cfg.weighting),
        seed=full_cfg.seed,
        out_dir=out,
        progress=progress,
    )
    history: list[dict[str, Any]] = []

    def log(record: dict[str, Any]) -> None:
        history.append(record)
        lines = "".join(json.dumps(r) + "\n" for r in history)
        atomic_write_text(out / "metrics.jsonl", lines)

    started = time.perf_counter()
    fit = trainer.fit(resume=resume, on_epoch=log)
    after = {t: {s: scorer.score(t, s) for s in ("dev", "test")} for t in old_tasks}

    changed = []
    for n, p in frozen_params.items():
        old = before_params[n]
        if sparse is not None and n.removeprefix("layers.") in prunable:
            used = sparse.frozen_entries(n.removeprefix("layers."))
            if not torch.equal(p.detach()[used], old[used]):
                changed.append(n)
        elif not torch.equal(p.detach(), old):
            changed.append(n)
    identical = before == after and not changed
    summary: dict[str, Any] = {
        "strategy": STRATEGIES[old_cfg.mechanism],
        "mechanism": old_cfg.mechanism,
        "trained_run": str(run_dir),
        "existing_tasks": {
            t: {
                "metric": problem.select([t]).tasks[0].task.metric,
                "dev_before": before[t]["dev"],
                "dev_after": after[t]["dev"],
                "test_before": before[t]["test"],
                "test_after": after[t]["test"],
            }
            for t in old_tasks
        },
        "existing_unchanged": identical,
        "changed_parameters": changed,
        "new_tasks": {
            t: {
                "metric": problem.select([t]).tasks[0].task.metric,
                "dev": fit.dev[t],
                "test": fit.test[t],
            }
            for t in new_tasks
        },
        "trainable_params": _trainable(model, prunable),
        "params": model.param_counts(),
        "train_seconds": round(fit.train_seconds, 3),
        "wall_seconds": round(time.perf_counter() - started, 3),
        "best_epoch": fit.best_epoch,
    }
    if isinstance(model, SparseSharing):
        summary["sparse"] = model.report()["sparse"]
        free = {
            n: (~model.frozen_entries(n)) & model.masks[t][n]
            for t in new_tasks
            for n in model.prunable_names
        }
        summary["new_mask_free_entries"] = int(sum(int(m.sum()) for m in free.values()))
    write_json(out / "add_task.json", summary)

    def entry(task: str, dev: float, test: float) -> dict[str, Any]:
        spec = problem.select([task]).tasks[0].task
        return {
            "metric": spec.metric,
            "higher_is_better": spec.higher_is_better,
            "dev": dev,
            "test": test,
        }

    kept = summary["existing_tasks"].items()
    added = summary["new_tasks"].items()
    results = {
        "mechanism": old_cfg.mechanism,
        "seed": full_cfg.seed,
        "tasks": {
            **{t: entry(t, s["dev_after"], s["test_after"]) for t, s in kept},
            **{t: entry(t, s["dev"], s["test"]) for t, s in added},
        },
        "params": summary["params"],
        "train_seconds": summary["train_seconds"],
        "added_tasks": new_tasks,
    }
    model.write_artifacts(out)
    write_json(out / "results.json", results)
    if not identical:
        raise MtlshareError(
            f"adding {new_tasks} changed what the trained tasks use ({changed[:3]}); "
            f"see {out / 'add_task.json'}"
        )
    return summary
