"""Run a toy search (tests/toy_search.py) in its own process, for the kill tests.

python tests/run_toy_search.py SAVE ITERATIONS [--resume] [--delay S]
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nas.plugins import load_plugins  # noqa: E402

if __name__ == "__main__":
    load_plugins()
    from tests.toy_search import toy_config, toy_search

    p = argparse.ArgumentParser()
    p.add_argument("save")
    p.add_argument("iterations", type=int)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--delay", type=float, default=0.0)
    a = p.parse_args()
    cfg = toy_config(a.save, iterations=a.iterations, resume=a.save if a.resume else None)
    toy_search(cfg, delay=a.delay, log=print).run()
