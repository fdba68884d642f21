"""Flatness and OOD robustness (FlatNAS) plug in here; they arrive with their own issue."""
