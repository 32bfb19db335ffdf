"""Compare every architecture on MNIST: test accuracy, training time, prediction cost per image.

    python -m model.compare                      # trains seed, logreg, forest; reuses the shipped default
    python -m model.compare --train default      # ... and trains default too (about 10 minutes)

Prediction cost is the direct call on a batch of 256 preprocessed images, divided by 256,
and the call on a single image, each the median of repeated runs in this process.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from model.catalog import ARCHITECTURES, TrainConfig
from model.data import DataError, load_mnist
from model.store import SHIPPED_MODEL

# Settings for a fair, reasonably quick comparison; default's are those of the shipped model.
STANDARD_RUNS = {
    "seed": TrainConfig(arch="seed", epochs=5, augment=False),
    "default": TrainConfig(arch="default", epochs=8, augment=True),
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", action="append", default=[], choices=ARCHITECTURES, help="also train this one")
    args = parser.parse_args(argv)
    from model.predictor import Predictor
    from model.train import train

    try:
        mnist = load_mnist()
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    images = mnist.x_test[:256].astype(np.float32) / 255.0
    rows = []
    for arch in ARCHITECTURES:
        if arch == "default" and arch not in args.train:
            predictor = Predictor.from_file(SHIPPED_MODEL)
            card, source = json.loads(SHIPPED_MODEL.with_suffix(".json").read_text()), "shipped"
        else:
            print(f"training {arch}...", file=sys.stderr, flush=True)
            trained = train(STANDARD_RUNS[arch], mnist)
            card, source = trained.card, "trained now"
            predictor = trained.predictor()
        batch_ms, single_ms = per_image_ms(predictor, images)
        rows.append(
            (arch, card["test_accuracy"], card["training_seconds"], card["epochs"], batch_ms, single_ms, source)
        )

    print("(forest: 10 trees per epoch)")
    print(f"\n{'arch':<8} {'test acc':>9} {'train s':>8} {'epochs':>6} {'ms/img @256':>12} {'ms @1':>8}  model")
    for arch, accuracy, seconds, epochs, batch_ms, single_ms, source in rows:
        print(f"{arch:<8} {accuracy:>9.2%} {seconds:>8.1f} {epochs:>6} {batch_ms:>12.4f} {single_ms:>8.3f}  {source}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
