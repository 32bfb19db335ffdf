"""bench.ab: another commit's code exported beside this checkout, and two sets of make bench results as ratios."""

from __future__ import annotations

import subprocess

from bench import ab
from bench.commits import exported
from model.shipped import SHIPPED_MODEL
from stack import processes


def _result(images_per_s: dict[str, float], p50: float) -> dict:
    rows = {row: {"images_per_s": value} for row, value in images_per_s.items()}
    return rows | {row: {"latency_ms": {"p50": p50}} for row in ab.LATENCY_ROWS}


def test_each_pair_is_new_over_old_in_running_order_and_the_median_is_quoted():
    old = [_result({"single": 500, "batch": 2000}, 5.0), _result({"single": 400, "batch": 2500}, 6.0)]
    old.append(_result({"single": 500, "batch": 2000}, 5.0))
    new = [_result({"single": 550, "batch": 1900}, 4.0), _result({"single": 440, "batch": 2500}, 5.5)]
    new.append(_result({"single": 450, "batch": 2200}, 5.0))

    result = ab.compared(old, new)

    assert result["ratios"] == {"single": [1.1, 1.1, 0.9], "batch": [0.95, 1.0, 1.1]}
    assert result["medians"] == {"single": 1.1, "batch": 1.0}
    assert result["p50_ms"]["light"] == {"old": [5.0, 6.0, 5.0], "new": [4.0, 5.5, 5.0]}


def test_a_row_one_side_did_not_run_is_left_out_not_divided_by_zero():
    old = [_result({"single": 500, "batch": 0}, 5.0)]
    new = [_result({"single": 500, "triton_batch": 3000, "batch": 100}, 5.0)]
    assert ab.compared(old, new)["ratios"] == {"single": [1.0]}


def test_the_earlier_commit_is_exported_and_given_this_checkouts_model(tmp_path):
    tree = exported("HEAD", tmp_path)
    shipped = SHIPPED_MODEL.relative_to(processes.ROOT)
    (tree / shipped).write_bytes(b"an older model")

    ab.give_model(tree)

    committed = subprocess.run(["git", "show", "HEAD:stack/processes.py"], cwd=processes.ROOT, capture_output=True)
    assert (tree / "stack" / "processes.py").read_bytes() == committed.stdout
    for suffix in (".keras", ".json", ".tflite"):
        assert (tree / shipped.with_suffix(suffix)).read_bytes() == SHIPPED_MODEL.with_suffix(suffix).read_bytes()


def test_a_commit_without_the_model_folder_serves_its_own(tmp_path, capsys):
    ab.give_model(tmp_path)
    assert "serves its own" in capsys.readouterr().err
