"""Fit :mod:`model.numbers.scoring`'s weights on numbers built from MNIST *training* digits.

    python -m model.numbers fit [--numbers 3200] [--seed 7] [--model FILE] [--out FILE]

Each number of 2 to 8 digits, with gaps or touching neighbours, on paper or photographed, is planned
by :func:`model.numbers.segment.plan_number`; the network reads every candidate in one call. The true reading
is the path of candidates whose boxes match the true digits (and, where there is one, that the
network reads right). The weights maximise the likelihood of those paths under the semi-Markov
conditional random field (L-BFGS, a little L2). Numbers with overlapping digits are left out: their
true cuts cross ink, and learning from them made the scorer cut single digits more readily, worse
for the common case of numbers with gaps (measured: 97.6 % against 95.6 % of 4-digit gap numbers
read right, on training digits with another seed). The weights depend on the network's
probabilities: refit them for another model.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import time
from pathlib import Path

import numpy as np

from model.numbers import lattice
from model.numbers.scoring import FEATURES, features
from model.shipped import SHIPPED_CARD, SHIPPED_MODEL, SHIPPED_WEIGHTS

MATCH_IOU = 0.5  # a candidate is a true digit's if their boxes overlap this much (intersection over union)
REGULARISATION = 1e-3
FIT_SPACINGS = ("gap", "touching")
FIT_SHARE = 0.7  # of the held-out training digits, for fitting; the rest check the fit


def true_path(plan, truth_boxes, text: str = "", probabilities=None) -> tuple[list[int], list[int]] | None:
    """The groups and skipped pieces of the reading that matches the true digits' boxes (x0, y0, x1, y1):
    given the true ``text`` and the network's ``probabilities``, one the network reads right where there
    is one; the best-overlapping among equals. None if no reading of the plan matches."""
    pieces, truth = len(plan.skippable), len(truth_boxes)
    overlap = np.array([[_iou(box, t) for t in truth_boxes] for box in plan.boxes]).reshape(len(plan.boxes), truth)
    if text and probabilities is not None:  # a right label outweighs any overlap
        right = np.asarray(probabilities).argmax(axis=1)[:, None] == np.array([int(c) for c in text])[None, :]
        overlap = np.where(overlap >= MATCH_IOU, overlap + truth * right, overlap)
    best = {(0, 0): (0.0, [], [])}  # (position, digits matched) -> (total overlap, groups, skips)
    starting: list[list[tuple[int, int]]] = [[] for _ in range(pieces)]
    for g, (first, stop) in enumerate(plan.groups):
        starting[first].append((g, stop))
    for position in range(pieces):
        for matched in range(truth + 1):
            if (position, matched) not in best:
                continue
            total, groups, skips = best[position, matched]
            steps = [((position + 1, matched), total, groups, [*skips, position])] if plan.skippable[position] else []
            if matched < truth:
                steps += [
                    ((stop, matched + 1), total + overlap[g, matched], [*groups, g], skips)
                    for g, stop in starting[position]
                    if overlap[g, matched] >= MATCH_IOU
                ]
            for key, value, new_groups, new_skips in steps:
                if key not in best or value > best[key][0]:
                    best[key] = (value, new_groups, new_skips)
    found = best.get((pieces, truth))
    return (found[1], found[2]) if found else None


def fit(numbers: list[tuple], regularisation: float = REGULARISATION) -> tuple[np.ndarray, float]:
    """Weights (in FEATURES' order) and skip score that maximise the likelihood of the true paths.

    ``numbers`` holds (pieces, groups, skippable, features (M, F), true groups, true skips).
    """
    from scipy.optimize import minimize

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        weights, skip = theta[:-1], theta[-1]
        value, gradient = 0.0, np.zeros(len(theta))
        for pieces, groups, skippable, x, true_groups, true_skips in numbers:
            scores = x @ weights
            group_share, skip_share, log_z = lattice.marginals(pieces, groups, scores, skippable, skip)
            value += log_z - scores[true_groups].sum() - skip * len(true_skips)
            gradient[:-1] += group_share @ x - x[true_groups].sum(axis=0)
            gradient[-1] += skip_share.sum() - len(true_skips)
        n = len(numbers)
        return value / n + regularisation / 2 * theta @ theta, gradient / n + regularisation * theta

    result = minimize(loss, np.zeros(len(FEATURES) + 1), jac=True, method="L-BFGS-B")
    return result.x[:-1], float(result.x[-1])


def _iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    width = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0


_mnist = None


def _load_digits(mnist_dir: str) -> None:
    """In each planning process: MNIST, once."""
    global _mnist
    from model.mnist import load_mnist

    _mnist = load_mnist(mnist_dir)


def _plan_job(job: tuple[int, str, str, int, int, int, int]):
    """One number of the training digits ``first`` to ``stop``: its plan (None if refused) and its truth."""
    from model.numbers.segment import plan_number
    from model.rendering.number import render_number

    count, spacing, rendering, index, seed, first, stop = job
    images, labels = _mnist.x_train[first:stop], _mnist.y_train[first:stop]
    number = render_number(images, labels, count, spacing, rendering, index, seed)
    try:
        return plan_number(number.data), number
    except ValueError:  # NotADigit, TooManyDigits: nothing to learn
        return None, number


def held_out_digits() -> int:
    """How many training digits, from the first, the shipped network was not trained on (its card's
    validation_size): the network is as unsure of them as of new digits, unlike the rest."""
    card = json.loads(SHIPPED_CARD.read_text())
    return int(card["hyperparameters"]["validation_size"])


def planned_numbers(jobs: list[tuple], processes: int, predictor, mnist_dir: str) -> list[tuple]:
    """(job, plan, number, probabilities) of every job that plans; the network runs once over all candidates."""
    # Spawned, not forked: this process holds TensorFlow once the model is loaded.
    with multiprocessing.get_context("spawn").Pool(processes, _load_digits, (mnist_dir,)) as pool:
        done = pool.map(_plan_job, jobs, chunksize=20)
    planned = [(job, plan, number) for job, (plan, number) in zip(jobs, done, strict=True) if plan is not None]
    probabilities = predictor.probabilities(np.concatenate([plan.inputs for _, plan, _ in planned]))
    found, start = [], 0
    for job, plan, number in planned:
        found.append((job, plan, number, probabilities[start : start + len(plan.groups)]))
        start += len(plan.groups)
    return found


def main(argv: list[str] | None = None, mnist_dir: str = "") -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--numbers", type=int, default=3200, help="training numbers to fit on")
    parser.add_argument("--check", type=int, default=600, help="4-digit numbers of other digits to check the fit on")
    parser.add_argument("--seed", type=int, default=7, help="seed of the numbers")
    parser.add_argument("--model", type=Path, default=None, help="a .keras file (default: the shipped model)")
    parser.add_argument("--out", type=Path, default=SHIPPED_WEIGHTS)
    parser.add_argument("--jobs", type=int, default=2, help="processes for rendering and planning")
    args = parser.parse_args(argv)

    from model.rendering.number import DIGIT_COUNTS, NUMBER_RENDERINGS, SPACINGS
    from model.runtimes.keras_predictor import KerasPredictor

    started = time.perf_counter()
    predictor = KerasPredictor.from_file(args.model or SHIPPED_MODEL)
    held_out = held_out_digits()
    split = round(FIT_SHARE * held_out)
    kinds = [(c, s, r) for c in DIGIT_COUNTS for s in FIT_SPACINGS for r in NUMBER_RENDERINGS]
    jobs = [(*kinds[n % len(kinds)], n, args.seed, 0, split) for n in range(args.numbers)]
    numbers, unmatched = [], 0
    for _, plan, number, p in planned_numbers(jobs, args.jobs, predictor, mnist_dir):
        path = true_path(plan, number.boxes, number.text, p)
        if path is None:
            unmatched += 1  # the true reading is not among the plan's candidates: nothing to learn from it
            continue
        x = features(plan.shape, p, plan.runs)
        numbers.append((len(plan.skippable), list(plan.groups), list(plan.skippable), x, *path))
    weights, skip = fit(numbers)
    record = {
        "fitted_on": (
            f"{len(numbers)} numbers of training digits 0-{split - 1} (which the shipped network was not trained "
            f"on), seed {args.seed}, spacings {', '.join(FIT_SPACINGS)}; {unmatched} more had no true reading "
            f"among their candidates; model {args.model or 'shipped'}"
        ),
        "skip": round(skip, 6),
        "weights": dict(zip(FEATURES, np.round(weights, 6).tolist(), strict=True)),
    }
    print(f"fitted on {record['fitted_on']}")
    if args.check:
        kinds = [(4, s, r) for s in SPACINGS for r in NUMBER_RENDERINGS]
        jobs = [(*kinds[n % len(kinds)], n, args.seed, split, held_out) for n in range(args.check)]
        checked: dict[str, list[int]] = {}
        for job, plan, number, p in planned_numbers(jobs, args.jobs, predictor, mnist_dir):
            tally = checked.setdefault(job[1], [0, 0])
            tally[0] += plan.choose(p, record).text == number.text
            tally[1] += 1
        record["checked_on"] = {
            spacing: f"{right}/{total} 4-digit numbers of training digits {split}-{held_out - 1} read right"
            for spacing, (right, total) in checked.items()
        }
        for spacing, result in record["checked_on"].items():
            print(f"  {spacing}: {result}")
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {args.out} in {time.perf_counter() - started:.0f} s")
    return 0
