"""Turn any image of a handwritten digit into the 28x28 MNIST-style input the networks expect.

MNIST digits are light ink on black, size-normalised to fit 20x20 (aspect kept), anti-aliased,
and placed in 28x28 with their centre of mass at the centre. People send dark ink on white
paper, photos with uneven light, transparent canvas drawings, rotated JPEGs, small digits in
big images. :func:`preprocess` handles them all the same way:

    decode (EXIF, alpha onto white, any mode) -> grayscale -> polarity -> lighting and noise
    -> crop to the ink -> fit 20x20 -> centre of mass to the centre of 28x28

    python -m model.preprocess photo.jpg --show seen.png
"""

from __future__ import annotations

import argparse
import io
import sys
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps
from scipy import ndimage

DEFAULT_MAX_PIXELS = 40_000_000
WORKING_SIDE = 512  # images are located and cleaned at most this large
DIGIT_BOX = 20
CANVAS = 28
CENTRE = (14.0, 14.0)  # where MNIST's centres of mass sit (row, column), measured on its test set
MIN_CONTRAST = 0.12  # ink must differ from the background by this much (of the full range)


class NotAnImage(ValueError):
    """The bytes are not an image Pillow can decode, or the image is over the pixel limit."""


class NotADigit(ValueError):
    """The image decodes but holds no ink: blank, near-blank, or uniform."""


def preprocess(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode image bytes into a (28, 28) float32 array in [0, 1], light ink on black.

    Raises :class:`NotAnImage` for undecodable or oversized input and :class:`NotADigit`
    when there is no ink to read.
    """
    return normalize(decode(data, max_pixels))


def decode(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode to a grayscale float32 array in [0, 1] (1 = white), upright, transparency as white."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.width * image.height > max_pixels:
                raise NotAnImage(f"image is {image.width}x{image.height}, over the limit of {max_pixels} pixels")
            if image.format == "JPEG":
                image.draft("L", (WORKING_SIDE * 4, WORKING_SIDE * 4))  # decode big JPEGs at a fraction
            image.seek(0)  # animated images: the first frame
            image.load()
            image = ImageOps.exif_transpose(image)
            return _to_gray(image)
    except NotAnImage:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise NotAnImage(f"cannot decode image: {exc}") from exc


def _to_gray(image: Image.Image) -> np.ndarray:
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        values = np.asarray(image, dtype=np.float32)
        high = 65535.0 if image.mode.startswith("I;16") or values.max() > 255 else 255.0
        return np.clip(values / high, 0, 1)
    has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    if has_alpha:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    elif image.mode not in ("L", "RGB"):
        image = image.convert("RGB")  # CMYK, YCbCr, palette, 1-bit...
    return np.asarray(image.convert("L"), dtype=np.float32) / 255.0


def normalize(gray: np.ndarray) -> np.ndarray:
    """Grayscale [0, 1] of any size -> MNIST-style (28, 28) float32; raises NotADigit if blank."""
    work, scale = _shrink(gray, WORKING_SIDE)
    ink = _ink(work)
    box = _bounding_box(ink)
    if scale > 1.5:
        # A small digit in a big image: clean it again from the full-resolution pixels around it.
        top, bottom, left, right = (int(v * scale) for v in box)
        margin = max(bottom - top, right - left) // 2 + 2
        crop = gray[max(0, top - margin) : bottom + margin, max(0, left - margin) : right + margin]
        work, _ = _shrink(crop, WORKING_SIDE)
        # Polarity and background come from the whole image; the crop may be all ink.
        ink = _ink(work, invert=_light_background(gray))
        box = _bounding_box(ink)
    top, bottom, left, right = box
    return _fit_and_centre(ink[top:bottom, left:right])


def _shrink(gray: np.ndarray, side: int) -> tuple[np.ndarray, float]:
    scale = max(gray.shape) / side
    if scale <= 1:
        return gray, 1.0
    size = (max(1, round(gray.shape[1] / scale)), max(1, round(gray.shape[0] / scale)))
    small = Image.fromarray(gray.astype(np.float32), mode="F").resize(size, Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float32), scale


def _light_background(gray: np.ndarray) -> bool:
    """MNIST is light on dark; the border tells us which way round this image is."""
    h, w = gray.shape
    band = max(1, min(h, w) // 20)
    border = np.concatenate(
        [gray[:band].ravel(), gray[-band:].ravel(), gray[:, :band].ravel(), gray[:, -band:].ravel()]
    )
    return float(np.median(border)) > 0.5


def _ink(gray: np.ndarray, invert: bool | None = None) -> np.ndarray:
    """Ink strength in [0, 1] per pixel (0 = background), background light and noise removed."""
    if invert is None:
        invert = _light_background(gray)
    x = 1.0 - gray if invert else gray
    # Uneven lighting: the background is what remains after removing everything stroke-sized.
    size = max(3, min(x.shape) // 4)
    if min(x.shape) >= 48:
        background = ndimage.uniform_filter(ndimage.grey_opening(x, size=(size, size)), size=size // 2 + 1)
        x = np.clip(x - background, 0, 1)
    else:
        x = np.clip(x - np.median(x), 0, 1)
    peak = float(np.percentile(x, 99.5)) if x.size > 400 else float(x.max())
    if peak < MIN_CONTRAST:
        raise NotADigit("the image is blank: no ink stands out from the background")
    threshold = _otsu(x)
    strong = x > threshold
    ink_level = float(np.percentile(x[strong], 75)) if strong.any() else peak
    # Soft threshold: noise and background go to 0, stroke cores to 1, edges stay grey.
    low, high = threshold * 0.5, max(threshold * 0.5 + 1e-3, ink_level * 0.9)
    soft = np.clip((x - low) / (high - low), 0, 1)
    return _drop_specks(soft, strong)


def _otsu(x: np.ndarray) -> float:
    """The threshold that best separates the histogram into two classes (Otsu, 1979)."""
    hist, edges = np.histogram(x, bins=128, range=(0.0, 1.0))
    hist = hist.astype(np.float64)
    centres = (edges[:-1] + edges[1:]) / 2
    weight_low = np.cumsum(hist)
    weight_high = weight_low[-1] - weight_low
    mean_low = np.cumsum(hist * centres) / np.maximum(weight_low, 1)
    mean_high = (np.sum(hist * centres) - np.cumsum(hist * centres)) / np.maximum(weight_high, 1)
    between = weight_low * weight_high * (mean_low - mean_high) ** 2
    return float(centres[int(np.argmax(between))])


def _drop_specks(soft: np.ndarray, strong: np.ndarray) -> np.ndarray:
    """Keep only ink connected to sizeable strokes; isolated specks would skew the crop."""
    labels, count = ndimage.label(strong, structure=np.ones((3, 3)))
    if count == 0:
        raise NotADigit("the image is blank: no ink found")
    areas = ndimage.sum_labels(strong, labels, index=np.arange(1, count + 1))
    keep = areas >= max(2.0, 0.05 * areas.max())
    mask = keep[labels - 1] & (labels > 0)
    # Let anti-aliased edges around kept strokes through.
    mask = ndimage.binary_dilation(mask, iterations=2)
    return np.where(mask, soft, 0).astype(np.float32)


def _bounding_box(ink: np.ndarray) -> tuple[int, int, int, int]:
    rows = np.flatnonzero(ink.max(axis=1) > 0.05)
    cols = np.flatnonzero(ink.max(axis=0) > 0.05)
    if rows.size == 0:
        raise NotADigit("the image is blank: no ink found")
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def _fit_and_centre(digit: np.ndarray) -> np.ndarray:
    h, w = digit.shape
    scale = DIGIT_BOX / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    resample = Image.Resampling.BOX if scale < 1 else Image.Resampling.BILINEAR
    fitted = np.asarray(Image.fromarray(digit, mode="F").resize(size, resample), dtype=np.float32)
    fitted = np.clip(fitted / max(float(fitted.max()), 1e-6), 0, 1)
    canvas = np.zeros((CANVAS, CANVAS), dtype=np.float32)
    com_row, com_col = ndimage.center_of_mass(fitted)
    top = int(round(CENTRE[0] - com_row))
    left = int(round(CENTRE[1] - com_col))
    top = min(max(top, 0), CANVAS - fitted.shape[0])
    left = min(max(left, 0), CANVAS - fitted.shape[1])
    canvas[top : top + fitted.shape[0], left : left + fitted.shape[1]] = fitted
    return canvas


def to_png(image: np.ndarray) -> bytes:
    """A (28, 28) [0, 1] array as PNG bytes, exactly as the network sees it (light on dark)."""
    buffer = io.BytesIO()
    Image.fromarray(np.round(image * 255).astype(np.uint8), mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Show the 28x28 image the network will see.")
    parser.add_argument("image", type=Path)
    parser.add_argument("--show", type=Path, required=True, help="PNG to write (scaled up 10x for eyes)")
    args = parser.parse_args(argv)
    try:
        seen = preprocess(args.image.read_bytes())
    except (OSError, NotAnImage, NotADigit) as exc:
        print(f"{args.image}: {exc}", file=sys.stderr)
        return 1
    big = Image.fromarray(np.round(seen * 255).astype(np.uint8), mode="L").resize((280, 280), Image.Resampling.NEAREST)
    big.save(args.show)
    print(f"wrote {args.show}: the 28x28 input, shown 10x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
