"""docs/data.md's table of ``data.embed`` against one-hot inputs is what the benchmark's kept output
(``docs/results/table_embed/``, ``python benchmarks/table_embed.py --json``) says."""

from __future__ import annotations

import json
from pathlib import Path

from md_tables import table

ROOT = Path(__file__).resolve().parents[1]
KEPT = ROOT / "docs" / "results" / "table_embed"


def test_the_data_page_table_is_the_kept_benchmark() -> None:
    one, five = (json.loads((KEPT / f"epochs-{n}.json").read_text()) for n in (1, 5))
    assert one["args"]["epochs"] == 1 and five["args"]["epochs"] == 5
    assert one["args"]["rows"] == five["args"]["rows"] == 100_000
    assert one["args"]["users"] == five["args"]["users"] == 5_000
    rows = table((ROOT / "docs" / "data.md").read_text(encoding="utf-8"), "| `user` read as")
    for name, key in (
        ("one-hot (5,002 inputs)", "one-hot"),
        ("`embed` 16 (3 inputs, 18 into the trunk)", "embed 16"),
    ):
        a, b = one["runs"][key], five["runs"][key]
        assert rows[name] == [
            f"{a['peak_mib']:,.0f} MiB",
            f"{a['wall_seconds']:.1f} s",
            f"{a['spend_mae']:.2f}",
            f"{b['spend_mae']:.2f}",
            f"{b['churn_accuracy']:.4f}",
        ], name
    hot, emb = one["runs"]["one-hot"], one["runs"]["embed 16"]
    text = (ROOT / "docs" / "data.md").read_text(encoding="utf-8")
    assert f"(`ratio={hot['peak_mib'] / emb['peak_mib']:.2f}`)" in text
    assert f"(`time_ratio={hot['wall_seconds'] / emb['wall_seconds']:.2f}`)" in text
    assert (KEPT / "epochs-1.txt").read_text().splitlines()[-1] == (
        f"ratio={hot['peak_mib'] / emb['peak_mib']:.2f}"
    )
