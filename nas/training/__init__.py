"""Training: the trainers a search runs on each candidate (a registry of components)."""
