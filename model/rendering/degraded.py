"""MNIST digits degraded the ways real scans and photos degrade handwriting: the robustness suite's inputs.

Each degradation takes one (28, 28) float32 MNIST digit in [0, 1] (light ink on black) and a
random generator, and returns the degraded digit in the same form; :func:`degrade` draws the
generator from (seed, degradation, index), so the same digit always comes out the same, and
encodes the result as the PNG file a person would send (``low-contrast``: dark ink on paper).

The parameters are drawn per image from ranges wide enough to matter and narrow enough that a
person still reads the digit at a glance.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image
from scipy import ndimage

from model.rendering.digit import encode_png

MNIST_BOX = 20  # MNIST's digits fill a 20x20 box in 28x28
SIDE = 28
SMALL_DIGIT = (8, 16)  # pixels the digit is reduced to (its box's longer side)
DEFOCUS = (0.8, 1.4)  # the blurry copy's Gaussian blur, in MNIST pixels
THICKER = (1.5, 2.5)  # radius of the pen that thickens strokes, in MNIST pixels
SLANT = (0.45, 0.75)  # horizontal shear, either way
ELASTIC_ALPHA, ELASTIC_SIGMA = (34.0, 42.0), 4.0  # Simard et al. 2003: displacement scale and smoothness
CONTRAST = (0.25, 0.4)  # ink against paper, as a share of the full range
GRAIN = (0.01, 0.03)  # the scan's noise, standard deviation
SALT = (0.04, 0.08)  # share of pixels that are specks of ink
PEN = (0.8, 1.3)  # the canvas's even stroke width, in MNIST pixels


def reduce_and_enlarge(digit: np.ndarray, side: int, resample: Image.Resampling) -> np.ndarray:
    """The digit reduced so that its box is ``side`` pixels (averaging), then enlarged back by ``resample``."""
    small = round(SIDE * side / MNIST_BOX)
    image = Image.fromarray(digit, mode="F").resize((small, small), Image.Resampling.BOX)
    return np.clip(np.asarray(image.resize((SIDE, SIDE), resample), dtype=np.float32), 0, 1)


def pen(radius: float) -> np.ndarray:
    """A round pen's footprint: the pixels within ``radius`` of the centre."""
    reach = int(radius)
    rows, cols = np.mgrid[-reach : reach + 1, -reach : reach + 1]
    return rows**2 + cols**2 <= radius**2


def shear(digit: np.ndarray, amount: float) -> np.ndarray:
    """Slanted: each row moved sideways by ``amount`` times its height above the centre (positive: italic)."""
    centre = (SIDE - 1) / 2
    # Output (r, c) samples the input at (r, c - amount * (centre - r)).
    matrix = np.array([[1.0, 0.0], [amount, 1.0]])
    offset = np.array([0.0, -amount * centre])
    return ndimage.affine_transform(digit, matrix, offset=offset, order=1, mode="constant")


def elastic(digit: np.ndarray, alpha: float, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Elastic distortion (Simard et al. 2003): each pixel moved by a smooth random field, ``alpha`` strong."""
    fields = [ndimage.gaussian_filter(rng.uniform(-1, 1, (SIDE, SIDE)), sigma, mode="constant") * alpha for _ in "xy"]
    rows, cols = np.mgrid[0:SIDE, 0:SIDE].astype(np.float64)
    return ndimage.map_coordinates(digit, [rows + fields[0], cols + fields[1]], order=1, mode="constant")


def skeleton(mask: np.ndarray) -> np.ndarray:
    """The one-pixel-wide centre lines of a boolean mask (Zhang and Suen's thinning, 1984)."""
    image = np.pad(mask.astype(bool), 1)
    while True:
        changed = False
        for step in (0, 1):
            p = _neighbours(image)  # P2..P9, clockwise from the pixel above
            count = sum(p)
            transitions = sum((~p[k]) & p[(k + 1) % 8] for k in range(8))
            if step == 0:
                away = ~(p[0] & p[2] & p[4]) & ~(p[2] & p[4] & p[6])
            else:
                away = ~(p[0] & p[2] & p[6]) & ~(p[0] & p[4] & p[6])
            remove = image & (count >= 2) & (count <= 6) & (transitions == 1) & away
            if remove.any():
                image &= ~remove
                changed = True
        if not changed:
            return image[1:-1, 1:-1]


def _neighbours(image: np.ndarray) -> list[np.ndarray]:
    shifts = [(-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1)]
    return [np.roll(image, (-dr, -dc), axis=(0, 1)) for dr, dc in shifts]


def even_strokes(digit: np.ndarray, width: float) -> np.ndarray:
    """The digit redrawn along its centre lines with a round pen ``width`` pixels wide, anti-aliased:
    a drawing on a web canvas. Worked at twice the size, for smooth centre lines."""
    big = np.asarray(Image.fromarray(digit, mode="F").resize((2 * SIDE, 2 * SIDE), Image.Resampling.BILINEAR))
    lines = skeleton(big >= 0.5)
    if not lines.any():
        return digit
    distance = ndimage.distance_transform_edt(~lines)
    ink = np.clip(width + 0.5 - distance, 0, 1).astype(np.float32)  # at twice the size, width is 2x: half each side
    return np.asarray(Image.fromarray(ink, mode="F").reduce(2), dtype=np.float32)


# The degradations, each (digit, rng) -> digit, light ink on black in [0, 1].


def blocky(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A coarse black-and-white scan: reduced to 8-16 pixels, each pixel ink or paper, enlarged by repeating pixels."""
    side = int(rng.integers(SMALL_DIGIT[0], SMALL_DIGIT[1] + 1))
    bilevel = (reduce_and_enlarge(digit, side, Image.Resampling.NEAREST) >= 0.5).astype(np.float32)
    return bilevel if bilevel.any() else reduce_and_enlarge(digit, side, Image.Resampling.NEAREST)


def blurry(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A small, out-of-focus photo: reduced to 8-16 pixels, enlarged again smoothly (bicubic), blurred."""
    small = reduce_and_enlarge(digit, int(rng.integers(SMALL_DIGIT[0], SMALL_DIGIT[1] + 1)), Image.Resampling.BICUBIC)
    return ndimage.gaussian_filter(small, rng.uniform(*DEFOCUS))


def thick(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Written with a broad pen: strokes thickened by a round pen of radius 1.5-2.5 pixels."""
    return ndimage.grey_dilation(digit, footprint=pen(rng.uniform(*THICKER)))


def thin(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Written with a fine pen: a pixel of every stroke's width worn away (the darkest of each 2x2)."""
    return ndimage.grey_erosion(digit, footprint=np.ones((2, 2), bool))


def slanted(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Written slanted: sheared by 0.45-0.75 (24-37 degrees), forwards or backwards."""
    return shear(digit, rng.uniform(*SLANT) * rng.choice([-1.0, 1.0]))


def distorted(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Differently shaped: an elastic distortion (alpha 34-42, sigma 4)."""
    return elastic(digit, rng.uniform(*ELASTIC_ALPHA), ELASTIC_SIGMA, rng)


def low_contrast(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Faint pencil on a grainy scan: ink 25-40 % of the range from the paper, noise of 1-3 %.

    Returned as ink strength like the others; :func:`degrade` puts it on paper."""
    grain = rng.normal(0, rng.uniform(*GRAIN), digit.shape)
    return (digit * rng.uniform(*CONTRAST) + grain).astype(np.float32)


def salt(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Dust and specks on the scan: 4-8 % of the pixels, anywhere, at full ink."""
    specks = rng.random(digit.shape) < rng.uniform(*SALT)
    return np.where(specks, 1.0, digit).astype(np.float32)


def canvas(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Drawn on a web canvas: thin, even strokes 0.8-1.3 pixels wide along the digit's centre lines."""
    return even_strokes(digit, rng.uniform(*PEN))


DEGRADATIONS: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    "blocky": blocky,
    "blurry": blurry,
    "thick": thick,
    "thin": thin,
    "slanted": slanted,
    "elastic": distorted,
    "low-contrast": low_contrast,
    "salt": salt,
    "canvas": canvas,
}
ON_PAPER = {"low-contrast"}  # sent as dark ink on light paper; the others as MNIST is, light on black
PAPER = 0.85
# The file's side: the 28x28 digit with a margin of its own width around it, as a crop of a scan
# would have. In 28x28 a broad-pen or blurred digit can cover half the image, and preprocess then
# (rightly, for such an image) finds no background to tell the ink from.
FILE_SIDE = 56


def degraded(digit: np.ndarray, degradation: str, index: int, seed: int = 0) -> np.ndarray:
    """The uint8 (28, 28) MNIST ``digit`` degraded, as float32 light-on-black ink; deterministic in
    (degradation, index, seed)."""
    rng = np.random.default_rng([seed, 100 + list(DEGRADATIONS).index(degradation), index])
    return np.asarray(DEGRADATIONS[degradation](digit.astype(np.float32) / 255, rng), dtype=np.float32)


def degrade(digit: np.ndarray, degradation: str, index: int, seed: int = 0) -> bytes:
    """:func:`degraded` as the PNG file a person would send (grayscale, FILE_SIDE square, the digit in
    the middle)."""
    ink = np.zeros((FILE_SIDE, FILE_SIDE), np.float32)
    start = (FILE_SIDE - SIDE) // 2
    ink[start : start + SIDE, start : start + SIDE] = degraded(digit, degradation, index, seed)
    if degradation in ON_PAPER:  # the paper's grain goes on the margin too
        rng = np.random.default_rng([seed, 200, index])
        margin = ink == 0
        ink[margin] = rng.normal(0, float(np.std(ink[start : start + 4, start : start + SIDE])), int(margin.sum()))
    pixels = PAPER - ink if degradation in ON_PAPER else ink
    return encode_png(Image.fromarray(np.round(np.clip(pixels, 0, 1) * 255).astype(np.uint8), mode="L"))
