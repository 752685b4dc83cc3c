"""mtlshare: multi-task learning by parameter sharing, every mechanism behind one interface.

The commands' Python API, imported on first use (so that ``import mtlshare`` stays light)::

    import mtlshare
    cfg = mtlshare.load_config("recipes/demo/demo.toml", ["mechanism=sparse"])
    results = mtlshare.run(cfg, "runs/sparse")            # one mechanism (mtlshare run)
    table = mtlshare.compare(cfg, ["single", "hard", "sparse"], "runs/cmp")  # (mtlshare compare)
    summary = mtlshare.add_task("runs/hard", cfg, "runs/added")  # (mtlshare add-task)
    run = mtlshare.load_run("runs/sparse")                 # a trained run, ready to predict
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_API = {
    "load_config": "mtlshare.config",
    "run": "mtlshare.app.run",
    "train": "mtlshare.app.run",
    "compare": "mtlshare.app.compare",
    "add_task": "mtlshare.app.add_task",
    "load_run": "mtlshare.app.predict",
    "evaluate": "mtlshare.app.predict",
}
__all__ = [*_API, "__version__"]


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'mtlshare' has no attribute {name!r}")
