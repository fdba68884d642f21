"""Input-dependent layer-skipping gates plug in here; they arrive with their own issue."""
