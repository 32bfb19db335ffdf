"""MNIST digits rendered the way people send them: the evaluation's stand-in for real uploads.

Each rendering turns one 28x28 MNIST digit (light ink on black) into image file bytes, the same
bytes for the same (digit, rendering, seed). ``paper`` is the base: dark ink on light paper, the
digit scaled up and placed off-centre in a larger canvas (200x200 to 1000x800). The others add
one thing each to it; ``photo`` adds them all, as a phone photo of a page would.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageChops, ImageFilter

CANVAS_WIDTH = (200, 1000)
CANVAS_HEIGHT = (200, 800)
DIGIT_SHARE = (0.12, 0.6)  # the digit's 20-pixel box, as a share of the canvas's shorter side
MNIST_BOX = 20


def paper(digit: np.ndarray, rng: np.random.Generator) -> bytes:
    """Dark ink on slightly tinted white paper, off-centre in a larger canvas (PNG)."""
    return encode_png(_on_paper(digit, rng))


def blur(digit: np.ndarray, rng: np.random.Generator) -> bytes:
    """Paper, slightly out of focus: a Gaussian blur of 0.3-0.7 MNIST pixels (PNG)."""
    image, scale = _on_paper(digit, rng, with_scale=True)
    return encode_png(image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.7) * scale)))


def noise(digit: np.ndarray, rng: np.random.Generator) -> bytes:
    """Paper with sensor noise: Gaussian, 3-8 % of the full range per pixel (PNG)."""
    return encode_png(_noisy(_on_paper(digit, rng), rng))


def lighting(digit: np.ndarray, rng: np.random.Generator) -> bytes:
    """Paper lit unevenly: a gradient and a soft shadow, the darkest part at 40-70 % light (PNG)."""
    return encode_png(_unevenly_lit(_on_paper(digit, rng), rng))


def jpeg(digit: np.ndarray, rng: np.random.Generator) -> bytes:
    """Paper saved as a low-quality JPEG (quality 15-50)."""
    return encode_jpeg(_on_paper(digit, rng), int(rng.integers(15, 51)))


def rgba(digit: np.ndarray, rng: np.random.Generator) -> bytes:
    """A web-canvas drawing: dark strokes on a fully transparent background (RGBA PNG)."""
    strokes, place, _ = _placed(digit, rng)
    strokes = _canvas(strokes, place)
    ink = rng.integers(0, 60, size=3)
    pixels = np.zeros((*strokes.shape, 4), dtype=np.uint8)
    pixels[..., :3] = ink
    pixels[..., 3] = np.round(strokes * 255).astype(np.uint8)  # untouched pixels are (ink, alpha 0)
    return encode_png(Image.fromarray(pixels, mode="RGBA"))


def photo(digit: np.ndarray, rng: np.random.Generator) -> bytes:
    """A phone photo of the page: blur, uneven light, noise, then JPEG (quality 40-80)."""
    image, scale = _on_paper(digit, rng, with_scale=True)
    return encode_jpeg(photograph(image, scale, rng), int(rng.integers(40, 81)))


RENDERINGS: dict[str, Callable[[np.ndarray, np.random.Generator], bytes]] = {
    "paper": paper,
    "blur": blur,
    "noise": noise,
    "lighting": lighting,
    "jpeg": jpeg,
    "rgba": rgba,
    "photo": photo,
}


def render(digit: np.ndarray, rendering: str, index: int, seed: int = 0) -> bytes:
    """Image file bytes of one uint8 (28, 28) MNIST digit; deterministic in (index, rendering, seed)."""
    kind = list(RENDERINGS).index(rendering)
    return RENDERINGS[rendering](digit, np.random.default_rng([seed, kind, index]))


def page(digit: np.ndarray, width: int, height: int, seed: int = 0) -> Image.Image:
    """A photo of a page of the given size (RGB): the digit off-centre, blurred, unevenly lit, grainy."""
    rng = np.random.default_rng(seed)
    image, scale = _on_paper(digit, rng, with_scale=True, size=(width, height))
    return photograph(image, scale, rng)


def photograph(image: Image.Image, scale: float, rng: np.random.Generator) -> Image.Image:
    """A page as a phone sees it: out of focus by 0.3-0.7 of ``scale`` (pixels per MNIST pixel), unevenly lit,
    grainy."""
    image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.7) * scale))
    return _noisy(_unevenly_lit(image, rng), rng)


def _placed(
    digit: np.ndarray, rng: np.random.Generator, size: tuple[int, int] | None = None
) -> tuple[np.ndarray, tuple[int, int, int, int], float]:
    """The digit scaled up (ink strength in [0, 1]), where it goes in a canvas of ``size`` or a random
    one (top, left, height, width), and the scale."""
    width, height = size or (
        int(rng.integers(CANVAS_WIDTH[0], CANVAS_WIDTH[1] + 1)),
        int(rng.integers(CANVAS_HEIGHT[0], CANVAS_HEIGHT[1] + 1)),
    )
    scale = max(1.0, rng.uniform(*DIGIT_SHARE) * min(width, height) / MNIST_BOX)
    side = round(28 * scale)
    big = Image.fromarray(digit).resize((side, side), Image.Resampling.BICUBIC)
    top = int(rng.integers(0, height - side + 1))
    left = int(rng.integers(0, width - side + 1))
    return np.asarray(big, dtype=np.float32) / 255, (top, left, height, width), scale


def _canvas(strokes: np.ndarray, place: tuple[int, int, int, int]) -> np.ndarray:
    top, left, height, width = place
    canvas = np.zeros((height, width), dtype=np.float32)
    canvas[top : top + strokes.shape[0], left : left + strokes.shape[1]] = strokes
    return canvas


def _on_paper(digit: np.ndarray, rng: np.random.Generator, with_scale: bool = False, size=None):
    strokes, (top, left, height, width), scale = _placed(digit, rng, size)
    image = ink_on_paper(strokes, (top, left, height, width), rng)
    return (image, scale) if with_scale else image


def ink_on_paper(strokes: np.ndarray, place: tuple[int, int, int, int], rng: np.random.Generator) -> Image.Image:
    """Ink strengths (h, w) in [0, 1] as dark ink on slightly tinted white paper (RGB), at ``place``
    (top, left, canvas height, canvas width)."""
    top, left, height, width = place
    paper_colour = rng.uniform(215, 252, size=3)
    ink_colour = rng.uniform(0, 70, size=3)
    image = Image.new("RGB", (width, height), tuple(int(round(c)) for c in paper_colour))
    patch = paper_colour + strokes[..., None] * (ink_colour - paper_colour)
    image.paste(Image.fromarray(np.round(patch).astype(np.uint8), mode="RGB"), (left, top))
    return image


def _noisy(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    sigma = rng.uniform(0.03, 0.08) * 255
    grain = np.round(rng.standard_normal((image.height, image.width), dtype=np.float32) * sigma).astype(np.int16)
    noisy = np.asarray(image, dtype=np.int16) + grain[..., None]
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), mode="RGB")


def _unevenly_lit(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    # The light varies slowly: work it out on a 64x64 grid and stretch it over the image.
    rows, cols = np.mgrid[0:64, 0:64].astype(np.float32) / 63 - 0.5
    angle = rng.uniform(0, 2 * np.pi)
    gradient = np.cos(angle) * cols + np.sin(angle) * rows + 0.5  # 0 to 1 across the page, roughly
    centre = rng.uniform(-0.5, 0.5, size=2)
    shadow = np.exp(-((rows - centre[0]) ** 2 + (cols - centre[1]) ** 2) / (2 * rng.uniform(0.1, 0.3) ** 2))
    darkest = rng.uniform(0.4, 0.7)
    light = 1 - (1 - darkest) * np.clip(0.6 * gradient + 0.4 * shadow, 0, 1)
    field = Image.fromarray(np.round(light * 255).astype(np.uint8), mode="L").resize(image.size, Image.BILINEAR)
    return ImageChops.multiply(image, Image.merge("RGB", [field] * 3))


def encode_png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=0)  # stored: a rendering is about pixels, and speed
    return buffer.getvalue()


def encode_jpeg(image: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()
