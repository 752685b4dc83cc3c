"""What the forecasting study writes: ``forecasts.csv`` and ``forecast.md`` from its results."""

from __future__ import annotations

import csv
import io
from typing import Any

from mtlshare.errors import count
from mtlshare.evaluation.forecast import paired_difference

COLUMNS = ("date", "series", "method", "seed", "origin", "forecast", "actual", "lower", "upper")
SCARCITY_COLUMNS = ("date", "series", "method", "seed", "origin", "history", "forecast", "actual")


def rows_csv(table: list[dict[str, str]], columns: tuple[str, ...] = COLUMNS) -> str:
    """One row per forecast day, method (and seed) and origin; ``actual`` is empty on days
    without an observation, ``lower`` and ``upper`` (the prediction interval) without one."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(table)
    return out.getvalue()


def targets(results: dict[str, Any]) -> dict[str, Any]:
    """The study's headline comparisons (issue 18): the multi-task model's mean MAE against
    seasonal naive and AutoETS (and the other baselines that ran), and at how many test origins
    it beats the single-series network (seed-mean MAE). Each comparison also carries the paired
    difference of MAE over the origins, with a bootstrap interval (``paired``). A comparison
    whose methods did not run is left out."""
    methods = results["methods"]
    out: dict[str, Any] = {}
    if "multitask" not in methods:
        return out
    mt = methods["multitask"]

    def paired(other: str) -> dict[str, Any]:
        errors = [[o["mae"] for o in methods[m]["per_origin"]] for m in ("multitask", other)]
        return paired_difference(*errors)

    for other in ("seasonal_naive", "autoets", "naive", "autoarima", "prophet", "seasonal_mean"):
        if other in methods:
            out[f"multitask_vs_{other}"] = {
                "multitask_mae": mt["mae"],
                "other_mae": methods[other]["mae"],
                "met": mt["mae"] < methods[other]["mae"],
                "paired": paired(other),
            }
    if "single" in methods:
        vs_single = paired("single")  # its origins with the lower MAE are the wins
        wins, n = vs_single["lower_at"], len(mt["per_origin"])
        out["multitask_beats_single"] = {
            "origins": wins,
            "of": n,
            "met": wins > n / 2,
            "paired": vs_single,
        }
    return out


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(head) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|",
        *("| " + " | ".join(r) + " |" for r in rows),
    ]


def forecast_markdown(results: dict[str, Any]) -> str:
    """The summary over test origins, each origin's MAE, the chosen settings, the targets and
    the scarcity sweep, as Markdown tables."""
    methods = results["methods"]
    lines = _table(
        ["method", "MAE", "RMSE", "sMAPE %", "MASE"],
        [
            [n, f"{r['mae']:.1f}", f"{r['rmse']:.1f}", f"{r['smape']:.1f}", f"{r['mase']:.3f}"]
            for n, r in methods.items()
        ],
    )
    names = list(methods)
    per_origin = [
        [origin, *(f"{methods[n]['per_origin'][i]['mae']:.1f}" for n in names)]
        for i, origin in enumerate(results["origins"])
    ]
    lines += ["", "MAE at each test origin:", "", *_table(["origin", *names], per_origin)]
    chosen = results.get("selection", {}).get("chosen", {})
    if chosen and len(results["selection"]["candidates"]) > 1:
        neural = list(next(iter(chosen.values())))
        rows = [[o, *(chosen[o][m] for m in neural)] for o in results["origins"]]
        on = {"dev": "the target's dev days at each origin"}.get(
            results["selection"].get("select", "origins"), "the validation origins"
        )
        lines += ["", f"Settings chosen on {on}:", ""]
        lines += _table(["test origin", *neural], rows)
    lines += _interval_lines(results)
    lines += ["", *_target_lines(results.get("targets", {}))]
    scarcity = results.get("scarcity")
    if scarcity:
        lines += ["", f"Mean MAE of {results['target']} against its history length:", ""]
        head = ["history (days)", *scarcity["methods"]]
        rows = [
            [str(h), *(f"{scarcity['methods'][m][str(h)]['mae']:.1f}" for m in scarcity["methods"])]
            for h in scarcity["histories"]
        ]
        lines += _table(head, rows)
    for name, why in results["skipped"].items():
        lines.append(f"\n{name} skipped: {why}")
    return "\n".join(lines) + "\n"


def _interval_lines(results: dict[str, Any]) -> list[str]:
    level = results.get("interval")
    if not level:
        return []
    methods = results["methods"]
    rows = [
        [n, f"{100 * r['coverage']:.1f}", f"{r['width']:.1f}"]
        for n, r in methods.items()
        if "coverage" in r
    ]
    head = f"{100 * level:.0f}% prediction intervals (calibrated on the validation origins):"
    return ["", head, "", *_table(["method", "coverage %", "mean width"], rows)]


# Below this many origins a resampled mean takes a handful of values (3 of two origins, 10 of
# three): its percentiles would be printed as an interval that says nothing.
INTERVAL_ORIGINS = 5


def _target_lines(found: dict[str, Any]) -> list[str]:
    lines = []
    for key, fact in found.items():
        mark = "met" if fact["met"] else "missed"
        if key == "multitask_beats_single":
            line = f"- multitask beats single at {fact['origins']} of {fact['of']} origins: {mark}"
        else:
            other = key.removeprefix("multitask_vs_")
            line = (
                f"- multitask mean MAE {fact['multitask_mae']:.1f} vs {other} "
                f"{fact['other_mae']:.1f}: {mark}"
            )
        p = fact["paired"]  # ``targets`` gives every comparison one
        wins = (
            ""
            if key == "multitask_beats_single"
            else f"lower at {p['lower_at']} of {p['of']} origins; "
        )
        interval = (
            f"{100 * p['level']:.0f}% bootstrap interval over the origins "
            f"{p['low']:+.1f} to {p['high']:+.1f}"
            if p["of"] >= INTERVAL_ORIGINS
            else f"{count(p['of'], 'origins')} are too few for a bootstrap interval"
        )
        line += f" ({wins}MAE difference {p['difference']:+.1f}, {interval})"
        lines.append(line)
    return lines
