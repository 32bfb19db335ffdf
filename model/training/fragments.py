"""What a number's reader must not take for a digit: parts of digits and digits run together.

Reading a number (:mod:`model.numbers.segment`) asks the network about every group of pieces that might be
one digit. A network trained on whole digits only is often sure of what half a 0, or a 1 run into
the 4 beside it, is: it has never been shown that these are no digit. So training may show it
such fragments with no digit as the answer, every class equally likely ("outlier exposure",
Hendrycks et al. 2019); the numbers' scoring then reads the network's doubt as "not a digit".

Fragments are the candidates of numbers built from training digits (:mod:`model.rendering.number`,
touching and with gaps, on paper and photographed) that are clearly not one true digit: a box
that overlaps no true digit's much, or one that takes in much of two. Candidates near a true digit
are left out either way, and so are numbers whose digits overlap: measured on 500 4-digit numbers
of held-out digits, showing their fragments too read touching numbers worse (88.6 % against 90.2 %).

The same cutting gives the other half of the lesson: candidates of touching numbers that are one
true digit (a box close to its box, taking in little of any other), as the cut left them (a stub
of the neighbour's stroke, a tail cut short), with that digit's label.

    python -m model.training fragments --count 20000 --show fragments.png     # look at some
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import multiprocessing
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model.rendering.number import DIGIT_COUNTS, NUMBER_RENDERINGS

SPACINGS = ("touching", "gap")
PART_OF_ONE = 0.4  # a candidate overlapping no true digit this much (intersection over union) is a part
TAKES_IN = 0.4  # ... and one covering this share of a second digit's width takes in two
CUT_OF_ONE = 0.6  # a candidate of a touching number overlapping one true digit this much ...
SPARES = 0.25  # ... and covering less than this share of any other's width is that digit, as cut


@dataclass(frozen=True)
class NumberParts:
    """What cutting numbers gives training: fragments (no digit), and true digits as they were cut
    out of touching numbers, with their labels."""

    fragments: np.ndarray  # uint8 (K, 28, 28)
    digits: np.ndarray  # uint8 (J, 28, 28)
    labels: np.ndarray  # int64 (J,)


def fragments(images: np.ndarray, labels: np.ndarray, count: int, seed: int = 0, processes: int = 2) -> np.ndarray:
    """``count`` fragments (uint8 (count, 28, 28), normalised as the network sees candidates) cut
    from numbers of ``images`` (uint8 (N, 28, 28) MNIST digits, with their ``labels``); the same
    arguments, the same fragments. Cut in ``processes`` processes, or in this one where it may
    have no children (a Celery pool's)."""
    return number_parts(images, labels, count, seed, processes).fragments


def number_parts(images: np.ndarray, labels: np.ndarray, count: int, seed: int = 0, processes: int = 2) -> NumberParts:
    """:func:`fragments`, and the true digits of the touching numbers they were cut from, as cut."""
    kinds = [(c, s, r) for c in DIGIT_COUNTS for s in SPACINGS for r in NUMBER_RENDERINGS]
    found: list[np.ndarray] = []
    digits: list[np.ndarray] = []
    digit_labels: list[np.ndarray] = []
    total, start, chunk = 0, 0, max(20, count // 12)
    with contextlib.ExitStack() as stack:
        if processes > 1 and not multiprocessing.current_process().daemon:
            context = multiprocessing.get_context("spawn")  # the caller may hold TensorFlow
            pool = stack.enter_context(context.Pool(processes, initializer=_hold, initargs=(images, labels)))
            cut = functools.partial(pool.map, _number_parts, chunksize=10)
        else:
            _hold(images, labels)
            cut = functools.partial(map, _number_parts)
        while total < count:
            jobs = [(*kinds[n % len(kinds)], n, seed) for n in range(start, start + chunk)]
            for part, whole, whole_labels in cut(jobs):
                found.append(part)
                digits.append(whole)
                digit_labels.append(whole_labels)
                total += len(part)
            start += chunk
    return NumberParts(np.concatenate(found)[:count], np.concatenate(digits), np.concatenate(digit_labels))


def fragment_mask(candidate_boxes, true_boxes) -> np.ndarray:
    """Which candidate boxes (x0, y0, x1, y1) are clearly no single true digit."""
    mask = np.zeros(len(candidate_boxes), bool)
    for g, box in enumerate(candidate_boxes):
        overlaps = [_iou(box, t) for t in true_boxes]
        best = int(np.argmax(overlaps))
        widths = [_covered_width(box, t) for n, t in enumerate(true_boxes) if n != best]
        mask[g] = overlaps[best] < PART_OF_ONE or max(widths, default=0.0) >= TAKES_IN
    return mask


def cut_digit_of(candidate_boxes, true_boxes) -> np.ndarray:
    """For each candidate box, the index of the true digit it is, as cut; -1 for none."""
    found = np.full(len(candidate_boxes), -1, np.int64)
    for g, box in enumerate(candidate_boxes):
        overlaps = [_iou(box, t) for t in true_boxes]
        best = int(np.argmax(overlaps))
        widths = [_covered_width(box, t) for n, t in enumerate(true_boxes) if n != best]
        if overlaps[best] >= CUT_OF_ONE and max(widths, default=0.0) < SPARES:
            found[g] = best
    return found


_pool_data: tuple[np.ndarray, np.ndarray] | None = None


def _hold(images: np.ndarray, labels: np.ndarray) -> None:
    global _pool_data
    _pool_data = (images, labels)


def _number_parts(job: tuple[int, str, str, int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from model.numbers.segment import plan_number
    from model.rendering.number import render_number

    images, labels = _pool_data
    number = render_number(images, labels, *job)
    try:
        plan = plan_number(number.data)
    except ValueError:  # NotADigit, TooManyDigits
        return np.zeros((0, 28, 28), np.uint8), np.zeros((0, 28, 28), np.uint8), np.zeros(0, np.int64)
    chosen = plan.inputs[fragment_mask(plan.boxes, number.boxes)]
    which = cut_digit_of(plan.boxes, number.boxes) if job[1] == "touching" else np.full(len(plan.boxes), -1)
    whole = plan.inputs[which >= 0]
    whole_labels = np.array([int(number.text[n]) for n in which[which >= 0]], np.int64)
    return np.round(chosen * 255).astype(np.uint8), np.round(whole * 255).astype(np.uint8), whole_labels


def _iou(a, b) -> float:
    width = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0


def _covered_width(box, digit) -> float:
    """The share of ``digit``'s width that ``box`` spans."""
    return max(0, min(box[2], digit[2]) - max(box[0], digit[0])) / max(1, digit[2] - digit[0])


def main(argv: list[str] | None = None, mnist_dir: str = "") -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help=".npy file of the fragments")
    parser.add_argument("--show", type=Path, default=None, help="PNG of the first 400, 20 by 20")
    args = parser.parse_args(argv)

    from PIL import Image

    from model.mnist import load_mnist

    mnist = load_mnist(mnist_dir)
    found = fragments(mnist.x_train[5000:], mnist.y_train[5000:], args.count, args.seed)  # not the validation digits
    print(f"{len(found)} fragments")
    if args.out:
        np.save(args.out, found)
    if args.show:
        tiles = np.zeros((400, 28, 28), np.uint8)
        tiles[: min(400, len(found))] = found[:400]
        grid = tiles.reshape(20, 20, 28, 28).transpose(0, 2, 1, 3).reshape(560, 560)
        Image.fromarray(grid).save(args.show)
    return 0
