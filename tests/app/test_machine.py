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
    info.write_text(  # as Linux writes it: "model" (a number) comes before "model name"
        "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\n"
        "model name\t: AMD EPYC 9B14\nprocessor\t: 1\nmodel name\t: AMD EPYC 9B14 (2)\n"
    )
    assert cpu_name(info) == "AMD EPYC 9B14"  # the first processor's


def test_without_cpuinfo_the_cpu_is_what_platform_knows(tmp_path):
    expected = platform.processor() or platform.machine() or "unknown"
    assert cpu_name(tmp_path / "absent") == expected
    (tmp_path / "empty").write_text("model name\t:\n")
    assert cpu_name(tmp_path / "empty") == expected
    assert cpu_name(tmp_path) == expected  # a folder: not readable as text either


def test_without_cpuinfo_the_processor_comes_before_the_machine(tmp_path, monkeypatch):
    monkeypatch.setattr(platform, "processor", lambda: "Intel64 Family 6 Model 85")
    monkeypatch.setattr(platform, "machine", lambda: "AMD64")
    assert cpu_name(tmp_path / "absent") == "Intel64 Family 6 Model 85"
    monkeypatch.setattr(platform, "processor", lambda: "")
    assert cpu_name(tmp_path / "absent") == "AMD64"


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


def test_the_device_is_its_type_and_only_cuda_is_named_by_its_gpu(monkeypatch):
    """``cpu:0`` is the CPU (its index says nothing of the machine); another device than CUDA
    (here torch's ``meta``) has no GPU name to ask for. Cores python cannot count are 0."""
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    m = machine(torch.device("cpu", 0))
    assert m["device"] == "cpu" and m["cores"] == 0 and "gpu" not in m
    m = machine(torch.device("meta"))
    assert m["device"] == "meta" and "gpu" not in m


def test_a_run_writes_its_machine_into_results_json(tmp_path):
    out = tmp_path / "run"
    args = ["run", DEMO, "--out", str(out), "--quiet", "train.epochs=1", "train.threads=1"]
    assert main(args) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["machine"]["torch_threads"] == 1  # the run's, not the caller's
    assert results["machine"]["cpu"] == cpu_name() and results["machine"]["device"] == "cpu"
