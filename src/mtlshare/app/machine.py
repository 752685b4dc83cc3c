"""Where a run's results were computed, for ``results.json``: a tagger trained again on another
CPU need not repeat to the bit (other kernels, other float sums; over tens of epochs the scores
drift apart by tenths of a point), so a result says which machine gave it."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

CPUINFO = Path("/proc/cpuinfo")


def cpu_name(cpuinfo: Path = CPUINFO) -> str:
    """The CPU's model name (Linux's ``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine(device: torch.device) -> dict[str, Any]:
    """The machine of the command that ended a run (a run resumed elsewhere trained its first
    epochs on another): the CPU, its cores, the torch threads the run used, the device it
    trained on (a GPU by name), and the versions of torch, Python and mtlshare."""
    out: dict[str, Any] = {
        "cpu": cpu_name(),
        "cores": os.cpu_count() or 0,
        "torch_threads": torch.get_num_threads(),
        "device": device.type,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "mtlshare": _version(),
    }
    if device.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name(device)
    return out


def _version() -> str:
    """mtlshare's version as installed (read from its metadata, not from the package above this
    module); ``unknown`` where it runs from a source tree it was not installed from."""
    try:
        return metadata.version("mtlshare")
    except metadata.PackageNotFoundError:
        return "unknown"
