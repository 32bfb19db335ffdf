"""How well models read MNIST's test digits degraded as real scans and photos degrade handwriting.

    python -m model.evaluation robustness [--model FILE ...] [--limit N] [--jobs 2] [--seed 0]

One row per degradation of :mod:`model.rendering.degraded` (reduced to 8-16 pixels and enlarged,
blocky and blurry; strokes thickened and thinned; slanted; elastic distortion; low contrast;
salt specks; a canvas's thin even strokes), plus their mean. Each test digit (never a training
digit) is degraded, sent as a PNG file through :func:`preprocess` as the service reads it, and
read by each ``--model`` (default: the shipped one); an image preprocessing turns down counts as
a mistake. Deterministic: the same seed degrades every digit the same way. With several models,
the columns after the first show their difference from it.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model.evaluation.digits import CHUNK, _prepare_chunk
from model.rendering.degraded import DEGRADATIONS

MEAN = "mean"


@dataclass(frozen=True)
class Degraded:
    """One row's inputs: the network inputs of the degraded digits and which preprocessing turned down."""

    name: str
    inputs: np.ndarray  # (N, 28, 28) float32
    rejected: np.ndarray  # (N,) bool


def prepare(digits: np.ndarray, jobs: int = 2, seed: int = 0) -> list[Degraded]:
    """Degrade the uint8 (N, 28, 28) ``digits`` every way and preprocess them, in ``jobs`` processes."""
    suite = []
    # Spawned, not forked: the caller may hold TensorFlow, which does not survive a fork.
    with multiprocessing.get_context("spawn").Pool(jobs) as pool:
        for name in DEGRADATIONS:
            chunks = [(digits[i : i + CHUNK], name, i, seed) for i in range(0, len(digits), CHUNK)]
            parts = pool.map(_prepare_chunk, chunks)
            suite.append(Degraded(name, np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])))
    return suite


def accuracies(predictor, suite: list[Degraded], labels: np.ndarray) -> dict[str, float]:
    """Each row's share of digits read right (turned down counts as wrong), and their ``MEAN``."""
    scores = {}
    for row in suite:
        predicted = predictor.probabilities(row.inputs).argmax(axis=1)
        scores[row.name] = float(((predicted == labels) & ~row.rejected).mean())
    scores[MEAN] = statistics.fmean(scores.values())
    return scores


def table(names: list[str], columns: list[dict[str, float]], suite: list[Degraded]) -> str:
    """A Markdown table: a row per degradation and the mean, a column per model (later ones with the
    change from the first), and how many images preprocessing turned down."""
    widths = [max(16, len(name)) for name in names]
    header = "| degradation  | " + " | ".join(f"{name:>{w}}" for name, w in zip(names, widths, strict=True))
    lines = [header + " | rejected |", "|--------------|" + "|".join("-" * (w + 2) for w in widths) + "|----------|"]
    rejected = {row.name: int(row.rejected.sum()) for row in suite}
    for row in [*DEGRADATIONS, MEAN]:
        cells = [f"{columns[0][row] * 100:.2f} %"]
        for column in columns[1:]:
            cells.append(f"{column[row] * 100:.2f} ({(column[row] - columns[0][row]) * 100:+.2f})")
        count = rejected.get(row, sum(rejected.values()))
        body = " | ".join(f"{cell:>{w}}" for cell, w in zip(cells, widths, strict=True))
        lines.append(f"| {row:<12} | {body} | {count:>8} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None, mnist_dir: str = "") -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, action="append", help="a .keras file (repeatable; default: shipped)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N test digits")
    parser.add_argument("--jobs", type=int, default=2, help="processes for degrading and preprocessing")
    parser.add_argument("--seed", type=int, default=0, help="seed of the degradations")
    args = parser.parse_args(argv)

    from model.mnist import load_mnist
    from model.runtimes.keras_predictor import KerasPredictor
    from model.shipped import SHIPPED_MODEL

    mnist = load_mnist(mnist_dir)
    digits, labels = mnist.x_test[: args.limit], mnist.y_test[: args.limit]
    models = args.model or [SHIPPED_MODEL]
    suite = prepare(digits, args.jobs, args.seed)
    columns = [accuracies(KerasPredictor.from_file(path), suite, labels) for path in models]
    print(f"accuracy (%) on {len(labels)} MNIST test digits, degraded (seed {args.seed}), through preprocess\n")
    stems = [path.stem for path in models]
    print(table(stems if len(set(stems)) == len(stems) else [str(path) for path in models], columns, suite))
    return 0
