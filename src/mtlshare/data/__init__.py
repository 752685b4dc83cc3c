"""Data sources and their codecs register themselves on import."""

from mtlshare.data import daily, daily_windows, synthetic, tagging, windows_codec  # noqa: F401
