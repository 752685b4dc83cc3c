"""``mtlshare compare``: single-task baselines and several mechanisms on the same data and
seeds, one table. Every run is a run folder inside a ``ComparisonFolder``; the runs go one after
another, or to worker processes (``mtlshare.app.jobs``)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mtlshare import config_lines
from mtlshare.app.build import build_model, build_problem, configured_tasks
from mtlshare.app.figures import draw
from mtlshare.app.jobs import (
    RunJob,
    available_cores,
    carried_masks,
    check_jobs,
    check_resumable,
    execute,
    plan_summary,
    remembered_problem,
)
from mtlshare.config import SINGLE, SUBNET, Config, check_config
from mtlshare.errors import ConfigError, MtlshareError, check_list, check_seed, count
from mtlshare.evaluation import report
from mtlshare.evaluation.curves import write_dev_curves
from mtlshare.sharing.gating.report import gates_markdown, summarize
from mtlshare.sharing.sparse.report import overlap_markdown, overlap_vs_gain
from mtlshare.training.folder import ComparisonFolder, another_commands_output
from mtlshare.training.joint import check_joint
from mtlshare.training.objective import JOINT_ONLY, LossWeighting
from mtlshare.training.settings import check_select_on


def compare(
    cfg: Config,
    mechanisms: list[str],
    out_dir: str | Path,
    *,
    seeds: list[int] | None = None,
    base_dir: str | Path | None = None,
    progress: bool = True,
    title: str | None = None,
    resume: bool = False,
    jobs: int = 1,
) -> dict[str, Any]:
    """Single-task baselines and each mechanism on the same data and seeds.

    Writes ``comparison.json`` and ``comparison.md`` in ``out_dir`` and each run in a subfolder
    (``MECHANISM/`` or, with several seeds, ``MECHANISM/seed-N/``). ``single`` trains every task
    alone with ``hard`` sharing, which on one task is a plain network; ``single_subnet`` trains
    every task alone on the mask the ``sparse`` run selected for it. ``[compare] overrides``
    change the config of one mechanism's runs, ``[compare] seeds_of`` runs a row on fewer
    seeds. With several seeds the table shows means and standard deviations over seeds; with
    hard and sparse sharing and two or more tasks it also shows the masks' pairwise overlap
    beside the gain of sparse over hard sharing; with mechanisms that mix experts through
    gates, the overlap of the tasks' gates on dev (and ``gates.png``, every seed's weights).

    With ``resume``, a run whose ``results.json`` exists (with the same config) is read back,
    not trained again, and an interrupted one continues from its ``checkpoint/last``. With
    ``jobs`` > 1 the runs go to that many worker processes; the tables are the same, only the
    seconds differ. Everything is checked before ``out_dir`` is created. Relative data paths
    resolve against ``base_dir``, by default the config file's folder (``cfg.base_dir``).
    """
    check_config(cfg, "mtlshare.compare")
    check_list(mechanisms, "mtlshare.compare: mechanisms")
    check_list(seeds, "mtlshare.compare: seeds")
    seeds = seeds or [cfg.seed]
    base_dir = base_dir if base_dir is not None else cfg.base_dir
    _check_request(cfg, mechanisms, seeds, jobs)
    other = another_commands_output(out_dir, "comparison")
    if other is not None:  # its rows would be written beside a run's files
        raise MtlshareError(f"{out_dir}: holds {other}, not a comparison; choose another --out")
    every_task = build_problem(cfg.replace(tasks=[]), base_dir)
    problem = configured_tasks(cfg, every_task)
    names = [td.task.name for td in problem.tasks]
    folder = ComparisonFolder(out_dir, several_seeds=len(seeds) > 1)
    rows = [SINGLE, *(m for m in mechanisms if m != SINGLE)]
    row_seeds = {name: _row_seeds(cfg, name, seeds) for name in rows}
    plan = _plan(cfg, folder, rows, row_seeds, names)
    for name in mechanisms:  # a bad mechanism setting fails now, not after hours of training
        if name not in (SINGLE, SUBNET):
            row = row_config(cfg, name)
            with _set_by_row(cfg, name):
                model = build_model(row, problem)
            if row.train.schedule == "joint":
                try:
                    check_joint(row.weighting.kind, model)
                except ConfigError as e:
                    raise ConfigError(f"compare row {name!r}: {e}") from None
    if SUBNET in mechanisms:  # its masks come from the sparse run: the networks must agree
        _check_subnet_fits(cfg, problem, names)
    for job in plan:  # so do every run's loss weights and selection rule
        tasks = [job.task] if job.task is not None else names
        run_cfg = row_config(cfg, job.name, tasks=tasks)
        with _set_by_row(cfg, job.name):
            LossWeighting(tasks, run_cfg.weighting, cfg.seed)
            check_select_on(run_cfg.train, tasks)
    base = str(base_dir) if base_dir is not None else None
    if resume:  # kept runs copied to another folder name their sparse run by its old path
        plan = [carried_masks(job) for job in plan]
    check_resumable(plan, resume)  # an earlier run with another config: refused before training
    # --resume into a folder not there (a typo of the folder meant) trains every run: said
    # in a line of its own (not refused: a first `compare --resume` starts a comparison)
    nothing_to_resume = resume and not folder.path.exists()
    folder.open()  # only once the data and settings are known good
    try:
        # one line even with --quiet (which hides progress bars): what is read back and trained
        print(plan_summary(plan, resume), file=sys.stderr, flush=True)
        if nothing_to_resume:
            print(
                f"compare: --resume: {folder.path} did not exist: no run to read back or "
                "continue, every run trains",
                file=sys.stderr,
                flush=True,
            )
        with remembered_problem(cfg.to_dict(), base, every_task):
            finished = execute(plan, jobs, base_dir=base, resume=resume, progress=progress)
        return _assemble(cfg, folder, rows, row_seeds, plan, finished, names, title)
    finally:
        folder.close()


def _check_subnet_fits(cfg: Config, problem: Any, names: list[str]) -> None:
    """Refuse now, not after the sparse runs, a ``single_subnet`` row whose network (its
    ``[compare] overrides`` against ``sparse``'s) the sparse run's masks would not fit."""
    from mtlshare.sharing.sparse import SparseSharing, masks_from_state

    masks = masks_from_state(build_model(row_config(cfg, "sparse"), problem).state_dict())
    for task in names:
        alone = build_model(
            row_config(cfg, SUBNET, tasks=[task], **_own_depth(cfg, task)), problem.select([task])
        )
        assert isinstance(alone, SparseSharing)
        own = {n: p.shape for n, p in alone.prunable_weights().items()}
        mask = {n: m.shape for n, m in masks[task].items()}
        if any(mask.get(n) != shape for n, shape in own.items()):  # deeper: sparse.depths
            raise ConfigError(
                f"compare row {SUBNET!r}: its network does not fit the masks of the sparse "
                f"row (task {task!r}: prunable weights {own} against {mask}); give "
                f"{SUBNET} the trunk and sparse.prunable of sparse (its overrides take sparse's)"
            )


def _own_depth(cfg: Config, task: str) -> dict[str, Any]:
    """A ``single_subnet`` run's ``sparse.depths``: its task's own only (with per-task depths,
    the others name tasks its network does not have); and for a task read below the top, the
    trunk of the layers it reads, each with the activation it has in the sparse network (the
    layers above would never be built, which ``sparse.depths`` refuses)."""
    row = row_config(cfg, SUBNET)
    depths = row.mechanisms["sparse"].depths
    changes: dict[str, Any] = {"sparse.depths": {t: d for t, d in depths.items() if t == task}}
    depth = depths.get(task)
    if depth is not None and depth < len(row.trunk.hidden):
        changes |= {"trunk.hidden": row.trunk.hidden[:depth], "trunk.last_activation": ""}
    return changes


def _check_request(cfg: Config, mechanisms: list[str], seeds: list[int], jobs: int) -> None:
    known = cfg.compare.rows()
    for name in mechanisms:
        if name not in known:
            raise MtlshareError(f"unknown mechanism {name!r}; choose from {', '.join(known)}")
    twice = sorted({name for name in mechanisms if mechanisms.count(name) > 1})
    if twice:  # two rows of one name would train into one folder, or repeat one row
        raise MtlshareError(f"mechanisms: {mechanisms} lists {', '.join(twice)} twice")
    if SUBNET in mechanisms and (
        "sparse" not in mechanisms or mechanisms.index("sparse") > mechanisms.index(SUBNET)
    ):
        raise MtlshareError(f"{SUBNET} trains on the sparse run's masks: list sparse before it")
    if len(set(seeds)) != len(seeds):
        raise MtlshareError(f"--seeds: {seeds} lists a seed twice")
    for seed in seeds:
        try:
            check_seed(seed, "--seeds")
        except ConfigError as e:
            raise MtlshareError(str(e)) from None
    check_jobs(jobs)
    if jobs > 1 and cfg.train.threads * jobs > (cores := available_cores()):
        raise MtlshareError(
            f"--jobs {jobs} with train.threads = {cfg.train.threads} would run "
            f"{jobs * cfg.train.threads} threads on {count(cores, 'cores')}; leave "
            "train.threads = 0 and the workers divide the cores between them"
        )


def row_config(cfg: Config, name: str, **extra: Any) -> Config:
    """The config of a row's runs: its mechanism and ``[compare] overrides`` (``single_subnet``
    also takes ``sparse``'s), then ``extra``. Single-task rows train with plain steps and fixed
    weights: a weighting that balances tasks has nothing to balance there (and the tasks'
    fixed ``weighting.weights`` are left out: they weigh tasks against each other, and would
    name tasks such a run does not have); a ``train.select_on`` naming a task becomes "mean",
    which for the one task of such a run is that task's dev score."""
    overrides = cfg.compare.overrides
    changes: dict[str, Any] = dict(cfg.compare.variants.get(name, {}))
    if name in (SINGLE, SUBNET) and cfg.weighting.kind in JOINT_ONLY:
        changes.update(
            {"weighting.kind": "fixed", "weighting.aggregator": "", "train.schedule": "alternate"}
        )
    if name in (SINGLE, SUBNET) and cfg.weighting.weights:
        changes["weighting.weights"] = {}
    if name in (SINGLE, SUBNET) and cfg.train.select_on != "mean":
        changes["train.select_on"] = "mean"
    if name == SUBNET:
        changes.update(overrides.get("sparse", {}))
    changes.update(overrides.get(name, {}))
    mechanism = {SINGLE: "hard", SUBNET: "sparse"}.get(name, changes.pop("mechanism", name))
    with _set_by_row(cfg, name):
        return cfg.replace(**{**changes, "mechanism": mechanism, **extra})


@contextmanager
def _set_by_row(cfg: Config, name: str) -> Iterator[None]:
    """A setting refused in row ``name``'s config names the ``[compare]`` table of the row
    that set it (``compare.overrides.soft: soft.weights: ...``): the line of the config file
    that sets the key for the other rows is not at fault, and naming the key alone would send
    the user to it."""
    try:
        yield
    except ConfigError as e:
        key = config_lines.key_of(str(e))
        if key is None:
            raise
        tables = [("overrides", name), ("overrides", "sparse"), ("variants", name)]
        for kind, row in tables if name == SUBNET else tables[::2]:  # the last applied first
            changes = getattr(cfg.compare, kind).get(row, {})
            if any(config_lines.covers(k, key) for k in changes):
                table = config_lines.dotted(("compare", kind, row))
                raise ConfigError(f"{table}: {e}") from None
        raise


def _plan(
    cfg: Config,
    folder: ComparisonFolder,
    rows: list[str],
    row_seeds: dict[str, list[int]],
    names: list[str],
) -> list[RunJob]:
    """Every run of the comparison, in order; ``single_subnet`` runs wait for their sparse run."""
    plan: list[RunJob] = []
    sparse_job: dict[int, int] = {}  # seed -> index of its sparse run
    for name in rows:
        for seed in row_seeds[name]:
            if name not in (SINGLE, SUBNET):
                if name == "sparse":
                    sparse_job[seed] = len(plan)
                run_cfg = row_config(cfg, name, seed=seed)
                plan.append(
                    RunJob(name, seed, None, run_cfg.to_dict(), folder.run_path(name, seed))
                )
                continue
            for task in names:  # every task trained alone
                extra: dict[str, Any] = {"tasks": [task], "seed": seed}
                after: tuple[int, ...] = ()
                if name == SUBNET:
                    if seed not in sparse_job:
                        raise MtlshareError(
                            f"{SUBNET} seed {seed} trains on the masks of sparse seed {seed}, "
                            "which compare.seeds_of leaves out"
                        )
                    extra["sparse.masks_from"] = str(folder.run_path("sparse", seed).resolve())
                    extra.update(_own_depth(cfg, task))
                    after = (sparse_job[seed],)
                run_cfg = row_config(cfg, name, **extra)
                where = folder.run_path(name, seed, task)
                plan.append(RunJob(name, seed, task, run_cfg.to_dict(), where, after))
    return plan


def _row_seeds(cfg: Config, name: str, seeds: list[int]) -> list[int]:
    """The seeds ``name`` runs with: ``compare.seeds_of[name]`` (a subset of ``seeds``) or all."""
    chosen = cfg.compare.seeds_of.get(name)
    if chosen is None:
        return seeds
    if name == SINGLE:
        raise MtlshareError("compare.seeds_of: single-task training runs with every seed")
    if not chosen or any(s not in seeds for s in chosen) or len(set(chosen)) != len(chosen):
        raise MtlshareError(
            f"compare.seeds_of.{name}: {chosen} must be distinct seeds among {seeds}"
        )
    return [s for s in seeds if s in chosen]


def _assemble(
    cfg: Config,
    folder: ComparisonFolder,
    rows: list[str],
    row_seeds: dict[str, list[int]],
    plan: list[RunJob],
    finished: list[dict[str, Any]],
    names: list[str],
    title: str | None,
) -> dict[str, Any]:
    """Fold the finished runs into ``comparison.json`` and ``comparison.md``."""
    by_row: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for job, result in zip(plan, finished, strict=True):
        by_row.setdefault((job.name, job.seed), []).append(result)
    single_of: dict[int, dict[str, Any]] = {}  # seed -> single-task results of that seed
    single: dict[str, Any] | None = None
    runs: list[dict[str, Any]] = []
    baselines: dict[str, dict[str, Any]] = {}
    per_seed_of: dict[str, list[dict[str, Any]]] = {}
    gated: dict[str, dict[str, Any]] = {}
    for name in rows:
        per_seed = []
        for seed in row_seeds[name]:
            got = by_row[(name, seed)]
            if name in (SINGLE, SUBNET):
                per_seed.append({**report.merge_single(got), "mechanism": name})
            else:  # a variant's row carries its own name
                per_seed.append(
                    {**got[0], "mechanism": name} if name != got[0]["mechanism"] else got[0]
                )
        merged = report.mean_over_seeds(per_seed)
        per_seed_of[name] = per_seed
        if name == SINGLE:
            single = merged
            single_of = dict(zip(row_seeds[SINGLE], per_seed, strict=True))
            folder.write_row_results(SINGLE, single)
            continue
        if row_seeds[name] != row_seeds[SINGLE]:  # fewer seeds: the baseline of those seeds
            baselines[name] = report.mean_over_seeds([single_of[s] for s in row_seeds[name]])
        if name == SUBNET:
            folder.write_row_results(SUBNET, merged)
        if all("gates" in r for r in per_seed):  # a mixture of experts: its gates on dev
            gated[name] = summarize([r["gates"] for r in per_seed], row_seeds[name])
        runs.append(merged)
    assert single is not None
    comparison = report.compare(single, runs, baselines)
    seeds = row_seeds[SINGLE]
    comparison["seeds"] = seeds
    if baselines:
        comparison["seeds_of"] = {name: row_seeds[name] for name in baselines}
    comparison["overrides"] = cfg.compare.overrides
    if "sparse" in per_seed_of and len(names) >= 2:
        comparison["overlap_vs_gain"] = overlap_vs_gain(
            comparison["tasks"], per_seed_of["sparse"], per_seed_of.get("hard", [])
        )
    if gated:
        comparison["gates"] = gated
    title = title or cfg.compare.title or ""
    folder.write_comparison(comparison, comparison_markdown(comparison, title or None) + "\n")
    draw(folder.path / "dev_curves.png", write_dev_curves, folder.path, title=title)
    if gated:
        from mtlshare.sharing.gating.plots import plot_comparison_gates

        draw(folder.file(folder.GATES), plot_comparison_gates, gated, folder.file(folder.GATES))
    return comparison


def comparison_markdown(comparison: dict[str, Any], title: str | None = None) -> str:
    """``comparison.md``: the table of ``report.comparison_markdown``, with a sparse row the
    masks' overlap beside the gain of sparse over hard sharing, and with rows that mix experts
    through gates (their results hold ``"gates"``) the overlap of the tasks' gates."""
    pairs = comparison.get("overlap_vs_gain")
    extra = overlap_markdown(pairs) if pairs else []
    extra += gates_markdown(comparison.get("gates", {}))
    return report.comparison_markdown(comparison, title, extra)
