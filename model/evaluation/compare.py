"""Compare every recipe and architecture: MNIST test accuracy, robustness, training time, prediction cost.

    python -m model.evaluation compare            # fast and strong, 3 seeds each; seed, logreg, forest once (~1 hour)
    python -m model.evaluation compare --only fast --seeds 1

A recipe's figures are the median of its runs (seeds 0, 1, 2, ...), with the lowest and highest
beside it. Robustness is the mean of model.evaluation.robustness's rows on the first
``--robustness-digits`` test digits (the same degraded images for every run). Prediction cost
is the direct call on a batch of 256 preprocessed images, divided by 256, and the call on a
single image, each the median of repeated runs in this process; ``x shipped`` is the batch cost
against the shipped model's, measured in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace

import numpy as np

from model.evaluation import robustness
from model.mnist import DataError, load_mnist
from model.shipped import SHIPPED_MODEL
from model.training.config import RECIPES, TrainConfig, parse_train_config

# Every recipe with its own settings; the other architectures with settings for a fair, quick run.
RUNS = {
    **{recipe: parse_train_config({"recipe": recipe}) for recipe in RECIPES},
    "seed": TrainConfig(arch="seed", epochs=5, augment=False),
    "logreg": TrainConfig(arch="logreg", epochs=5, augment=False),
    "forest": TrainConfig(arch="forest", epochs=4, augment=False),
}


def per_image_ms(predictor, images: np.ndarray, repeats: int = 20) -> tuple[float, float]:
    """Median milliseconds per image for a batch of 256, and for a batch of one."""
    batch, single = images[:256], images[:1]
    predictor.probabilities(batch)  # warm up
    costs = []
    for sample in (batch, single):
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            predictor.probabilities(sample)
            times.append(time.perf_counter() - started)
        costs.append(float(np.median(times)) * 1000 / len(sample))
    return costs[0], costs[1]


def _spread(values: list[float], fmt: str) -> str:
    median = statistics.median(values)
    if len(values) == 1:
        return format(median, fmt)
    return f"{median:{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"


def main(argv: list[str] | None = None, mnist_dir: str = "") -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", action="append", choices=RUNS, help="run only this one (repeatable)")
    parser.add_argument("--seeds", type=int, default=3, help="runs of each recipe, with seeds 0, 1, ... (default 3)")
    parser.add_argument("--robustness-digits", type=int, default=2000, help="test digits the robustness suite degrades")
    args = parser.parse_args(argv)
    from model.runtimes.keras_predictor import KerasPredictor
    from model.training.train import train

    try:
        mnist = load_mnist(mnist_dir)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    images = mnist.x_test[:256].astype(np.float32) / 255.0
    shipped = KerasPredictor.from_file(SHIPPED_MODEL)
    shipped_ms, _ = per_image_ms(shipped, images)
    sample = slice(0, args.robustness_digits)
    suite = robustness.prepare(mnist.x_test[sample])

    def robust(predictor) -> float:
        return 100 * robustness.accuracies(predictor, suite, mnist.y_test[sample])[robustness.MEAN]

    rows = []
    for name in args.only or RUNS:
        seeds = range(args.seeds if name in RECIPES else 1)
        cards, robust_means = [], []
        for seed in seeds:
            print(f"training {name} (seed {seed})...", file=sys.stderr, flush=True)
            trained = train(replace(RUNS[name], seed=seed), mnist)
            cards.append(trained.card)
            robust_means.append(robust(trained.predictor()))
            print(f"  {trained.card['test_accuracy']:.2%} in {trained.card['training_seconds']} s, "
                  f"robustness {robust_means[-1]:.2f} %", file=sys.stderr)  # fmt: skip
        batch_ms, single_ms = per_image_ms(trained.predictor(), images)
        accuracy = _spread([100 * card["test_accuracy"] for card in cards], ".2f")
        robust_mean = _spread(robust_means, ".2f")
        seconds = _spread([card["training_seconds"] for card in cards], ".0f")
        rows.append((name, accuracy, robust_mean, seconds, len(cards), cards[0]["epochs"], batch_ms, single_ms))

    print("\naccuracy (%) on the 10,000 MNIST test images, robustness (%, the suite's mean on the first")
    print(f"{args.robustness_digits} test digits) and training seconds: median (lowest-highest) of the runs")
    print(f"(forest: 10 trees per epoch; the shipped model's robustness: {robust(shipped):.2f} %)")
    header = f"{'run':<8} {'test accuracy %':>20} {'robustness %':>20} {'train s':>14} {'runs':>4} {'epochs':>6}"
    print(f"{header} {'ms/img @256':>12} {'x shipped':>9} {'ms @1':>7}")
    for name, accuracy, robust_mean, seconds, runs, epochs, batch_ms, single_ms in rows:
        line = f"{name:<8} {accuracy:>20} {robust_mean:>20} {seconds:>14} {runs:>4} {epochs:>6}"
        print(f"{line} {batch_ms:>12.4f} {batch_ms / shipped_ms:>9.2f} {single_ms:>7.3f}")
    return 0
