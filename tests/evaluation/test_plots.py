"""The comparison plot is written as a real PNG, atomically, without a display."""

from __future__ import annotations

import math

import pytest

from mtlshare.errors import MtlshareError
from mtlshare.evaluation.plots import plot_comparisons
from mtlshare.evaluation.report import compare, merge_single


def _result(mechanism, values):
    return {
        "mechanism": mechanism,
        "seed": 0,
        "tasks": {
            name: {"metric": "mse", "higher_is_better": False, "dev": v, "test": v}
            for name, v in values.items()
        },
        "params": {"total": 10, "shared": 5, "task_specific": 5, "counted": 10},
        "train_seconds": 1.0,
    }


def _comparison(t1, t2):
    single = merge_single([_result("single", {"t1": 0.5}), _result("single", {"t2": 0.5})])
    return compare(
        single, [_result("hard", {"t1": t1, "t2": t2}), _result("soft", {"t1": t2, "t2": t1})]
    )


def test_plot_writes_png(tmp_path):
    comparisons = {
        "relatedness 0.9": _comparison(0.4, 0.45),
        "relatedness 0.1": _comparison(0.7, 0.6),
    }
    out = plot_comparisons(comparisons, tmp_path / "figs" / "transfer.png", title="Transfer")
    assert out == tmp_path / "figs" / "transfer.png"
    data = out.read_bytes()
    assert data.startswith(b"\x89PNG")
    assert len(data) > 1000
    # the temporary file was moved into place, not left behind
    assert [p.name for p in out.parent.iterdir()] == ["transfer.png"]


def test_plot_accepts_str_path_and_overwrites(tmp_path):
    target = tmp_path / "one.png"
    target.write_bytes(b"old")
    out = plot_comparisons({"only": _comparison(0.4, 0.6)}, str(target))
    assert out.read_bytes().startswith(b"\x89PNG")


def test_plot_skips_infinite_changes(tmp_path):
    single = merge_single([_result("single", {"t1": 0.0})])
    cmp = compare(single, [_result("hard", {"t1": 0.1})])
    assert math.isinf(cmp["rows"][1]["tasks"]["t1"]["relative_change"])
    out = plot_comparisons({"zero baseline": cmp}, tmp_path / "inf.png")
    assert out.read_bytes().startswith(b"\x89PNG")


def test_plot_rejects_empty(tmp_path):
    with pytest.raises(MtlshareError):
        plot_comparisons({}, tmp_path / "none.png")
