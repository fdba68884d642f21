"""Command-line tools; each also runs as ``python -m tools.<name>``."""
