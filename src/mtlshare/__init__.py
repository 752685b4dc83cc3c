"""mtlshare: multi-task learning by parameter sharing, every mechanism behind one interface.

The commands' Python API, imported on first use (so that ``import mtlshare`` stays light).
``recipes/`` is in a clone of the repository; the installed package holds the demo's config as
``str(importlib.resources.files("mtlshare") / "demo.toml")`` (the file the recipe links to)::

    import mtlshare
    cfg = mtlshare.load_config("recipes/demo/demo.toml", ["mechanism=sparse"])
    results = mtlshare.run(cfg, "runs/sparse")            # what `mtlshare run` does
    table = mtlshare.compare(cfg, ["single", "hard", "sparse"], "runs/cmp")  # (mtlshare compare)
    run = mtlshare.load_run("runs/sparse")                 # a trained run, ready to predict
    # t3 added to a model trained on t1 and t2 (mtlshare add-task): t3 must be in its data
    cfg2 = mtlshare.load_config("recipes/demo/demo.toml", ["data.n_tasks=3", 'tasks=["t1", "t2"]'])
    mtlshare.run(cfg2, "runs/hard")
    cfg3 = mtlshare.load_config("recipes/demo/demo.toml", ["data.n_tasks=3", 'tasks=["t3"]'])
    summary = mtlshare.add_task("runs/hard", cfg3, "runs/added")
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what type checkers see; at run time each loads on first use (below)
    from mtlshare.app.add_task import add_task
    from mtlshare.app.compare import compare
    from mtlshare.app.experiments import run_experiment as run
    from mtlshare.app.predict import evaluate, load_run
    from mtlshare.app.run import train
    from mtlshare.config import load_config
    from mtlshare.tasks.metrics import register_metric

__version__ = "0.1.0"

_API = {
    "load_config": "mtlshare.config",
    "run": "mtlshare.app.experiments:run_experiment",
    "train": "mtlshare.app.run",
    "compare": "mtlshare.app.compare",
    "add_task": "mtlshare.app.add_task",
    "load_run": "mtlshare.app.predict",
    "evaluate": "mtlshare.app.predict",
    "register_metric": "mtlshare.tasks.metrics",
}
__all__ = [
    "__version__",
    "add_task",
    "compare",
    "evaluate",
    "load_config",
    "load_run",
    "register_metric",
    "run",
    "train",
]


def __getattr__(name: str) -> Any:
    if name in _API:
        module, _, attr = _API[name].partition(":")
        return getattr(importlib.import_module(module), attr or name)
    raise AttributeError(f"module 'mtlshare' has no attribute {name!r}")
