"""Handwritten numbers made of MNIST digits, rendered the way people send them: the truth is known.

A number is 2 to 8 MNIST digits side by side, each a little bigger or smaller than the others
and a little higher or lower, spaced by one of :data:`SPACINGS` (how far apart the ink boxes of
neighbours are), then put on paper or photographed as :mod:`model.rendering.digit` does for one digit.
The same (digits, spacing, rendering, index, seed) give the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

from model.rendering.digit import encode_jpeg, encode_png, ink_on_paper, photograph

# Distance from one digit's ink box (pixels at half strength or more) to the next one's, in MNIST
# pixels (a digit's box is 20 of them); negative distances are overlaps.
SPACINGS: dict[str, tuple[float, float]] = {
    "gap": (2.0, 8.0),  # 10-40 % of a box apart
    "touching": (-1.0, 0.0),  # the boxes meet, or overlap by up to 5 %: the ink often joins
    "overlap": (-4.0, -1.0),  # the boxes overlap by 5-20 %
}
NUMBER_RENDERINGS = ("paper", "photo")
DIGIT_COUNTS = tuple(range(2, 9))
SIZE_VARIATION = (0.85, 1.1)  # each digit's size, relative to MNIST's
JITTER = 2.0  # each digit moves up or down by up to this many MNIST pixels
SCALE = (1.5, 7.0)  # image pixels per MNIST pixel: digit boxes 30 to 140 pixels tall
SUBPIXELS = 2  # the strip is composed at twice MNIST's resolution, for half-pixel spacings


@dataclass(frozen=True)
class RenderedNumber:
    """An image file of a number and its truth: the digits' labels, MNIST indices and ink boxes."""

    data: bytes
    text: str
    indices: tuple[int, ...]
    boxes: tuple[tuple[int, int, int, int], ...]  # (x0, y0, x1, y1) in image pixels, x1 and y1 exclusive
    joined: int  # neighbours whose ink (at half strength, before any blur) runs into each other


def number_rng(count: int, spacing: str, rendering: str, index: int, seed: int = 0) -> np.random.Generator:
    """The random stream of one number: the same arguments, the same number."""
    return np.random.default_rng(
        [seed, count, list(SPACINGS).index(spacing), NUMBER_RENDERINGS.index(rendering), index]
    )


def pick_digits(pool_size: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """Which ``count`` digits of a pool of ``pool_size`` make the number (distinct, in order)."""
    return rng.choice(pool_size, size=count, replace=False)


def render_number(
    images: np.ndarray, labels: np.ndarray, count: int, spacing: str, rendering: str, index: int, seed: int = 0
) -> RenderedNumber:
    """Image bytes of a ``count``-digit number built from ``images`` (uint8 (N, 28, 28) MNIST digits)."""
    rng = number_rng(count, spacing, rendering, index, seed)
    chosen = pick_digits(len(images), count, rng)
    strip, strip_boxes, joined = compose_strip([images[i] for i in chosen], SPACINGS[spacing], rng)
    image, boxes, scale = _on_paper(strip, strip_boxes, rng)
    if rendering == "paper":
        data = encode_png(image)
    elif rendering == "photo":
        data = encode_jpeg(photograph(image, scale, rng), int(rng.integers(40, 81)))
    else:
        raise ValueError(f"rendering must be one of {NUMBER_RENDERINGS}, got {rendering!r}")
    text = "".join(str(int(labels[i])) for i in chosen)
    return RenderedNumber(data, text, tuple(int(i) for i in chosen), boxes, joined)


def compose_strip(
    digits: list[np.ndarray], distances: tuple[float, float], rng: np.random.Generator
) -> tuple[np.ndarray, list[tuple[float, float, float, float]], int]:
    """The digits side by side as ink strength in [0, 1] (light on black) at ``SUBPIXELS`` times MNIST's
    resolution, each digit's ink box (x0, y0, x1, y1) in it, and how many neighbours' ink runs into each
    other's. Overlapping ink takes the stronger."""
    placed = []  # (strokes, top, left, box in the strokes)
    right_edge = 0.0
    for n, digit in enumerate(digits):
        side = round(28 * SUBPIXELS * rng.uniform(*SIZE_VARIATION))
        strokes = np.asarray(Image.fromarray(digit).resize((side, side), Image.Resampling.BICUBIC), np.float32) / 255
        rows, cols = np.flatnonzero((strokes >= 0.5).any(axis=1)), np.flatnonzero((strokes >= 0.5).any(axis=0))
        box = (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)
        top = round(-side / 2 + rng.uniform(-JITTER, JITTER) * SUBPIXELS)  # centred on row 0, jittered
        distance = rng.uniform(*distances) * SUBPIXELS
        left = 0 if n == 0 else round(right_edge + distance) - box[0]
        right_edge = left + box[2]
        placed.append((strokes, top, left, box))
    first_top = min(top for _, top, _, _ in placed)
    first_left = min(left for _, _, left, _ in placed)  # a narrow digit may start left of the one before
    height = max(top + s.shape[0] for s, top, _, _ in placed) - first_top
    width = max(left + s.shape[1] for s, _, left, _ in placed) - first_left
    strip = np.zeros((height, width), np.float32)
    owner = np.zeros((len(placed), height, width), bool)  # each digit's own ink at half strength
    boxes = []
    for n, (strokes, top, left, box) in enumerate(placed):
        row, left = top - first_top, left - first_left
        window = (slice(row, row + strokes.shape[0]), slice(left, left + strokes.shape[1]))
        np.maximum(strip[window], strokes, out=strip[window])
        owner[n][window] = strokes >= 0.5
        boxes.append((left + box[0], row + box[1], left + box[2], row + box[3]))
    labels, _ = ndimage.label(strip >= 0.5, structure=np.ones((3, 3)))
    joined = sum(bool(np.intersect1d(labels[owner[n]], labels[owner[n + 1]]).size) for n in range(len(placed) - 1))
    return strip, boxes, joined


def _on_paper(
    strip: np.ndarray, strip_boxes: list[tuple[float, float, float, float]], rng: np.random.Generator
) -> tuple[Image.Image, tuple[tuple[int, int, int, int], ...], float]:
    """The strip scaled up and placed with margins on paper; the digits' boxes there; the scale."""
    scale = rng.uniform(*SCALE)
    zoom = scale / SUBPIXELS
    height, width = round(strip.shape[0] * zoom), round(strip.shape[1] * zoom)
    big = Image.fromarray(strip, mode="F").resize((width, height), Image.Resampling.BICUBIC)
    strokes = np.clip(np.asarray(big, dtype=np.float32), 0, 1)
    digit_side = 20 * scale
    left, right = (round(rng.uniform(0.3, 2.5) * digit_side) for _ in range(2))
    top, bottom = (round(rng.uniform(0.3, 2.0) * digit_side) for _ in range(2))
    image = ink_on_paper(strokes, (top, left, top + height + bottom, left + width + right), rng)
    boxes = tuple(
        (round(left + x0 * zoom), round(top + y0 * zoom), round(left + x1 * zoom), round(top + y1 * zoom))
        for x0, y0, x1, y1 in strip_boxes
    )
    return image, boxes, scale
