"""Sync: a mirror of the local workspace on the node (see tui/sync/engine.py)."""
