"""Debugging: a Debug Adapter Protocol client for the console, and VS Code launch.json for the editor."""
