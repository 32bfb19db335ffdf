"""make bench for this checkout and an earlier commit, taking turns, and each run's figures as ratios.

    python -m bench.ab d0082b1 [--rounds 3]     # about 11 minutes a round

The machines are shared and their speed moves by a third between hours, so two commits are only
compared within one run of this: the commit's files are exported (git archive) and given this
checkout's model files (so both serve the same network; ``--their-model`` keeps the commit's), and
``python -m bench`` runs from each tree in the order old, new, new, old, round after round: each
round makes two pairs, its first old and new runs and its second. A pair's figure is new / old
images per second (and for light load each side's p50 latency); the median of the pairs is what
a comparison should quote (docs/benchmarks.md). Every run's own result is kept in ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.commits import exported
from model.shipped import SHIPPED_MODEL
from stack import processes

# make bench's runs compared by images per second, with the names bench/__main__.py reports them by.
ROWS = {
    "single": "single images, poll",
    "single_wait": "single images, ?wait=",
    "batch": "batches of 256",
    "requests_single": "requests multipart, 32 clients",
    "requests_batch": "requests multipart 256",
    "triton_batch": "tritonclient, 64 per request",
    "other_single": "other backend, single ?wait=",
    "other_batch": "other backend, batches",
}
LATENCY_ROWS = {"light": "light load p50 ms, poll", "light_wait": "light load p50 ms, ?wait="}
ORDER = ("old", "new", "new", "old")  # a round: whatever drifts during it weighs on both sides alike


def compared(old: list[dict], new: list[dict]) -> dict:
    """Per row, each pair's new/old images per second and their median; per light-load row, each
    side's p50s. ``old`` and ``new`` are make bench results, the i-th of each forming pair i."""
    pairs = list(zip(old, new, strict=True))
    ratios = {
        row: [round(n[row]["images_per_s"] / o[row]["images_per_s"], 3) for o, n in pairs]
        for row in ROWS
        if all(row in o and row in n and o[row]["images_per_s"] for o, n in pairs)
    }
    return {
        "ratios": ratios,
        "medians": {row: round(statistics.median(values), 3) for row, values in ratios.items()},
        "p50_ms": {
            row: {side: [r[row]["latency_ms"]["p50"] for r in runs] for side, runs in (("old", old), ("new", new))}
            for row in LATENCY_ROWS
        },
    }


def report(ref: str, result: dict) -> None:
    pairs = len(next(iter(result["ratios"].values()), []))
    print(f"\nthis checkout / {ref}, images per second, {pairs} pairs (rounds of old, new, new, old), then the median")
    for row, values in result["ratios"].items():
        figures = " ".join(f"{v:5.2f}" for v in values)
        print(f"  {ROWS[row]:<34} {figures}   median {result['medians'][row]:.2f}")
    for row, sides in result["p50_ms"].items():
        new, old = ([round(ms, 1) for ms in sides[side]] for side in ("new", "old"))
        print(f"  {LATENCY_ROWS[row]:<34} new {new}  old {old}")


def give_model(tree: Path) -> None:
    """This checkout's model files where ``tree`` keeps its own (if it has that folder): both serve one network."""
    shipped = SHIPPED_MODEL.relative_to(processes.ROOT)
    if not (tree / shipped).parent.is_dir():
        print(f"{tree} keeps no model in {shipped.parent}: it serves its own", file=sys.stderr)
        return
    for suffix in (".keras", ".json", ".tflite"):
        shutil.copy(SHIPPED_MODEL.with_suffix(suffix), tree / shipped.with_suffix(suffix))


def run_bench(tree: Path, out: Path) -> dict:
    """One make bench run of the code in ``tree``; its result."""
    env = os.environ | {"PYTHONPATH": str(tree)}
    subprocess.run([sys.executable, "-m", "bench", "--out", str(out)], cwd=tree, env=env, check=True)
    return json.loads((out / "latest.json").read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ref", help="the commit to compare this checkout with")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of old, new, new, old (two pairs each)")
    parser.add_argument("--their-model", action="store_true", help="serve the commit's own model files")
    parser.add_argument("--out", type=Path, default=Path("bench-results/ab"))
    args = parser.parse_args(argv)
    out = args.out.resolve()  # each run works in its own tree
    with tempfile.TemporaryDirectory(prefix="bench-ab-") as scratch:
        old_tree = exported(args.ref, Path(scratch))
        if not args.their_model:
            give_model(old_tree)
        trees = {"old": old_tree, "new": processes.ROOT}
        runs: dict[str, list[dict]] = {"old": [], "new": []}  # in running order: old[i] and new[i] are pair i
        for round_ in range(args.rounds):
            for turn, side in enumerate(ORDER):
                print(f"round {round_ + 1} of {args.rounds}: {side} ({turn + 1} of 4)", file=sys.stderr, flush=True)
                runs[side].append(run_bench(trees[side], out / side))
    result = compared(runs["old"], runs["new"]) | {"ref": args.ref}
    (out / "ab.json").write_text(json.dumps(result, indent=2) + "\n")
    report(args.ref, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
