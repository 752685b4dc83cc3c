"""Every mechanism registers itself in ``mtlshare.registry.MECHANISMS`` on import; the import
order below is the order in which the CLI, the demo and the comparison tables list them."""

# ruff: noqa: I001, F401
from mtlshare.sharing import hard
from mtlshare.sharing import conditioned
from mtlshare.sharing import soft
from mtlshare.sharing import cross_stitch
from mtlshare.sharing import hierarchical
from mtlshare.sharing import sparse
from mtlshare.sharing import adapters
from mtlshare.sharing import mmoe
from mtlshare.sharing import ple
