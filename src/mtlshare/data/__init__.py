"""Data sources and their codecs register themselves on import."""

from mtlshare.data import (  # noqa: F401
    daily,
    daily_windows,
    synthetic,
    table,
    table_codec,
    tagging,
    windows_codec,
)
