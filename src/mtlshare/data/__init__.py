"""Data sources register themselves on import."""

from mtlshare.data import daily, daily_windows, synthetic, tagging  # noqa: F401
