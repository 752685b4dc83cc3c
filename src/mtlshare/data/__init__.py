"""Data sources register themselves on import."""

from mtlshare.data import daily, synthetic, tagging  # noqa: F401
