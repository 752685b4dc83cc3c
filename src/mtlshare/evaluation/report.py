"""Deltas against single-task training, negative-transfer flags and a Markdown report.

Every function here works on plain results dicts, the content of a run's ``results.json``::

    {"mechanism": "hard", "seed": 0,
     "tasks": {name: {"metric": "mse", "higher_is_better": False, "dev": 0.31, "test": 0.33}},
     "params": {"total": int, "shared": int, "task_specific": int, "counted": int},
     "train_seconds": float}

Single-task baselines come as one such dict per task; :func:`merge_single` folds them into one.
:func:`compare` then builds the structure written as ``comparison.json`` and
:func:`comparison_markdown` renders it as a table.

Negative transfer (a task doing worse when trained jointly than alone) is the effect studied by
Standley et al., "Which Tasks Should Be Learned Together in Multi-task Learning?" (ICML 2020).
"""

from __future__ import annotations

import math
from typing import Any

from mtlshare.errors import MtlshareError, plural

BASELINE = "single"
"""Mechanism name of the single-task baseline; always the first row of a comparison."""


def relative_change(value: float, baseline: float, higher_is_better: bool) -> float:
    """Signed relative improvement of ``value`` over ``baseline``; positive means better.

    ``(value - baseline) / |baseline|`` when higher is better, ``(baseline - value) / |baseline|``
    when lower is better, so a 10% lower MSE and a 10% higher accuracy are both ``+0.1``.

    A zero baseline has no scale: the result is ``0.0`` when ``value`` equals it, otherwise
    ``+inf`` if ``value`` is better and ``-inf`` if it is worse. NaN in either input gives NaN.
    """
    gain = value - baseline if higher_is_better else baseline - value
    if baseline == 0:
        if gain == 0:
            return 0.0
        return math.copysign(math.inf, gain) if not math.isnan(gain) else math.nan
    return gain / abs(baseline)


def mean_change(changes: list[float]) -> float:
    """The mean relative change over tasks, leaving out those whose single-task score is 0
    (``±inf``: no scale, and one would make the mean infinite whatever the other tasks did);
    ``±inf`` when every task's is; 0 with no task."""
    finite = [c for c in changes if not math.isinf(c)]
    if finite:
        return sum(finite) / len(finite)
    return sum(changes) / len(changes) if changes else 0.0


def is_worse(value: float, baseline: float, higher_is_better: bool) -> bool:
    """True when ``value`` is strictly worse than ``baseline``; a tie is not worse."""
    return value < baseline if higher_is_better else value > baseline


def merge_single(results_per_task: list[dict[str, Any]]) -> dict[str, Any]:
    """Fold single-task results (one dict per task, one task each) into one results dict.

    ``params`` are summed key by key and ``train_seconds`` summed, since the baseline needs one
    model per task. ``seed`` is the shared seed, or the list of seeds when they differ. Raises
    :class:`MtlshareError` when a dict holds other than one task or a task appears twice.
    """
    if not results_per_task:
        raise MtlshareError("merge_single needs at least one single-task result")
    tasks: dict[str, dict[str, Any]] = {}
    params: dict[str, int] = {}
    seconds = 0.0
    seeds: list[Any] = []
    for result in results_per_task:
        names = list(result["tasks"])
        if len(names) != 1:
            raise MtlshareError(
                f"a single-task result must hold exactly one task, got {len(names)}: {names}"
            )
        name = names[0]
        if name in tasks:
            raise MtlshareError(f"task {name!r} appears in more than one single-task result")
        tasks[name] = dict(result["tasks"][name])
        for key, count in result.get("params", {}).items():
            params[key] = params.get(key, 0) + count
        seconds += float(result.get("train_seconds", 0.0))
        seeds.append(result.get("seed"))
    seed = seeds[0] if all(s == seeds[0] for s in seeds) else seeds
    return {
        "mechanism": BASELINE,
        "seed": seed,
        "tasks": tasks,
        "params": params,
        "train_seconds": seconds,
    }


def mean_over_seeds(results: list[dict[str, Any]]) -> dict[str, Any]:
    """One results dict from runs of the same mechanism under several seeds.

    Per task, ``dev`` and ``test`` become the means, ``dev_std`` / ``test_std`` the sample
    standard deviations (0 for one seed) and ``dev_seeds`` / ``test_seeds`` the values seed by
    seed, in the order of ``seeds``; ``train_seconds`` is the mean. ``params`` are the runs'
    counts when every seed has the same (the network does not depend on the seed); when they
    differ (masks found by a structure search: each seed keeps its own weights) they are the
    rounded means and ``params_seeds`` lists each seed's. A single run is returned with zero
    deviations.
    """
    if not results:
        raise MtlshareError("mean_over_seeds needs at least one run")
    first = results[0]
    tasks: dict[str, dict[str, Any]] = {}
    for name, info in first["tasks"].items():
        entry = dict(info)
        for split in ("dev", "test"):
            values = [float(r["tasks"][name][split]) for r in results]
            mean = sum(values) / len(values)
            var = (
                sum((v - mean) ** 2 for v in values) / (len(values) - 1) if len(values) > 1 else 0.0
            )
            entry[split] = mean
            entry[f"{split}_std"] = math.sqrt(var)
            entry[f"{split}_seeds"] = values
        tasks[name] = entry
    seconds = [float(r.get("train_seconds", 0.0)) for r in results]
    merged = {
        **first,
        "seed": [r.get("seed") for r in results] if len(results) > 1 else first.get("seed"),
        "seeds": [r.get("seed") for r in results],
        "tasks": tasks,
        "train_seconds": sum(seconds) / len(seconds),
    }
    per_seed = [dict(r.get("params", {})) for r in results]
    if any(p != per_seed[0] for p in per_seed):  # searched masks: each seed keeps its own
        keys = [k for k in per_seed[0] if all(k in p for p in per_seed)]
        merged["params"] = {k: round(sum(p[k] for p in per_seed) / len(per_seed)) for k in keys}
        merged["params_seeds"] = per_seed
    return merged


def _check_tasks(single: dict[str, Any], run: dict[str, Any]) -> None:
    """Raise unless ``run`` has exactly the baseline's tasks, measured with the same metrics."""
    mechanism = run.get("mechanism", "?")
    missing = [t for t in single["tasks"] if t not in run["tasks"]]
    extra = [t for t in run["tasks"] if t not in single["tasks"]]
    if missing or extra:
        raise MtlshareError(
            f"run {mechanism!r} does not match the single-task baseline: "
            f"missing tasks {missing}, tasks without a baseline {extra}"
        )
    for name, base in single["tasks"].items():
        got = run["tasks"][name]
        if (got["metric"], got["higher_is_better"]) != (base["metric"], base["higher_is_better"]):
            raise MtlshareError(
                f"run {mechanism!r} measures task {name!r} with {got['metric']!r} but the "
                f"baseline uses {base['metric']!r}"
            )


def _row(single: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
    """One comparison row: ``run`` task by task against the baseline."""
    tasks: dict[str, dict[str, Any]] = {}
    for name, base in single["tasks"].items():
        got = run["tasks"][name]
        hib = bool(base["higher_is_better"])
        test, ref = float(got["test"]), float(base["test"])
        tasks[name] = {
            "metric": base["metric"],
            "higher_is_better": hib,
            "test": test,
            "single": ref,
            "delta": test - ref,
            "relative_change": relative_change(test, ref, hib),
            "negative_transfer": is_worse(test, ref, hib),
        }
        if "test_std" in got:
            tasks[name]["test_std"] = float(got["test_std"])
        if "test_seeds" in got and "test_seeds" in base:
            mine = [float(v) for v in got["test_seeds"]]
            theirs = [float(v) for v in base["test_seeds"]]
            if len(mine) != len(theirs):
                raise MtlshareError(
                    f"run {run.get('mechanism', '?')!r} has {len(mine)} seeds for task {name!r} "
                    f"but the single-task baseline has {len(theirs)}"
                )
            tasks[name]["test_seeds"] = mine
            # paired by seed: how many seeds beat the baseline trained under the same seed
            tasks[name]["seeds_better"] = sum(
                is_worse(ref_v, v, hib) for v, ref_v in zip(mine, theirs, strict=True)
            )
    return {
        "mechanism": run["mechanism"],
        "seed": run.get("seed"),
        "tasks": tasks,
        "mean_relative_change": mean_change([t["relative_change"] for t in tasks.values()]),
        "params": dict(run.get("params", {})),
        **({"params_seeds": run["params_seeds"]} if "params_seeds" in run else {}),
        "train_seconds": float(run.get("train_seconds", 0.0)),
    }


def compare(
    single: dict[str, Any],
    runs: list[dict[str, Any]],
    baselines: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Compare each run with the single-task baseline; the result is ``comparison.json``.

    Returns ``{"baseline": "single", "tasks": [names], "metrics": {name: {"metric",
    "higher_is_better"}}, "rows": [...]}``. The first row is the baseline itself (every delta and
    relative change 0, no negative transfer), then one row per run in the given order. Each row
    holds, per task, ``test``, the baseline's ``single`` value, ``delta`` (raw ``test - single``),
    ``relative_change`` (see :func:`relative_change`) and ``negative_transfer`` (test strictly
    worse than single), plus ``mean_relative_change`` over tasks, ``params`` and ``train_seconds``.
    Runs averaged over several seeds (:func:`mean_over_seeds`) also carry, per task,
    ``test_seeds`` (the value of each seed) and ``seeds_better`` (in how many seeds the run
    beats the baseline of the same seed).

    ``baselines`` maps a mechanism run under fewer seeds than the baseline to single-task
    results under those same seeds (``mean_over_seeds`` of them): its row is compared with
    that, not with the mean over every seed.

    Infinite relative changes (zero baseline) are kept as floats; ``json.dump`` writes them as
    ``Infinity``. Raises :class:`MtlshareError` when a run's tasks differ from the baseline's.
    """
    baselines = baselines or {}
    for run in runs:
        _check_tasks(single, run)
    names = list(single["tasks"])
    return {
        "baseline": BASELINE,
        "tasks": names,
        "metrics": {
            name: {
                "metric": single["tasks"][name]["metric"],
                "higher_is_better": bool(single["tasks"][name]["higher_is_better"]),
            }
            for name in names
        },
        "rows": [_row(single, {**single, "mechanism": BASELINE})]
        + [_row(baselines.get(run["mechanism"], single), run) for run in runs],
    }


def format_metric(value: float) -> str:
    """A metric value with 4 significant digits: ``0.4123``, ``12.35``, ``1.235e+05``."""
    return f"{value:.4g}"


def format_percent(fraction: float) -> str:
    """A relative change as a signed percentage with one decimal: ``0.031`` -> ``+3.1%``; with
    two where one would show a change as none (``-0.0003`` -> ``-0.03%``: ``-0.0%``, flagged
    as negative transfer, read as a contradiction)."""
    if math.isnan(fraction):
        return "n/a"
    percent = fraction * 100
    if percent != 0 and round(percent, 1) == 0:
        return f"{percent:+.2f}%"
    return f"{percent:+.1f}%"


def _cell(text: str) -> str:
    """Escape the one character that would break a Markdown table cell."""
    return text.replace("|", "\\|")


def _legend(comparison: dict[str, Any]) -> str:
    """One line: each task's metric and direction, then what the percentages and NT mean."""
    parts = []
    for name in comparison["tasks"]:
        info = comparison["rows"][0]["tasks"][name]
        direction = "higher" if info["higher_is_better"] else "lower"
        parts.append(f"{_cell(name)}: {info['metric']}, {direction} is better")
    seeds = comparison.get("seeds") or []
    over = f"Test metrics are means ± std over {len(seeds)} seeds. " if len(seeds) > 1 else ""
    fewer = comparison.get("seeds_of") or {}
    if fewer:
        listed = "; ".join(
            f"{m}: {plural('seeds', len(s))} {', '.join(str(v) for v in s)}"
            for m, s in fewer.items()
        )
        over += (
            f"Rows run under fewer seeds ({listed}) are compared with single-task training "
            "under the same seeds. "
        )
    zero = any(
        math.isinf(t.get("relative_change", 0.0))
        for r in comparison["rows"]
        for t in r["tasks"].values()
    )
    if zero:
        over += (
            "A task whose single-task score is 0 has no relative change (±inf%) and is left out "
            "of the mean. "
        )
    varying = [str(r["mechanism"]) for r in comparison["rows"] if "params_seeds" in r]
    if varying:
        over += f"Parameter counts of {', '.join(varying)} are means over seeds. "
    return (
        over + "Metrics: " + "; ".join(parts) + ". Percentages are the change vs single-task "
        "training (positive = better); **NT** = negative transfer (test metric worse than "
        "single-task)."
    )


def _per_seed_table(comparison: dict[str, Any]) -> list[str]:
    """Lines of a seed-by-seed table (empty with one seed): each task's test value under every
    seed, and in how many seeds a mechanism beats single-task training of the same seed."""
    seeds = comparison.get("seeds") or []
    rows = comparison["rows"]
    if len(seeds) < 2 or not all("test_seeds" in t for r in rows for t in r["tasks"].values()):
        return []
    names = comparison["tasks"]
    lines = [
        "",
        f"Seed by seed (seeds {', '.join(str(s) for s in seeds)}); after each mechanism's "
        "values, in how many seeds it beats single-task training of the same seed:",
        "",
        "| mechanism | " + " | ".join(_cell(n) for n in names) + " | counted params |",
        "|---|" + "|".join(["---:"] * (len(names) + 1)) + "|",
    ]
    for row in rows:
        cells = [_cell(str(row["mechanism"]))]
        for name in names:
            task = row["tasks"][name]
            text = " / ".join(format_metric(v) for v in task["test_seeds"])
            if len(task["test_seeds"]) < len(seeds):
                text += (
                    f" ({plural('seeds', len(task['test_seeds']))} "
                    + ", ".join(
                        str(s) for s in comparison.get("seeds_of", {}).get(row["mechanism"], [])
                    )
                    + ")"
                )
            if row["mechanism"] != comparison["baseline"]:
                text += f" ({task['seeds_better']}/{len(task['test_seeds'])} better)"
            cells.append(text)
        counts = [p.get("counted") for p in row.get("params_seeds", [row.get("params", {})])]
        cells.append(" / ".join("-" if c is None else f"{c:,}" for c in counts))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def comparison_markdown(
    comparison: dict[str, Any], title: str | None = None, extra: list[str] | None = None
) -> str:
    """Render a :func:`compare` result as a Markdown table with a one-line legend below it.

    One row per mechanism. Each task column shows the test metric and its change vs single,
    e.g. ``0.412 (+3.1%)``, followed by ``**NT**`` on negative transfer (ASCII on purpose, so the
    table reads the same in a terminal). The baseline row shows bare values. Then the mean
    relative change, counted and total parameters, and training seconds; then ``extra``
    lines.
    """
    names = comparison["tasks"]
    header = ["mechanism", *(_cell(n) for n in names)]
    header += ["mean rel. change", "counted params", "total params", "seconds"]
    lines = []
    if title:
        lines += [f"## {title}", ""]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|")
    for row in comparison["rows"]:
        baseline = row["mechanism"] == comparison["baseline"]
        cells = [_cell(str(row["mechanism"]))]
        for name in names:
            task = row["tasks"][name]
            text = format_metric(task["test"])
            if task.get("test_std"):
                text += f" ± {task['test_std']:.2g}"
            if not baseline:
                text += f" ({format_percent(task['relative_change'])})"
            if task["negative_transfer"]:
                text += " **NT**"
            cells.append(text)
        params = row.get("params", {})
        cells += [
            "-" if baseline else format_percent(row["mean_relative_change"]),
            f"{params['counted']:,}" if "counted" in params else "-",
            f"{params['total']:,}" if "total" in params else "-",
            f"{row['train_seconds']:.1f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", _legend(comparison)]
    lines += _per_seed_table(comparison)
    lines += extra or []  # a mechanism's own tables (e.g. mask overlap against gain)
    return "\n".join(lines) + "\n"
