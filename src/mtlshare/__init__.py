"""mtlshare: multi-task learning by parameter sharing, every mechanism behind one interface."""

__version__ = "0.1.0"
