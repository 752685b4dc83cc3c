"""The lower bounds pyproject.toml declares are the versions constraints-min.txt pins, the ones
the tests were run on, so that a floor raised or lowered in one file without the other shows."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]

# kept at constraints.txt's versions in constraints-min.txt: what they report depends on their
# version, and tests/test_lint.py asserts on what they report
NOT_AT_FLOOR = {"ruff", "mypy"}


def declared_floors() -> dict[str, Version]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    lines = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        lines.extend(extra)
    floors: dict[str, Version] = {}
    for line in lines:
        req = Requirement(line)
        (spec,) = req.specifier  # one bound per dependency: its floor
        assert spec.operator == ">=", line
        name = canonicalize_name(req.name)
        assert floors.setdefault(name, Version(spec.version)) == Version(spec.version), (
            f"{name}: two floors in pyproject.toml"
        )
    return floors


def pins(path: Path) -> dict[str, Version]:
    pinned: dict[str, Version] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pinned[canonicalize_name(name)] = Version(version)
    return pinned


def test_constraints_min_pins_every_declared_floor():
    floors = declared_floors()
    minimum = pins(ROOT / "constraints-min.txt")
    current = pins(ROOT / "constraints.txt")
    assert {"torch", "numpy", "matplotlib", "torchjd"} <= floors.keys()
    for name, floor in sorted(floors.items()):
        assert name in minimum, f"{name} is not pinned in constraints-min.txt"
        if name in NOT_AT_FLOOR:
            assert minimum[name] == current[name], name
        else:
            assert minimum[name] == floor, f"{name}: floor {floor}, constraints-min {minimum[name]}"
