"""Tether: a console for code that runs on a remote cluster node."""

__version__ = "0.1.0"
