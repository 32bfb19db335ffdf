"""How well a model reads MNIST's test digits as they are, and as people would send them.

    python -m model.evaluation digits [--model FILE] [--limit N] [--jobs 2]
    python -m model.evaluation digits --numbers [--digits 2-8] [--limit 30] ...  (model.evaluation.numbers)

Rows: the raw test tensors; the same images as PNG files through :func:`preprocess`; and each
rendering of :mod:`model.rendering.digit` through :func:`preprocess`. An image that preprocessing turns
down as not a digit counts as a mistake. Rendering and preprocessing run in ``--jobs`` processes.
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from model.images.preprocess import NotADigit, NotAnImage, preprocess
from model.rendering.degraded import DEGRADATIONS, degrade
from model.rendering.digit import RENDERINGS, render

AS_PNG = "mnist-png"
CHUNK = 200


@dataclass
class Row:
    """One line of the table: which input, how many right out of how many, how many turned down."""

    name: str
    correct: int
    total: int
    rejected: int
    seconds: float

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0


def png(digit: np.ndarray) -> bytes:
    """A uint8 (28, 28) MNIST digit as the PNG file it would be."""
    buffer = io.BytesIO()
    Image.fromarray(digit).save(buffer, format="PNG")
    return buffer.getvalue()


def as_file(digit: np.ndarray, rendering: str, index: int, seed: int = 0) -> bytes:
    """The file of one uint8 MNIST digit by ``rendering``: ``AS_PNG`` (a plain PNG), one of
    model.rendering.digit's RENDERINGS or one of model.rendering.degraded's DEGRADATIONS."""
    if rendering == AS_PNG:
        return png(digit)
    if rendering in DEGRADATIONS:
        return degrade(digit, rendering, index, seed)
    return render(digit, rendering, index, seed)


def prepare(digits: np.ndarray, rendering: str, first_index: int = 0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Make each digit's file by ``rendering`` (see :func:`as_file`) and preprocess it.

    Returns the (N, 28, 28) network inputs and a boolean mask of those preprocessing turned down
    (their input is left black).
    """
    inputs = np.zeros((len(digits), 28, 28), dtype=np.float32)
    rejected = np.zeros(len(digits), dtype=bool)
    for n, digit in enumerate(digits):
        try:
            inputs[n] = preprocess(as_file(digit, rendering, first_index + n, seed))
        except (NotADigit, NotAnImage):
            rejected[n] = True
    return inputs, rejected


def _prepare_chunk(job: tuple[np.ndarray, str, int, int]) -> tuple[np.ndarray, np.ndarray]:
    return prepare(*job)


def score(predictor, digits: np.ndarray, labels: np.ndarray, rendering: str, pool=None, seed: int = 0) -> Row:
    """Prepare ``digits`` by ``rendering`` (in ``pool`` if given), predict, and count the right answers."""
    started = time.perf_counter()
    jobs = [(digits[i : i + CHUNK], rendering, i, seed) for i in range(0, len(digits), CHUNK)]
    parts = pool.map(_prepare_chunk, jobs) if pool else [_prepare_chunk(job) for job in jobs]
    inputs = np.concatenate([p[0] for p in parts])
    rejected = np.concatenate([p[1] for p in parts])
    predicted = predictor.probabilities(inputs).argmax(axis=1)
    correct = int(((predicted == labels) & ~rejected).sum())
    return Row(rendering, correct, len(labels), int(rejected.sum()), time.perf_counter() - started)


def evaluate(predictor, digits: np.ndarray, labels: np.ndarray, jobs: int = 2, seed: int = 0) -> Iterator[Row]:
    """The table row by row, as each is done: raw tensors, as PNG, then every rendering."""
    started = time.perf_counter()
    predicted = predictor.probabilities(digits.astype(np.float32) / 255).argmax(axis=1)
    yield Row("mnist-raw", int((predicted == labels).sum()), len(labels), 0, time.perf_counter() - started)
    # Spawned, not forked: the parent holds TensorFlow, which does not survive a fork.
    with multiprocessing.get_context("spawn").Pool(jobs) as pool:
        for rendering in [AS_PNG, *RENDERINGS]:
            yield score(predictor, digits, labels, rendering, pool, seed)


def _line(row: Row, baseline: Row) -> str:
    drop = (baseline.accuracy - row.accuracy) * 100
    return (
        f"| {row.name:<10} | {row.accuracy * 100:6.2f} % | {drop:+5.2f} | {row.rejected:>8} | {row.total:>6} "
        f"| {row.seconds:6.0f} s |"
    )


def main(argv: list[str] | None = None, mnist_dir: str = "") -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None, help="a .keras file (default: the shipped model)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N test images")
    parser.add_argument("--jobs", type=int, default=2, help="processes for rendering and preprocessing")
    parser.add_argument("--seed", type=int, default=0, help="seed of the renderings")
    parser.add_argument("--numbers", action="store_true", help="whole numbers instead (--limit: numbers per row)")
    parser.add_argument("--digits", default="2-8", help="with --numbers: digits per number, e.g. 4 or 2-8")
    args = parser.parse_args(argv)
    if args.numbers:
        return _numbers(args, mnist_dir)

    from model.mnist import load_mnist
    from model.runtimes.keras_predictor import KerasPredictor
    from model.shipped import SHIPPED_MODEL

    mnist = load_mnist(mnist_dir)
    digits, labels = mnist.x_test[: args.limit], mnist.y_test[: args.limit]
    model_path = args.model or SHIPPED_MODEL
    predictor = KerasPredictor.from_file(model_path)
    print(f"{model_path} on {len(labels)} MNIST test images (drop: points below mnist-raw)\n")
    print("| input      | accuracy | drop  | rejected | images | time     |")
    print("|------------|----------|-------|----------|--------|----------|")
    rows: list[Row] = []
    for row in evaluate(predictor, digits, labels, args.jobs, args.seed):
        rows.append(row)
        print(_line(row, rows[0]), flush=True)
    worst = min(rows[1:], key=lambda r: r.accuracy)
    drop = (rows[0].accuracy - worst.accuracy) * 100
    print(f"\nlowest: {worst.name} at {worst.accuracy * 100:.2f} %, {drop:.2f} points below mnist-raw")
    return 0


def _numbers(args: argparse.Namespace, mnist_dir: str) -> int:
    from model.evaluation import numbers as evaluate_numbers
    from model.runtimes.keras_predictor import KerasPredictor
    from model.shipped import SHIPPED_MODEL

    model_path = args.model or SHIPPED_MODEL
    counts = evaluate_numbers.parse_counts(args.digits)
    limit = args.limit or 30
    return evaluate_numbers.report(
        KerasPredictor.from_file(model_path), str(model_path), counts, limit, mnist_dir, args.seed, args.jobs
    )
