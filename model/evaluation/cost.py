"""What a prediction costs on this machine: the network call, seed against default, and preprocessing.

    python -m model.evaluation cost [--model FILE] [--against FILE] [--repeat 40]

Network: one direct call (as the worker makes it) on a batch of 256 images, the median of
``--repeat`` calls, in Keras and in LiteRT (what the workers run by default), the networks taking
turns so that all see the same machine load. ``--against`` adds another .keras file (say the model
shipped before: ``git show REF:model/shipped/default.keras > before.keras``) and prints the ratios.
Preprocessing: the median time of :func:`preprocess` per image, for a few kinds and sizes of file.
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from model.images.preprocess import preprocess
from model.rendering.digit import page

BATCH = 256


def median_ms(call: Callable[[], object], repeat: int) -> float:
    """Median wall time of ``call`` in milliseconds, after one untimed warm-up call."""
    call()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def network_costs(
    models: dict[str, Path], images: np.ndarray, repeat: int, intra_op: int = 0, inter_op: int = 0
) -> dict[str, float]:
    """Milliseconds per direct call on ``images`` for the seed network and each of ``models`` (name ->
    .keras file) in Keras and in LiteRT ("<name> litert"), taking turns, with TensorFlow's thread
    pools as given (0: TensorFlow decides)."""
    from model.runtimes import litert, tensorflow_setup
    from model.runtimes.keras_predictor import KerasPredictor
    from model.training import architectures

    tensorflow_setup.configure_threads(intra_op, inter_op)
    predictors = {"seed": KerasPredictor(architectures.build("seed"))}
    for name, path in models.items():
        predictors[name] = KerasPredictor.from_file(path)
        predictors[f"{name} litert"] = litert.LiteRTPredictor(litert.export(path.read_bytes()))
    times: dict[str, list[float]] = {name: [] for name in predictors}
    for _ in range(repeat + 1):
        for name, predictor in predictors.items():
            started = time.perf_counter()
            predictor.probabilities(images)
            times[name].append((time.perf_counter() - started) * 1000)
    return {name: statistics.median(values[1:]) for name, values in times.items()}  # the first warms up


def sample_files(digit: np.ndarray) -> dict[str, bytes]:
    """Files people send, by description: an MNIST PNG, canvas drawings, photos of pages."""
    files = {"28x28 PNG (an MNIST digit)": _encode(Image.fromarray(digit), "PNG")}
    for width, height, fmt in [(400, 300, "JPEG"), (1000, 800, "PNG"), (1000, 800, "JPEG"), (4000, 3000, "JPEG"),
                               (4000, 3000, "PNG")]:  # fmt: skip
        files[f"{width}x{height} {fmt} (photo of a page)"] = _encode(page(digit, width, height), fmt)
    return files


def _encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **({"quality": 85} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def main(argv: list[str] | None = None, mnist_dir: str = "") -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None, help="the default network's .keras file (default: shipped)")
    parser.add_argument("--against", type=Path, default=None, help="another .keras file to compare the cost with")
    parser.add_argument("--repeat", type=int, default=40)
    parser.add_argument("--intra-op-threads", type=int, default=0, help="as TF_INTRA_OP_THREADS (0: TF decides)")
    parser.add_argument("--inter-op-threads", type=int, default=0, help="as TF_INTER_OP_THREADS (0: TF decides)")
    args = parser.parse_args(argv)

    from model.mnist import load_mnist
    from model.shipped import SHIPPED_MODEL

    mnist = load_mnist(mnist_dir)
    print(f"preprocess, median of {args.repeat} per file:")
    for name, data in sample_files(mnist.x_test[0]).items():
        ms = median_ms(lambda d=data: preprocess(d), args.repeat)
        print(f"  {name:<30} {len(data) / 1000:>8.0f} kB  {ms:7.1f} ms")

    images = mnist.x_test[:BATCH].astype(np.float32) / 255
    models = {"default": args.model or SHIPPED_MODEL} | ({"against": args.against} if args.against else {})
    costs = network_costs(models, images, args.repeat, args.intra_op_threads, args.inter_op_threads)
    print(f"\nnetwork, one direct call on {BATCH} images, median of {args.repeat}:")
    for name, ms in costs.items():
        print(f"  {name:<15} {ms:7.2f} ms  ({ms * 1000 / BATCH:.0f} us per image)")
    print(f"  default / seed = {costs['default'] / costs['seed']:.2f}")
    if args.against:
        for runtime in ("", " litert"):
            ratio = costs["default" + runtime] / costs["against" + runtime]
            print(f"  default{runtime} / against{runtime} = {ratio:.2f}")
    return 0
