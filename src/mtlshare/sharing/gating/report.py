"""What a mixture-of-experts run says about sharing, from its ``"gates"`` results::

    {"split": "dev", "positions": {task: n},
     "levels": [{"experts": [names], "tasks": {task: [mean weight per expert or None]},
                 "shared": [...]}]}   # "shared": the shared gate between PLE levels

Each task's mean gate weight per expert on dev (None at experts its gate does not mix). Which
expert is which is arbitrary across seeds (any permutation of the experts is the same model),
so what a comparison averages over seeds are quantities that do not depend on it: the overlap
of two tasks' gates, sum_e min(g_a(e), g_b(e)) (1: the same mixture, 0: disjoint experts), the
gated counterpart of the sparse masks' overlap ratio, and the weight a task puts on experts
that other tasks' gates mix too.
"""

from __future__ import annotations

from typing import Any

Weights = list[float | None]


def overlap(a: Weights, b: Weights) -> float:
    """sum_e min(a_e, b_e) of two gates' mean weights over the same experts (None: 0)."""
    return sum(min(x or 0.0, y or 0.0) for x, y in zip(a, b, strict=True))


def shared_experts(level: dict[str, Any]) -> list[int]:
    """The experts of a level that two or more tasks' gates mix."""
    rows = [w for w in level["tasks"].values() if w is not None]
    n = len(level["experts"])
    return [e for e in range(n) if sum(row[e] is not None for row in rows) >= 2]


def weight_on_shared(level: dict[str, Any], task: str) -> float:
    """How much of ``task``'s gate goes to experts that other tasks' gates mix too (MMoE: 1)."""
    row = level["tasks"][task]
    return sum(row[e] or 0.0 for e in shared_experts(level)) if row is not None else 0.0


def summarize(runs: list[dict[str, Any]], seeds: list[Any]) -> dict[str, Any]:
    """The ``"gates"`` results of one mechanism's runs (one per seed, ``seeds``) as a
    comparison keeps them: per level, every pair of tasks' gate overlap and every task's weight
    on shared experts (means over seeds and the values seed by seed), and the runs."""
    levels = []
    for i in range(len(runs[0]["levels"])):
        per_seed = [r["levels"][i] for r in runs]
        names = [t for t in per_seed[0]["tasks"] if all(lv["tasks"][t] for lv in per_seed)]
        pairs = []
        for j, a in enumerate(names):
            for b in names[j + 1 :]:
                values = [overlap(lv["tasks"][a], lv["tasks"][b]) for lv in per_seed]
                pairs.append({"tasks": [a, b], "overlap": _mean(values), "seeds": values})
        on_shared = {}
        for t in names:
            values = [weight_on_shared(lv, t) for lv in per_seed]
            on_shared[t] = {"weight": _mean(values), "seeds": values}
        levels.append({"pairs": pairs, "on_shared": on_shared})
    return {"levels": levels, "seeds": seeds, "runs": runs}


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def gates_markdown(summaries: dict[str, dict[str, Any]]) -> list[str]:
    """Lines of a table of the gated rows of a comparison (``summarize`` per mechanism)."""
    if not summaries:
        return []
    first = next(iter(summaries.values()))["levels"][0]
    pairs = [" & ".join(p["tasks"]) for p in first["pairs"]]
    tasks = list(first["on_shared"])
    header = ["mechanism", "level", *(f"overlap {p}" for p in pairs)]
    header += [f"{t} on shared" for t in tasks]
    lines = [
        "",
        "| " + " | ".join(_cell(h) for h in header) + " |",
        "|---|---:|" + "|".join(["---:"] * (len(header) - 2)) + "|",
    ]
    for name, summary in summaries.items():
        for i, level in enumerate(summary["levels"], start=1):
            cells = [name, str(i)]
            cells += [f"{p['overlap']:.3f}" for p in level["pairs"]]
            cells += [f"{level['on_shared'][t]['weight']:.3f}" for t in tasks]
            lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return [
        *lines,
        "",
        "Gates on dev, means over seeds: the overlap of two tasks' mean gate weights "
        "(sum over experts of the smaller weight; 1 = the same mixture of experts, 0 = "
        "disjoint experts) and the weight each task's gate puts on experts that other tasks' "
        "gates mix too (1 for MMoE, where every expert is shared). gates.png shows every "
        "seed's weights.",
    ]


def _cell(text: str) -> str:
    return text.replace("|", "\\|")
