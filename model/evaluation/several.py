"""Several digits in one image read as one digit: how often the hint fires, and what ``auto`` would change.

    python -m model.evaluation several [--singles 2000] [--numbers 100] [--renderings paper,rgba] [--model FILE]

Every image goes through :func:`model.recognise.recognise` twice, as the service reads it: with
``read=digit`` (counting the results that carry ``hint: read_as_number``) and with ``read=auto``
(counting the results that differ from the digit's, timings aside). Single MNIST test digits,
rendered as people send them (model/rendering/digit.py), should get no hint and read exactly
as in digit mode; numbers of MNIST test digits (model/rendering/number.py, 2 to 4 digits, with
gaps and touching) should all get the hint, and ``auto`` should read their text.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from model.evaluation.digits import as_file
from model.recognise import Bounds, recognise
from model.rendering.number import render_number
from model.results import READ_AS_NUMBER

BOUNDS = Bounds(max_pixels=40_000_000, max_decoded_bytes=400_000_000, max_digits=8, seconds=5.0)
CHUNK = 64  # images per recognise() call, as a worker's batch


def _without_timings(result: dict | None) -> dict:
    return {k: v for k, v in (result or {}).items() if k != "timings"}


def compare(predictor, files: list[bytes]) -> tuple[int, int, list[dict | None]]:
    """(results with the hint in digit mode, auto results that differ from digit mode's, auto results)."""
    hinted = differ = 0
    autos: list[dict | None] = []
    for start in range(0, len(files), CHUNK):
        chunk = files[start : start + CHUNK]
        digits = recognise(chunk, predictor, BOUNDS, reads=["digit"] * len(chunk))
        autos_here = recognise(chunk, predictor, BOUNDS, reads=["auto"] * len(chunk))
        for digit, auto in zip(digits, autos_here, strict=True):
            digit_result = digit.result if digit and digit.result else None
            auto_result = auto.result if auto and auto.result else None
            hinted += bool(digit_result and digit_result.get("hint") == READ_AS_NUMBER)
            differ += _without_timings(digit_result) != _without_timings(auto_result)
            autos.append(auto_result)
    return hinted, differ, autos


def main(argv: list[str] | None = None, mnist_dir: str = "") -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None, help="a .keras file (default: the shipped model)")
    parser.add_argument("--singles", type=int, default=2000, help="MNIST test digits per rendering")
    parser.add_argument("--numbers", type=int, default=100, help="numbers per (digits, spacing)")
    parser.add_argument("--renderings", default="paper,rgba", help="renderings of the single digits")
    args = parser.parse_args(argv)

    from model.mnist import load_mnist
    from model.runtimes.keras_predictor import KerasPredictor
    from model.shipped import SHIPPED_MODEL

    mnist = load_mnist(mnist_dir)
    predictor = KerasPredictor.from_file(args.model or SHIPPED_MODEL)
    print("| images                 | count | hinted (digit) | auto differs from digit | auto reads the text |")
    print("|------------------------|-------|----------------|-------------------------|---------------------|")
    for rendering in args.renderings.split(","):
        started = time.perf_counter()
        files = [as_file(mnist.x_test[i], rendering, i) for i in range(args.singles)]
        hinted, differ, _ = compare(predictor, files)
        seconds = time.perf_counter() - started
        name = f"single, {rendering}"
        print(f"| {name:<22} | {len(files):>5} | {hinted:>14} | {differ:>23} | {'-':>19} |  {seconds:.0f} s")
    for count in (2, 3, 4):
        for spacing in ("gap", "touching"):
            numbers = [
                render_number(mnist.x_test, mnist.y_test, count, spacing, "paper", i) for i in range(args.numbers)
            ]
            hinted, differ, autos = compare(predictor, [n.data for n in numbers])
            right = sum(1 for n, a in zip(numbers, autos, strict=True) if a and a.get("text") == n.text)
            name = f"{count} digits, {spacing}"
            print(f"| {name:<22} | {len(numbers):>5} | {hinted:>14} | {differ:>23} | {right:>19} |", flush=True)
    return 0
