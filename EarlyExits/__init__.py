"""Early-exit trainers and metrics (EDANAS, NACHOS) plug in here; they arrive with their own issue."""
