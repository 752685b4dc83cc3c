"""What a sparse-sharing run reports: its masks read back from a checkpoint, a text description
(densities, overlaps), the overlap of every round (the paper's Figure 4), and, across a
comparison, each pair of tasks' mask overlap beside the gain of sparse over hard sharing (the
paper's Table 7)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor

from mtlshare.errors import ConfigError, plural
from mtlshare.evaluation.report import mean_over_seeds
from mtlshare.sharing.sparse.masks import (
    check_kept,
    density_within,
    depth_domain,
    layer_density,
    overlap_ratio,
    pairwise_overlap,
    tensor_json,
    unpack_masks,
)
from mtlshare.sharing.sparse.search import Candidate
from mtlshare.tasks.task import CLASS_METRICS

PACKED_PREFIX = "sparse_masks."


def masks_from_state(state: Mapping[str, Tensor], prefix: str = "") -> dict[str, dict[str, Tensor]]:
    """The masks ({task: {param: bool}}) stored bit-packed in a sparse model's state dict
    (``prefix``: what the state's keys start with, e.g. "model." in a training checkpoint)."""
    head = prefix + PACKED_PREFIX
    if head + "meta" not in state:
        raise ConfigError("no sparse-sharing masks in this checkpoint (was it a sparse run?)")
    packed = {
        k[len(head) :]: v for k, v in state.items() if k.startswith(head) and k != head + "meta"
    }
    masks = unpack_masks(packed, tensor_json(state[head + "meta"]))
    check_kept(masks)
    return masks


def mask_summary(
    masks: Mapping[str, Mapping[str, Tensor]],
    domains: Mapping[str, Mapping[str, Tensor] | None],
) -> dict[str, Any]:
    """What ``results.json``'s ``sparse`` block says of the masks ({task: {param: bool}}):
    each task's density within its ``domains`` entry (the weights it reads; ``None``: every
    prunable weight), the overlap ratio (Eq. 4), the pairwise overlaps and each tensor's
    density per task."""
    names = list(masks)
    return {
        "density": {t: density_within(masks[t], domains.get(t)) for t in names},
        "overlap_ratio": overlap_ratio([masks[t] for t in names]),
        "pairwise_overlap": pairwise_overlap(masks),
        "layer_density": {t: layer_density(masks[t]) for t in names},
    }


def describe_masks(
    masks: Mapping[str, Mapping[str, Tensor]], depths: Mapping[str, int] | None = None
) -> str:
    """A text report: density per task (of the weights it reads, with per-task ``depths``; of
    every prunable weight without), per tensor, overlap ratio, pairwise overlaps."""
    depths = depths or {}
    domains = {t: depth_domain(masks[t], depths[t]) if t in depths else None for t in masks}
    return describe_summary(mask_summary(masks, domains))


def describe_summary(summary: Mapping[str, Any]) -> str:
    """``describe_masks``'s report from a ``mask_summary`` (a finished run's ``results.json``
    ``sparse`` block, when its checkpoints were not kept)."""
    names = list(summary["density"])
    lines = ["density per task:"]
    lines += [f"  {t:12s} {summary['density'][t]:.4f}" for t in names]
    lines.append("density per tensor:")
    layers = summary["layer_density"]
    lines.append("  " + " " * 28 + "".join(f"{t:>12s}" for t in names))
    for p in layers[names[0]]:
        lines.append(f"  {p:28s}" + "".join(f"{layers[t][p]:12.4f}" for t in names))
    lines.append(f"overlap ratio of all masks (Eq. 4): {summary['overlap_ratio']:.4f}")
    pair = summary["pairwise_overlap"]
    lines.append("pairwise overlap:")
    lines.append("  " + " " * 12 + "".join(f"{t:>12s}" for t in names))
    lines += ["  " + f"{a:12s}" + "".join(f"{pair[a][b]:12.4f}" for b in names) for a in names]
    return "\n".join(lines)


def describe_kept(results: Mapping[str, Any], where: str) -> str:
    """``describe_summary`` of a finished run's ``results`` (its ``sparse`` block: in
    ``results.json``, or an added task's ``add_task.json``), for a run whose checkpoints were
    not kept; a block that is missing or not one ``mask_summary`` wrote is a ``ConfigError``
    naming ``where``."""
    block = results.get("sparse")
    try:
        if not isinstance(block, Mapping) or not block.get("density"):
            raise KeyError("sparse")
        return describe_summary(block)
    except (KeyError, TypeError, ValueError, AttributeError, StopIteration) as e:
        raise ConfigError(
            f"{where}: no densities and overlaps of masks to read ({type(e).__name__}: {e}); "
            "not the results of a sparse-sharing run"
        ) from None


def rounds_overlap(candidates: list[Candidate], names: list[str]) -> list[dict[str, Any]]:
    """Per round reached by every task: mean density, overlap ratio of the tasks' masks at that
    round, and mean dev score (the paper's Figure 4)."""
    out = []
    by_round: dict[int, dict[str, Candidate]] = {}
    for c in candidates:
        by_round.setdefault(c.round, {})[c.task] = c
    for r in sorted(by_round):
        row = by_round[r]
        if set(row) != set(names):
            continue
        out.append(
            {
                "round": r,
                "density": sum(c.density for c in row.values()) / len(row),
                "overlap_ratio": overlap_ratio([row[t].mask for t in names]),
                "mean_dev_score": sum(c.score for c in row.values()) / len(row),
            }
        )
    return out


def _by_seed(runs: list[dict[str, Any]], what: str) -> dict[Any, dict[str, Any]]:
    """``runs`` (one result per seed) keyed by their seed; two runs of one seed are refused."""
    out = {run["seed"]: run for run in runs}
    if len(out) != len(runs):
        raise ValueError(f"overlap_vs_gain: {what} lists a seed twice: {[r['seed'] for r in runs]}")
    return out


def _one_scale(a: str, b: str, run: dict[str, Any]) -> bool:
    """Whether tasks ``a`` and ``b`` of ``run`` are scored on one scale (the same metric, or
    two of the library's class metrics, fractions from 0 to 1: the paper's Table 7 pairs accuracy
    with F1), so that their test
    differences can be averaged; MSE with accuracy cannot."""
    metrics = {run["tasks"][t].get("metric") for t in (a, b)}
    return len(metrics) == 1 or metrics <= set(CLASS_METRICS)


def _gain(a: str, b: str, sparse: dict[str, Any], hard: dict[str, Any]) -> float:
    """Mean over tasks ``a`` and ``b`` of sparse minus hard sharing's test value (results
    merged over the same seeds by ``mean_over_seeds``), signed so that positive = sparse
    better."""
    diffs = []
    for task in (a, b):
        sign = 1.0 if sparse["tasks"][task]["higher_is_better"] else -1.0
        diffs.append(sign * (sparse["tasks"][task]["test"] - hard["tasks"][task]["test"]))
    return sum(diffs) / 2


def overlap_vs_gain(
    names: list[str], sparse_runs: list[dict[str, Any]], hard_runs: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Per pair of ``names`` (tasks), the overlap ratio of their sparse masks (mean over
    ``sparse_runs``, one result per seed) and the gain of sparse over hard sharing
    (``hard_runs``, one result per seed): the mean over the pair's two tasks of the signed test
    difference (positive = sparse better), as in Table 7 of the Sparse Sharing paper, over the
    seeds both ran, each row's mean over those seeds. When the two ran different seeds
    (``compare.seeds_of``) the seeds both ran are listed in the pair's ``seeds``; the gain is
    None without hard runs or with no seed in common, and None with ``unlike_metrics`` when
    the two tasks' metrics do not share a scale (MSE and accuracy: their differences do not
    average)."""
    mine, theirs = _by_seed(sparse_runs, "sparse sharing"), _by_seed(hard_runs, "hard sharing")
    seeds = [k for k in mine if k in theirs]
    # each row's mean over the seeds both ran, as the comparison table means them
    paired = [mean_over_seeds([runs[k] for k in seeds]) for runs in (mine, theirs)] if seeds else []
    out = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            ratios = [float(r["sparse"]["pairwise_overlap"][a][b]) for r in sparse_runs]
            pair: dict[str, Any] = {"tasks": [a, b], "overlap": sum(ratios) / len(ratios)}
            comparable = _one_scale(a, b, sparse_runs[0])
            pair["gain"] = _gain(a, b, *paired) if seeds and comparable else None
            if not comparable:
                pair["unlike_metrics"] = True
            if seeds and set(seeds) != set(mine) | set(theirs):
                pair["seeds"] = seeds
            out.append(pair)
    return out


def overlap_markdown(pairs: list[dict[str, Any]]) -> list[str]:
    """Lines of the overlap-vs-gain table (``overlap_vs_gain``) and its legend."""
    lines = [
        "",
        "| task pair | mask overlap ratio | sparse − hard (test, mean of the pair) |",
        "|---|---:|---:|",
    ]
    for pair in pairs:
        gain = "-" if pair["gain"] is None else f"{pair['gain']:+.4f}"
        names = " & ".join(pair["tasks"]).replace("|", "\\|")
        lines.append(f"| {names} | {pair['overlap']:.3f} | {gain} |")
    seeds = next((pair["seeds"] for pair in pairs if "seeds" in pair), None)
    under = (
        f" Sparse and hard sharing ran different seeds: the gain compares them under the "
        f"{plural('seeds', len(seeds))} both ran ({', '.join(str(s) for s in seeds)})."
        if seeds
        else ""
    )
    if any(pair.get("unlike_metrics") for pair in pairs):
        under += (
            " A pair shown '-' is scored on metrics of different scales (MSE and accuracy, "
            "say), whose differences do not average."
        )
    return [
        *lines,
        "",
        "Overlap ratio (the paper's Eq. 4) of the two tasks' selected masks; the gain is the "
        "mean over the pair of the test metric of sparse minus hard sharing, signed so that "
        "positive means sparse sharing is better (all tasks trained together)." + under,
    ]
