"""Sparse sharing (Sun, Shao et al., "Learning Sparse Sharing Architectures for Multiple Tasks",
AAAI 2020), in one package:

- ``config.py``: the ``[sparse]`` settings;
- ``masks.py``: pure mask maths (global magnitude pruning, density, overlap ratio, bit packing);
- ``search.py``: iterative magnitude pruning (the paper's Algorithm 1) over a small protocol;
- ``driver.py``: the search inside the training loop (warm-up, rewind point, resume);
- ``model.py``: the mechanism, each task's forward pass through its mask;
- ``report.py`` and ``plots.py``: masks read back, overlaps, Figures 3 and 4, Table 7.
"""

from mtlshare.sharing.sparse.config import SparseConfig
from mtlshare.sharing.sparse.model import SparseSharing
from mtlshare.sharing.sparse.report import describe_kept, describe_masks, masks_from_state

__all__ = [
    "SparseConfig",
    "SparseSharing",
    "describe_kept",
    "describe_masks",
    "masks_from_state",
]
