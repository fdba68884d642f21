"""Choose networks from a search: ``python post_search.py --expr RUN_DIR -n 3 --prefer trade-off``.

python post_search.py --expr results/search --prefer macs -n 5 --save_stats_csv
python post_search.py --expr results/search/iter_10.stats --prefer "top1#80+macs#150"
"""

import argparse
import sys

from nas.cli import run_cli
from nas.config import parse_config
from nas.post_search import PostSearchConfig, post_search


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="post_search.py", description="Choose networks from an msunas.py archive and write them out."
    )
    post_search(parse_config(PostSearchConfig, argv, parser))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
