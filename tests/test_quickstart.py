"""scripts/quickstart.py: a re-run re-uses the networks an earlier run chose (and fine-tuned)."""

import importlib.util
import json
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "quickstart", Path(__file__).resolve().parents[1] / "scripts" / "quickstart.py"
)
quickstart = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(quickstart)
earlier_choices = quickstart.earlier_choices


def write_choice(final: Path, i: int, run: str = "results/quickstart/search/iter_4.stats", **over) -> Path:
    folder = final / f"net-trade-off_{i}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "net.subnet").write_text("{}")
    (folder / "ckpt.pth").write_bytes(b"x")
    choice = {"prefer": "trade-off", "index": i, "run": run, **over}
    (folder / "net.stats").write_text(json.dumps({"id": f"id{i}", "choice": choice}))
    return folder


def test_complete_earlier_choices_are_reused(tmp_path):
    final = tmp_path / "search" / "final"
    folders = [str(write_choice(final, i).resolve()) for i in range(3)]  # absolute, as post_search's
    # the run directory may have moved since (a copy): the stats file is matched by its name
    assert earlier_choices(str(final), str(tmp_path / "search" / "iter_4.stats"), 3, "trade-off") == folders


def test_incomplete_or_other_choices_are_chosen_again(tmp_path):
    stats = str(tmp_path / "search" / "iter_4.stats")
    final = tmp_path / "a"
    write_choice(final, 0)
    write_choice(final, 1)
    assert earlier_choices(str(final), stats, 3, "trade-off") is None  # the third is missing
    write_choice(final, 2)
    (final / "net-trade-off_2" / "ckpt.pth").unlink()  # post-search stopped before its weights
    assert earlier_choices(str(final), stats, 3, "trade-off") is None
    final = tmp_path / "b"
    for i in range(3):
        write_choice(final, i, run="results/quickstart/search/iter_3.stats")  # an earlier iteration
    assert earlier_choices(str(final), stats, 3, "trade-off") is None
    final = tmp_path / "c"
    for i in range(3):
        write_choice(final, i)
    (final / "net-trade-off_1" / "net.stats").write_text("not json")
    assert earlier_choices(str(final), stats, 3, "trade-off") is None
    assert earlier_choices(str(tmp_path / "nowhere"), stats, 3, "trade-off") is None
