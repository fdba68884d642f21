"""Every test sees the default plug-ins registered, as every command-line tool does.

Under pytest-xdist (``make test`` runs two workers on two cores) each worker uses one torch
thread: two workers with two threads each would oversubscribe the cores and slow every test.
"""

import os

from nas.plugins import load_plugins

load_plugins()

if os.environ.get("PYTEST_XDIST_WORKER"):
    import torch

    torch.set_num_threads(1)
