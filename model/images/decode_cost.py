"""What an image costs to decode, known from its header alone: the web refuses what the workers
would not decode, and both judge by the same rule."""

from __future__ import annotations

from PIL import Image

JPEG_DRAFT_SIDE = 512  # big JPEGs are decoded at a power-of-two fraction, no smaller than this
REDUCED_FORMATS = ("JPEG", "MPO")  # MPO: the multi-picture JPEG many cameras write


def bytes_per_pixel(mode: str) -> int:
    """Bytes Pillow holds per pixel of ``mode`` once decoded (multi-band modes take four)."""
    if mode in ("1", "L", "P"):
        return 1
    return 2 if mode.startswith("I;16") else 4


# Bytes per pixel reading an image holds at its peak beyond its decoded pixels, by how it is made
# gray (preprocess._to_gray): 16-bit and 32-bit images go through float32 arrays (the values, the
# division, the clip and the scaling live at once: 3 x 4) and back to 8 bits (1 + 1); transparent
# ones through RGBA (the converted image, a white and a black background and a composite: 4 x 4)
# and gray (1); gray and RGB images straight to gray (1); the rest (palette, CMYK, 1-bit) through
# an RGB copy (4) and gray (1). The small overview normalising works on is not counted.
WORKING_SET_PER_PIXEL = {"float": 14, "alpha": 17, "gray": 1, "other": 5}
ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


def working_set_bytes(width: int, height: int, mode: str, transparency: bool = False) -> int:
    """Bytes reading a ``width`` x ``height`` image of ``mode`` holds at its peak: its decoded
    pixels and the copies made to turn it gray (``transparency``: a palette or RGB image that
    has a transparent colour, read like one with alpha)."""
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        kind = "float"
    elif mode in ALPHA_MODES or transparency:
        kind = "alpha"
    elif mode in ("L", "RGB"):
        kind = "gray"
    else:
        kind = "other"
    return width * height * (bytes_per_pixel(mode) + WORKING_SET_PER_PIXEL[kind])


def reduce_on_decode(image: Image.Image) -> None:
    """Ask a JPEG to decode at a reduced size (a power-of-two fraction, no side under 512): the
    digit is found on an overview of about 320 x 320 pixels anyway. Other formats decode whole."""
    if image.format in REDUCED_FORMATS:
        image.draft("L" if image.mode == "RGB" else image.mode, (JPEG_DRAFT_SIDE, JPEG_DRAFT_SIDE))


def decoded_bytes(image: Image.Image) -> int:
    """Bytes the opened (not yet decoded) ``image`` will take in memory once decoded, after
    :func:`reduce_on_decode` (which this applies)."""
    reduce_on_decode(image)
    return image.width * image.height * bytes_per_pixel(image.mode)
