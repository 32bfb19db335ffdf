"""Read one handwritten number from an image file and show how it was read:

python -m model.numbers read meter.jpg [--max-digits 8] [--show seen.png]   # each digit, its box, the crops 10x
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from model.images.preprocess import NotAnImage, TooCostly
from model.numbers.segment import TooManyDigits, read_number


def main(argv: list[str] | None = None, mnist_dir: str = "") -> int:
    parser = argparse.ArgumentParser(description="Read a handwritten number.")
    parser.add_argument("image", type=Path)
    parser.add_argument("--model", type=Path, default=None, help="a .keras file (default: the shipped model)")
    parser.add_argument("--max-digits", type=int, default=None, help="default: no limit")
    parser.add_argument("--show", type=Path, default=None, help="PNG of the digits' inputs side by side, 10x")
    args = parser.parse_args(argv)

    from model.runtimes.keras_predictor import KerasPredictor
    from model.shipped import SHIPPED_MODEL

    predictor = KerasPredictor.from_file(args.model or SHIPPED_MODEL)
    try:
        reading = read_number(args.image.read_bytes(), predictor, max_digits=args.max_digits)
    except (OSError, NotAnImage, TooCostly, TooManyDigits) as exc:
        print(f"{args.image}: {exc}", file=sys.stderr)
        return 1
    if not reading.digits:
        print(f'{args.image}: "" ({reading.reason})')
        return 0
    print(f'{args.image}: "{reading.text}" (confidence {reading.confidence:.3f})')
    for digit in reading.digits:
        print(f"  {digit.label}  {digit.confidence:.3f}  box {list(digit.box)}")
    if args.show:
        strip = np.concatenate([d.input for d in reading.digits], axis=1)
        big = Image.fromarray(np.round(strip * 255).astype(np.uint8), mode="L")
        big.resize((big.width * 10, big.height * 10), Image.Resampling.NEAREST).save(args.show)
    return 0
