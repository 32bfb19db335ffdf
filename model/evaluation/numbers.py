"""How well whole handwritten numbers are read: numbers of MNIST test digits, rendered as people send them.

    python -m model.evaluation digits --numbers [--digits 2-8] [--limit 30] [--seed 0] [--model FILE] [--jobs 2]

One row per (digits, spacing, rendering), ``--limit`` numbers each (see :mod:`model.rendering.number`).
``number``: whole numbers read right. ``digit``: digits read right, as OCR counts characters:
the number's digits less the fewest edits (a digit changed, missed or added) that turn the reading
into the truth (:func:`digits_right`), so that a digit split in two costs one digit, not the
whole number's.
``single``: the same MNIST digits, each rendered alone the same way and read through
:func:`model.images.preprocess.preprocess` and the same model: what the digits would score one at a time.
``joined``: share of neighbours whose ink runs into each other (before any blur). ``ms``: median
time of :func:`model.numbers.segment.plan_number` per image. Rendering and planning run in ``--jobs``
processes; every candidate of a row goes through one model call, as in the service.
"""

from __future__ import annotations

import multiprocessing
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from model.images.preprocess import NotADigit, NotAnImage, preprocess
from model.numbers.segment import TooManyDigits, plan_number
from model.rendering.digit import render
from model.rendering.number import NUMBER_RENDERINGS, SPACINGS, render_number

CHUNK = 10  # numbers per job handed to a process
GOALS = (  # (digits, spacing, what, at least)
    (4, "gap", "number", 0.97),
    (4, "touching", "number", 0.90),
)
DIGIT_GOAL = 0.01  # per-digit accuracy at most this far below single-digit accuracy (each spacing)


@dataclass
class NumberRow:
    """One line of the table."""

    digits: int
    spacing: str
    rendering: str
    numbers: int = 0
    numbers_right: int = 0
    slots: int = 0  # digits in all its numbers
    digits_right: int = 0
    singles_right: int = 0
    wrong_length: int = 0
    joined: int = 0
    plan_ms: float = 0.0

    @property
    def number_accuracy(self) -> float:
        return self.numbers_right / self.numbers if self.numbers else 0.0

    @property
    def digit_accuracy(self) -> float:
        return self.digits_right / self.slots if self.slots else 0.0

    @property
    def single_accuracy(self) -> float:
        return self.singles_right / self.slots if self.slots else 0.0

    @property
    def joined_share(self) -> float:
        return self.joined / (self.slots - self.numbers) if self.slots > self.numbers else 0.0


def _prepare(job: tuple[int, str, str, int, int, int]) -> list[tuple]:
    """Render and plan numbers ``first`` to ``first + CHUNK``, and preprocess their digits one at a time.

    Each item: (plan or None, true text, singles' inputs, singles refused, joined neighbours, plan seconds).
    """
    digits, spacing, rendering, first, count, seed = job
    mnist = _loaded["mnist"]
    prepared = []
    for index in range(first, first + count):
        number = render_number(mnist.x_test, mnist.y_test, digits, spacing, rendering, index, seed)
        started = time.perf_counter()
        try:
            plan = plan_number(number.data)
        except (NotADigit, NotAnImage, TooManyDigits):
            plan = None
        seconds = time.perf_counter() - started
        singles = np.zeros((digits, 28, 28), np.float32)
        refused = np.zeros(digits, bool)
        for n, i in enumerate(number.indices):
            try:
                singles[n] = preprocess(render(mnist.x_test[i], rendering, i, seed))
            except (NotADigit, NotAnImage):
                refused[n] = True
        prepared.append((plan, number.text, singles, refused, number.joined, seconds))
    return prepared


_loaded: dict = {}


def _load_digits(mnist_dir: str) -> None:
    """In each rendering process: MNIST, once."""
    from model.mnist import load_mnist

    _loaded["mnist"] = load_mnist(mnist_dir)


def score_row(predictor, digits: int, spacing: str, rendering: str, limit: int, seed: int, pool=None) -> NumberRow:
    """Render, plan and read ``limit`` numbers of one kind; count what was read right."""
    jobs = [(digits, spacing, rendering, first, min(CHUNK, limit - first), seed) for first in range(0, limit, CHUNK)]
    prepared = [item for part in (pool.map(_prepare, jobs) if pool else map(_prepare, jobs)) for item in part]
    planned = [plan for plan, *_ in prepared if plan is not None]
    inputs = [plan.inputs for plan in planned] + [singles for _, _, singles, *_ in prepared]
    probabilities = predictor.probabilities(np.concatenate(inputs))  # one call, as the service makes it
    row = NumberRow(digits, spacing, rendering, plan_ms=statistics.median(p[-1] for p in prepared) * 1000)
    start = 0
    readings = []
    for plan in planned:
        try:
            readings.append(plan.choose(probabilities[start : start + len(plan.groups)]).text)
        except TooManyDigits:  # read as more digits than the limit: refused, as the service would
            readings.append("")
        start += len(plan.groups)
    readings_iter = iter(readings)
    for plan, text, _, refused, joined, _ in prepared:
        singles_read = probabilities[start : start + digits].argmax(axis=1)
        start += digits
        truth = np.array([int(c) for c in text])
        row.numbers += 1
        row.slots += digits
        row.singles_right += int(((singles_read == truth) & ~refused).sum())
        row.joined += joined
        read = next(readings_iter) if plan is not None else ""
        row.numbers_right += read == text
        row.digits_right += digits_right(read, text)
        row.wrong_length += len(read) != len(text)
    return row


def digits_right(read: str, truth: str) -> int:
    """``truth``'s length less the edit (Levenshtein) distance from ``read`` to it, at least 0."""
    previous = list(range(len(truth) + 1))
    for n, a in enumerate(read, 1):
        current = [n]
        for m, b in enumerate(truth, 1):
            current.append(min(previous[m] + 1, current[m - 1] + 1, previous[m - 1] + (a != b)))
        previous = current
    return max(0, len(truth) - previous[-1])


def evaluate_numbers(
    predictor, digit_counts: list[int], limit: int, mnist_dir: str, seed: int = 0, jobs: int = 2
) -> Iterator[NumberRow]:
    """The table row by row, as each is done."""
    # Spawned, not forked: the parent holds TensorFlow, which does not survive a fork.
    with multiprocessing.get_context("spawn").Pool(jobs, _load_digits, (mnist_dir,)) as pool:
        for digits in digit_counts:
            for spacing in SPACINGS:
                for rendering in NUMBER_RENDERINGS:
                    yield score_row(predictor, digits, spacing, rendering, limit, seed, pool)


HEADER = (
    "| digits | spacing  | rendering | number   | digit    | single   | wrong length | joined | numbers | ms  |\n"
    "|--------|----------|-----------|----------|----------|----------|--------------|--------|---------|-----|"
)


def line(row: NumberRow) -> str:
    return (
        f"| {row.digits:>6} | {row.spacing:<8} | {row.rendering:<9} | {row.number_accuracy * 100:6.2f} % "
        f"| {row.digit_accuracy * 100:6.2f} % | {row.single_accuracy * 100:6.2f} % | {row.wrong_length:>12} "
        f"| {row.joined_share * 100:4.0f} % | {row.numbers:>7} | {row.plan_ms:3.0f} |"
    )


def goals(rows: list[NumberRow]) -> list[str]:
    """The goals beside what was measured, for the rows there are."""
    lines = []
    for digits, spacing, _, floor in GOALS:
        measured = _pooled([r for r in rows if r.digits == digits and r.spacing == spacing])
        if measured:
            verdict = "met" if measured.number_accuracy >= floor else "missed"
            lines.append(
                f"{digits} digits, {spacing}: numbers read right {measured.number_accuracy * 100:.2f} % "
                f"(goal >= {floor * 100:.0f} %): {verdict}"
            )
    for spacing in SPACINGS:
        measured = _pooled([r for r in rows if r.spacing == spacing])
        if measured:
            drop = (measured.single_accuracy - measured.digit_accuracy) * 100
            verdict = "met" if drop <= DIGIT_GOAL * 100 else "missed"
            lines.append(
                f"{spacing} numbers: digits {measured.digit_accuracy * 100:.2f} % against "
                f"{measured.single_accuracy * 100:.2f} % one at a time, {drop:+.2f} points "
                f"(goal: within {DIGIT_GOAL * 100:.0f}): {verdict}"
            )
    return lines


def _pooled(rows: list[NumberRow]) -> NumberRow | None:
    """The rows' counts added up (over renderings, or counts of digits)."""
    if not rows:
        return None
    pooled = NumberRow(rows[0].digits, rows[0].spacing, "all")
    for row in rows:
        for name in ("numbers", "numbers_right", "slots", "digits_right", "singles_right", "wrong_length", "joined"):
            setattr(pooled, name, getattr(pooled, name) + getattr(row, name))
    return pooled


def parse_counts(text: str) -> list[int]:
    """ "2-8" or "4" or "2,4,8" -> the digit counts."""
    counts: list[int] = []
    for part in text.split(","):
        low, _, high = part.partition("-")
        counts += range(int(low), int(high or low) + 1)
    return counts


def report(
    predictor, name: str, digit_counts: list[int], limit: int, mnist_dir: str, seed: int = 0, jobs: int = 2
) -> int:
    """Print the table, then the goals beside the figures measured."""
    print(f"{name} on numbers of MNIST test digits, {limit} per row, seed {seed}\n")
    print(HEADER)
    rows = []
    for row in evaluate_numbers(predictor, digit_counts, limit, mnist_dir, seed, jobs):
        rows.append(row)
        print(line(row), flush=True)
    print()
    for goal in goals(rows):
        print(goal)
    return 0
