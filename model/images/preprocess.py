"""Turn any image of a handwritten digit into the 28x28 MNIST-style input the networks expect.

MNIST was made from binary scans: each digit's bounding box scaled to fit 20x20 (aspect kept,
anti-aliased by the scaling), then shifted by whole pixels so that its centre of mass lies in
the middle of 28x28 (measured on the test set: (14.0, 14.0) row/column, give or take half a
pixel). People send dark ink on paper, photos with uneven light and noise, transparent canvas
drawings, rotated JPEGs, small digits in big images. :func:`preprocess` redoes MNIST's steps on
all of them:

    decode (EXIF, alpha, any mode) -> grayscale -> find the digit on a small overview
    -> read it again from the original at a useful size -> polarity, lighting, noise -> ink
    -> fit the ink's box into 20x20 -> centre of mass to the centre of 28x28

    python -m model.images show photo.jpg --show seen.png
"""

from __future__ import annotations

import argparse
import io
import math
import sys
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps
from scipy import ndimage

from model.images import png
from model.images.decode_cost import reduce_on_decode, working_set_bytes

OVERVIEW_SIDE = 320  # the digit is looked for in an overview of at most this many pixels squared ...
DETAIL_SIDE = 96  # ... and, when smaller than half this there, read again from the original at this size
DIGIT_BOX = 20
CANVAS = 28
CENTRE = (14.0, 14.0)
MIN_CONTRAST = 0.12  # ink must stand out from the background by this much (and from its noise: ink_strength)
NOISY = 0.02  # background noise (standard deviation) above which the image is smoothed first
MIN_DIGIT_SHARE = 0.03  # a digit spans at least this share of the image's shorter side
# A 28x28 digit compresses to 120-380 bytes (MNIST's test set); an uncompressed one takes 880,
# which a result would carry in every record: such a file is shown as to_png makes it.
SHOWN_AS_SENT_BYTES = 512
MAX_BROKEN_PIECES = 6  # more small marks than this around a digit are dust, not pieces of its strokes


class NotAnImage(ValueError):
    """The bytes are not an image Pillow can decode, or the image is over the pixel limit."""


class NotADigit(ValueError):
    """The image decodes but holds no ink: blank, near-blank, or uniform."""


class TooCostly(ValueError):
    """The image would cost more to read than one image may (memory to decode it, or time)."""


def preprocess(data: bytes, max_pixels: int | None = None, max_decoded_bytes: int | None = None) -> np.ndarray:
    """Decode image bytes into a (28, 28) float32 array in [0, 1], light ink on black, MNIST-style.

    Raises :class:`NotAnImage` for undecodable input or input over ``max_pixels`` (None: only
    Pillow's own bound) and :class:`NotADigit` when there is no ink to read.
    """
    gray = decode(data, max_pixels, max_decoded_bytes)
    normalized = already_normalized(gray)
    return normalized if normalized is not None else normalize(gray)


def already_normalized(gray: Image.Image) -> np.ndarray | None:
    """The pixels of an image that already is what :func:`normalize` makes, else None.

    28x28, light ink on a black border, its half-strength box 20 pixels, its centre of mass in
    the middle: MNIST's own digits, and the output of this module. Normalising such an image again
    would only soften it a little, at ten times the cost of this check.
    """
    if gray.size != (CANVAS, CANVAS):
        return None
    return in_mnist_form(np.asarray(gray)[None])[0]


def in_mnist_form(grays: np.ndarray) -> list[np.ndarray | None]:
    """:func:`already_normalized` for a stack of (28, 28) uint8 images at once: per image, its
    (28, 28) float32 pixels in [0, 1] when it is already in MNIST's form, else None."""
    x = np.asarray(grays, dtype=np.uint8).reshape(-1, CANVAS, CANVAS)
    # Rows' and columns' sums as products with ones (numpy reduces a 28-pixel axis slowly: this
    # check cost 3.6 us an image that way, 1.5 so); exact, being whole numbers below 2 ** 24.
    f = x.astype(np.float32)
    peak = x.reshape(len(x), CANVAS * CANVAS).max(axis=1).astype(np.int64)
    half = ((peak + 1) // 2).astype(np.float32)[:, None, None]  # pixels at least half as bright as the brightest
    strong = (f >= half).astype(np.float32)
    rows, cols = strong @ _ONES > 0, _ONES @ strong > 0
    row_span = CANVAS - rows[:, ::-1].argmax(axis=1) - rows.argmax(axis=1)
    col_span = CANVAS - cols[:, ::-1].argmax(axis=1) - cols.argmax(axis=1)
    row_sums, col_sums = (f @ _ONES).astype(np.int64), (_ONES @ f).astype(np.int64)
    total = np.maximum(row_sums.sum(axis=1), 1)
    centred = (np.abs(row_sums @ _INDEX / total - CENTRE[0]) <= 0.5) & (
        np.abs(col_sums @ _INDEX / total - CENTRE[1]) <= 0.5
    )
    border = x[:, 0].any(axis=1) | x[:, -1].any(axis=1) | x[:, :, 0].any(axis=1) | x[:, :, -1].any(axis=1)
    taken = ~border & (peak >= 128) & (np.maximum(row_span, col_span) == DIGIT_BOX) & centred
    pixels = f / np.maximum(peak, 1).astype(np.float32)[:, None, None]
    return [pixels[i] if ok else None for i, ok in enumerate(taken)]


_INDEX = np.arange(CANVAS)
_ONES = np.ones(CANVAS, np.float32)


def decode(data: bytes, max_pixels: int | None = None, max_decoded_bytes: int | None = None) -> Image.Image:
    """Decode to an upright 8-bit grayscale ("L") image; transparent parts become background.

    Raises :class:`TooCostly` before decoding an image whose reading would hold more than
    ``max_decoded_bytes`` in memory (its pixels and the copies made to turn it gray), and
    :class:`NotAnImage` for one over ``max_pixels`` (None: no bound of ours, only Pillow's own;
    the service always gives both).
    """
    try:
        if plain := png.plain(data):  # the common case, without Pillow's plugin machinery
            _refuse_costly(plain.width, plain.height, plain.mode, max_pixels, max_decoded_bytes)
            size = (plain.width, plain.height)
            return _to_gray(Image.frombytes(plain.mode, size, plain.compressed, "zip", plain.mode))
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            reduce_on_decode(image)
            transparent = "transparency" in image.info
            _refuse_costly(image.width, image.height, image.mode, max_pixels, max_decoded_bytes, transparent)
            image.seek(0)  # animated images: the first frame
            image.load()
            return _to_gray(ImageOps.exif_transpose(image))
    except (NotAnImage, TooCostly):
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise NotAnImage(f"cannot decode image: {exc}") from exc


def _refuse_costly(
    width: int, height: int, mode: str, max_pixels: int | None, max_decoded_bytes: int | None, transparent: bool = False
) -> None:
    if max_pixels is not None and width * height > max_pixels:
        raise NotAnImage(f"image is {width}x{height}, over the limit of {max_pixels} pixels")
    needed = working_set_bytes(width, height, mode, transparent)
    if max_decoded_bytes is not None and needed > max_decoded_bytes:
        raise TooCostly(
            f"image is {width}x{height} {mode}: reading it holds {needed} bytes, over the limit of {max_decoded_bytes}"
        )


def _to_gray(image: Image.Image) -> Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        values = np.asarray(image, dtype=np.float32)
        high = 65535.0 if image.mode.startswith("I;16") or values.max() > 255 else 255.0
        return Image.fromarray(np.round(np.clip(values / high, 0, 1) * 255).astype(np.uint8), mode="L")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        return _flatten_alpha(image.convert("RGBA"))
    if image.mode == "L":
        return image  # decoded afresh for this call: converting would only copy it
    if image.mode != "RGB":
        image = image.convert("RGB")  # CMYK, YCbCr, palette, 1-bit...
    return image.convert("L")


def _flatten_alpha(rgba: Image.Image) -> Image.Image:
    """Put the image on white; if that leaves nothing to see (light strokes on transparency), on black."""
    on_white = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("L")
    darkest, lightest = on_white.getextrema()
    if lightest - darkest >= MIN_CONTRAST * 255 or rgba.getchannel("A").getextrema()[0] == 255:
        return on_white
    return Image.alpha_composite(Image.new("RGBA", rgba.size, (0, 0, 0, 255)), rgba).convert("L")


def normalize(gray: Image.Image) -> np.ndarray:
    """An upright grayscale image of any size -> MNIST-style (28, 28) float32; raises NotADigit if blank."""
    factor = reduction(math.sqrt(gray.width * gray.height), OVERVIEW_SIDE)  # by area: long, thin pages too
    overview = reduced_pixels(gray, factor)
    light = light_background(overview)
    ink, box = _ink(overview, light, min_side=MIN_DIGIT_SHARE * min(overview.shape))
    digit_side = max(box[1] - box[0], box[3] - box[2]) * factor
    detail = reduction(digit_side, DETAIL_SIDE)
    if factor > 1 and digit_side < DETAIL_SIDE // 2 * factor:
        # A small digit in a big image: read it again, at a useful resolution, from the original.
        margin = digit_side // 2 + factor
        top, bottom, left, right = (v * factor for v in box)
        region = (max(0, left - margin), max(0, top - margin), min(gray.width, right + margin),
                  min(gray.height, bottom + margin))  # fmt: skip
        ink, box = _ink(reduced_pixels(gray.crop(region), detail), light, min_side=0)
    return fit_and_centre(ink, box)


def reduction(side: float, target: int) -> int:
    """The whole-number factor that shrinks ``side`` pixels to at most ``target`` (1: no shrinking)."""
    return max(1, math.ceil(side / target))


def reduced_pixels(gray: Image.Image, factor: int) -> np.ndarray:
    """Grayscale in [0, 1], averaged over factor x factor blocks."""
    small = gray.reduce(factor) if factor > 1 else gray
    return np.asarray(small, dtype=np.float32) / 255.0


def light_background(gray: np.ndarray) -> bool:
    """MNIST is light on dark. The border shows the background: is it nearer the light end or the dark?"""
    h, w = gray.shape
    band = max(1, min(h, w) // 20)
    border = np.concatenate(
        [gray[:band].ravel(), gray[-band:].ravel(), gray[:, :band].ravel(), gray[:, -band:].ravel()]
    )
    background = float(np.median(border))
    return float(gray.max()) - background < background - float(gray.min())


def _ink(gray: np.ndarray, light_background: bool, min_side: float) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Ink strength in [0, 1] (background, its light and noise removed) and the digit's box.

    The box (top, bottom, left, right) bounds where the ink is at least half strength: the
    binary digit MNIST scaled to 20x20. Only strokes of a sizeable size count; specks are dropped.
    """
    return _strokes(ink_strength(gray, light_background), max(min_side, 2.0))


def ink_strength(gray: np.ndarray, light_background: bool) -> np.ndarray:
    """Ink strength in [0, 1] of every pixel: background, its light and noise removed; stroke cores 1.

    Raises :class:`NotADigit` when no ink stands out. Every stroke and speck is still there.
    """
    x = 1.0 - gray if light_background else gray
    background = _background(x)
    x = x - background
    if light_background:
        x /= np.maximum(1.0 - background, 0.1)  # paper in shadow: ink contrast is relative to the light
    middle, noise = _level_and_noise(x)
    if noise > NOISY:
        # Grainy (a dim photo): smooth at about a stroke's width before deciding what is ink.
        x = ndimage.gaussian_filter(x, 1.0)
        middle, noise = _level_and_noise(x)
    low = middle + max(4 * noise, 0.02)  # above the noise, whatever share of the image the ink has
    # Stroke cores: Otsu's split, but never below halfway to the peak (a tiny digit barely moves Otsu).
    strong = x > max(_otsu(x), (low + float(x.max())) / 2)
    if not strong.any():
        raise NotADigit("the image is blank: one even tone, no ink stands out")
    high = float(np.median(x[strong]))
    # Faint pencil on a grainy scan stands out from the paper by little but from its noise by much:
    # ink must clear the background by MIN_CONTRAST and the noise's 4-sigma band by two sigma more.
    if high - middle < MIN_CONTRAST or high - low < 2 * noise:
        raise NotADigit("the image is blank: no ink stands out from the background")
    # Soft threshold: background and noise to 0, stroke cores to 1, edges stay grey.
    return np.clip((x - low) / (high - low), 0, 1).astype(np.float32)


def _level_and_noise(x: np.ndarray) -> tuple[float, float]:
    """The background's level and its noise (standard deviation), robustly: most pixels are background."""
    middle = float(np.median(x))
    return middle, 1.4826 * float(np.median(np.abs(x - middle)))


def _background(x: np.ndarray) -> np.ndarray:
    """What remains after removing everything stroke-sized: paper texture and uneven light."""
    if min(x.shape) < 48:
        return np.full_like(x, np.median(x))
    size = min(x.shape) // 4  # wider than any stroke of a digit that fits the image
    step = max(1, size // 6)  # worked out on a coarse grid, then smoothly interpolated back
    coarse = np.asarray(Image.fromarray(x, mode="F").reduce(step), dtype=np.float32)
    coarse = ndimage.uniform_filter(ndimage.grey_opening(coarse, size=size // step), size=3, mode="nearest")
    return np.asarray(Image.fromarray(coarse, mode="F").resize(x.shape[::-1], Image.Resampling.BILINEAR))


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


def _strokes(soft: np.ndarray, min_side: float) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Keep the largest stroke and sizeable strokes near it; specks and far-off marks would skew the crop."""
    labels, count = ndimage.label(soft >= 0.5, structure=np.ones((3, 3)))
    if count == 0:
        raise NotADigit("the image is blank: no ink found")
    areas = np.bincount(labels.ravel())[1:]
    boxes = ndimage.find_objects(labels)
    main = boxes[int(np.argmax(areas))]
    reach = max(main[0].stop - main[0].start, main[1].stop - main[1].start)  # a digit's parts are near each other
    near = np.array([_overlaps(box, main, reach) for box in boxes])
    keep = near & (areas >= max(2.0, 0.05 * areas.max()))
    if not keep.any():
        raise NotADigit("the image is blank: only specks")
    mask = np.concatenate([[False], keep])[labels]
    # Dust (many specks, some beside the strokes) stays dropped when the strokes' edges are let
    # through below; a few small pieces are more likely a thin stroke broken by the scan.
    specks = np.flatnonzero(~keep) + 1
    dropped = np.isin(labels, specks) if len(specks) > MAX_BROKEN_PIECES else np.zeros_like(mask)
    rows_kept, cols_kept = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    top, bottom = int(rows_kept[0]), int(rows_kept[-1]) + 1
    left, right = int(cols_kept[0]), int(cols_kept[-1]) + 1
    if max(bottom - top, right - left) < min_side:
        raise NotADigit("the image is blank: only specks, nothing digit-sized")
    # Let the anti-aliased edges around kept strokes through.
    mask = ndimage.maximum_filter(mask.view(np.uint8), size=5).astype(bool) & ~dropped
    return np.where(mask, soft, 0).astype(np.float32), (top, bottom, left, right)


def _overlaps(box: tuple[slice, slice], main: tuple[slice, slice], reach: int) -> bool:
    """Whether ``box`` overlaps ``main`` grown by ``reach`` on every side."""
    return all(b.start < m.stop + reach and b.stop > m.start - reach for b, m in zip(box, main, strict=True))


def fit_and_centre(ink: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """Scale so the box fits 20x20 and shift by whole output pixels to put the centre of mass at CENTRE."""
    top, bottom, left, right = box
    scale = DIGIT_BOX / max(bottom - top, right - left)
    com_row, com_col = ndimage.center_of_mass(ink)
    # Output pixel r samples the source at row origin + r / scale (in pixel-edge coordinates); the
    # origin puts the centre of mass at CENTRE, give or take half an output pixel, as MNIST did.
    origin_row = top + round((com_row + 0.5 - (CENTRE[0] + 0.5) / scale - top) * scale) / scale
    origin_col = left + round((com_col + 0.5 - (CENTRE[1] + 0.5) / scale - left) * scale) / scale
    span = CANVAS / scale
    row0, col0 = math.floor(origin_row), math.floor(origin_col)
    window = _window(ink, row0, col0, math.ceil(origin_row + span) - row0, math.ceil(origin_col + span) - col0)
    resample = Image.Resampling.BOX if scale < 1 else Image.Resampling.BILINEAR
    source = (origin_col - col0, origin_row - row0, origin_col - col0 + span, origin_row - row0 + span)
    fitted = Image.fromarray(window, mode="F").resize((CANVAS, CANVAS), resample, box=source)
    fitted = np.clip(np.asarray(fitted, dtype=np.float32), 0, 1)
    return fitted / max(float(fitted.max()), 1e-6)


def _window(image: np.ndarray, top: int, left: int, height: int, width: int) -> np.ndarray:
    """image[top:top+height, left:left+width], zero where the window goes past the edges."""
    window = np.zeros((height, width), dtype=np.float32)
    src_top, src_left = max(top, 0), max(left, 0)
    src_bottom, src_right = min(top + height, image.shape[0]), min(left + width, image.shape[1])
    if src_bottom > src_top and src_right > src_left:
        window[src_top - top : src_bottom - top, src_left - left : src_right - left] = image[
            src_top:src_bottom, src_left:src_right
        ]
    return window


def shown_as_sent(data: bytes) -> bool:
    """Whether an image file that :func:`in_mnist_form` passed as it is can stand for the input the
    network saw: a bare 8-bit gray 28x28 PNG (its pixels and nothing a viewer would apply to them)
    no larger than a compressed digit, which :func:`to_png` would only make again."""
    if len(data) > SHOWN_AS_SENT_BYTES:
        return False
    plain = png.plain(data)
    return plain is not None and plain.bare and plain.mode == "L" and plain.width == plain.height == CANVAS


def to_png(image: np.ndarray) -> bytes:
    """A (28, 28) [0, 1] array as PNG bytes, exactly as the network sees it (light on dark)."""
    return to_pngs(np.asarray(image)[None])[0]


def to_pngs(images: np.ndarray) -> list[bytes]:
    """:func:`to_png` of each image of an (N, 28, 28) stack (the per-pixel work done at once)."""
    return png.gray_files(np.round(np.asarray(images) * 255).astype(np.uint8))


def main(argv: list[str] | None = None, mnist_dir: str = "") -> int:
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
