"""``results.json`` names the machine of the command that ended the run: the CPU (read from
``/proc/cpuinfo``), its cores, the run's torch threads, the device, and the versions."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import torch

import mtlshare
from mtlshare.app.machine import cpu_name, machine
from mtlshare.cli import main

ROOT = Path(__file__).resolve().parents[2]
DEMO = str(ROOT / "recipes" / "demo" / "demo.toml")


def test_the_cpu_is_the_model_name_of_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text(
        "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9B14\n"
        "processor\t: 1\nmodel name\t: AMD EPYC 9B14\n"
    )
    assert cpu_name(info) == "AMD EPYC 9B14"


def test_without_cpuinfo_the_cpu_is_what_platform_knows(tmp_path):
    expected = platform.processor() or platform.machine() or "unknown"
    assert cpu_name(tmp_path / "absent") == expected
    (tmp_path / "empty").write_text("model name\t:\n")
    assert cpu_name(tmp_path / "empty") == expected


def test_machine_names_the_versions_and_threads():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        m = machine(torch.device("cpu"))
    finally:
        torch.set_num_threads(before)
    assert m == {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "torch_threads": 1,
        "device": "cpu",
        "torch": torch.__version__,
        "python": platform.python_version(),
        "mtlshare": mtlshare.__version__,
    }


def test_a_run_writes_its_machine_into_results_json(tmp_path):
    out = tmp_path / "run"
    args = ["run", DEMO, "--out", str(out), "--quiet", "train.epochs=1", "train.threads=1"]
    assert main(args) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["machine"]["torch_threads"] == 1  # the run's, not the caller's
    assert results["machine"]["cpu"] == cpu_name() and results["machine"]["device"] == "cpu"
