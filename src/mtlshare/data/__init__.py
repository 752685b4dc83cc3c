"""Data sources register themselves on import."""

from mtlshare.data import synthetic  # noqa: F401
