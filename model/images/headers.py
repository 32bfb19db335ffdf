"""What an image file is, how big it is and what decoding it will cost, read from its own header
bytes with work bounded by constants, never by what the file declares: the web judges uploads
with this and never opens them with Pillow.

Pillow's ``Image.open`` walks structures the file sizes itself: a TIFF's strip table (a 1x2 TIFF
declaring 400,000 strips took 1.3 s and 100 MB), a JPEG's segments before its scan (thousands of
empty APP segments), a GIF's extension blocks before its first frame. Here every such walk stops
after a fixed number of steps, and a file that needs more is refused as :class:`TooComplex`; a
file that passes costs Pillow (in the worker, under its time budget) no more than those steps.

Formats read: PNG (IHDR), JPEG and MPO (the frame header, SOF), GIF (the logical screen and the
first frame's descriptor), BMP (the DIB header), WebP (VP8, VP8L, VP8X) and TIFF (the first
directory, its strip or tile table checked against the image's geometry).
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from model.images import png
from model.images.decode_cost import JPEG_DRAFT_SIDE, bytes_per_pixel

# Segments a JPEG may have before its scan: APP0/APP1 (EXIF, XMP), an ICC profile split over up to
# 255 APP2 chunks, MPF, tables and the frame header. Cameras write a few dozen at most.
MAX_JPEG_SEGMENTS = 512
MAX_JPEG_FILL_BYTES = 64  # 0xFF padding before one marker (the standard allows any; writers use none)
MAX_GIF_BLOCKS = 4096  # extension blocks and their sub-blocks before the first frame
MAX_TIFF_TAGS = 256  # entries in the first directory (writers use 10 to 40)
MAX_TIFF_STRIPS = 16384  # strips or tiles (Pillow writes about 64 KB a strip: 1 GB of pixels)

# Magic numbers of formats this service does not read, so a refusal can name them.
_OTHER_FORMATS = {
    b"P1": "PBM", b"P2": "PGM", b"P3": "PPM", b"P4": "PBM", b"P5": "PGM", b"P6": "PPM", b"P7": "PAM",
    b"8BPS": "PSD", b"\x00\x00\x01\x00": "ICO", b"qoif": "QOI", b"\xff\x0a": "JPEG XL",
    b"\x00\x00\x00\x0cjP  ": "JPEG 2000", b"II\x2b\x00": "BigTIFF", b"MM\x00\x2b": "BigTIFF",
}  # fmt: skip


class NotReadable(ValueError):
    """Not a well-formed image of a format read here (or cut short in its header)."""


class Unsupported(ValueError):
    """An image of a format this service does not read; ``args[0]`` names the format."""


class TooComplex(ValueError):
    """A header that would take more than the bounded work to walk; the message says which part."""


class Header(NamedTuple):  # one per image read: a NamedTuple costs half a frozen dataclass
    """An image as its header declares it: Pillow's format name, its size and Pillow's mode, and
    ``decoded_bytes``, what the workers' decoder will hold (after a JPEG's reduced decode)."""

    format: str
    width: int
    height: int
    mode: str
    decoded_bytes: int


def read_header(data: bytes) -> Header:
    """The header of ``data``; raises :class:`NotReadable`, :class:`Unsupported` or :class:`TooComplex`."""
    if data.startswith(png.SIGNATURE):
        found = png.header(data)
        if found is None:
            raise NotReadable("a damaged PNG header")
        width, height, mode = found
        return Header("PNG", width, height, mode, width * height * bytes_per_pixel(mode))
    if data.startswith(b"\xff\xd8\xff"):
        return _jpeg(data)
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return _gif(data)
    if data.startswith(b"BM"):
        return _bmp(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp(data)
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return _tiff(data)
    for magic, name in _OTHER_FORMATS.items():
        if data.startswith(magic):
            raise Unsupported(name)
    raise NotReadable("no image format this service reads")


def _unpack(fmt: str, data: bytes, offset: int) -> tuple:
    try:
        return struct.unpack_from(fmt, data, offset)
    except struct.error:
        raise NotReadable("cut short in its header") from None


def _sized(fmt: str, width: int, height: int, mode: str, decoded: int | None = None) -> Header:
    if width <= 0 or height <= 0:
        raise NotReadable(f"a {fmt} of {width}x{height} pixels")
    return Header(fmt, width, height, mode, width * height * bytes_per_pixel(mode) if decoded is None else decoded)


# --- JPEG -------------------------------------------------------------------------------------

_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # frame headers (not DHT, JPG, DAC)
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})  # markers without a length
_JPEG_MODES = {1: "L", 3: "RGB", 4: "CMYK"}


def _jpeg(data: bytes) -> Header:
    """Walk the segments from SOI to the scan (as Pillow's open does), at most MAX_JPEG_SEGMENTS."""
    position, frame, multi_picture = 2, None, False
    for _ in range(MAX_JPEG_SEGMENTS):
        fill = 0
        while position < len(data) and data[position] == 0xFF and fill <= MAX_JPEG_FILL_BYTES:
            position, fill = position + 1, fill + 1
        if fill == 0 or position >= len(data):
            raise NotReadable("a JPEG without a marker where one belongs")
        if fill > MAX_JPEG_FILL_BYTES:
            raise TooComplex(f"a JPEG with over {MAX_JPEG_FILL_BYTES} fill bytes before a marker")
        marker = data[position]
        position += 1
        if marker in _STANDALONE:
            continue
        (length,) = _unpack(">H", data, position)
        if length < 2:
            raise NotReadable("a JPEG segment shorter than its own length field")
        if marker == 0xDA:  # start of scan: Pillow's open stops here
            break
        if marker in _SOF:
            _, height, width, components = _unpack(">BHHB", data, position + 2)
            frame = (width, height, components)
        elif marker == 0xE2 and data[position + 2 : position + 6] == b"MPF\x00":
            multi_picture = True
        position += length
    else:
        raise TooComplex(f"a JPEG with over {MAX_JPEG_SEGMENTS} segments before its image data")
    if frame is None:
        raise NotReadable("a JPEG without a frame header")
    width, height, components = frame
    mode = _JPEG_MODES.get(components)
    if mode is None:
        raise NotReadable(f"a JPEG of {components} components")
    if width <= 0 or height <= 0:
        raise NotReadable(f"a JPEG of {width}x{height} pixels")
    # What decode_cost.reduce_on_decode asks of Pillow's draft(): a power-of-two fraction, and RGB as grey.
    scale = min(width // JPEG_DRAFT_SIDE, height // JPEG_DRAFT_SIDE)
    scale = next((s for s in (8, 4, 2) if scale >= s), 1)
    drafted = "L" if mode == "RGB" else mode
    decoded = -(-width // scale) * -(-height // scale) * bytes_per_pixel(drafted)
    return Header("MPO" if multi_picture else "JPEG", width, height, mode, decoded)


# --- GIF --------------------------------------------------------------------------------------


def _gif(data: bytes) -> Header:
    """The logical screen, widened to the first frame (as Pillow does), found within MAX_GIF_BLOCKS."""
    width, height, flags = _unpack("<HHB", data, 6)
    position = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)  # after the global colour table
    steps = 0
    while position < len(data):
        kind = data[position]
        if kind == 0x2C:  # the first frame's descriptor
            left, top, frame_width, frame_height = _unpack("<HHHH", data, position + 1)
            return _sized("GIF", max(width, left + frame_width), max(height, top + frame_height), "P")
        if kind != 0x21:  # the trailer (no frame at all) or garbage
            break
        position += 2  # an extension: its introducer and label, then sub-blocks up to one of length 0
        while position < len(data):
            steps += 1
            if steps > MAX_GIF_BLOCKS:
                raise TooComplex(f"a GIF with over {MAX_GIF_BLOCKS} blocks before its first frame")
            size = data[position]
            position += size + 1
            if size == 0:
                break
    raise NotReadable("a GIF without a frame")


# --- BMP --------------------------------------------------------------------------------------


def _bmp(data: bytes) -> Header:
    (header_size,) = _unpack("<I", data, 14)
    if header_size == 12:  # OS/2 1.x
        width, height, _, bits = _unpack("<HHHH", data, 18)
    elif header_size >= 40:
        width, height, _, bits = _unpack("<iiHH", data, 18)
        height = abs(height)  # negative: rows stored top-down
    else:
        raise NotReadable(f"a BMP with a {header_size}-byte header")
    mode = "P" if bits <= 8 else "RGB"
    return _sized("BMP", width, height, mode)


# --- WebP -------------------------------------------------------------------------------------


def _webp(data: bytes) -> Header:
    chunk = data[12:16]
    if chunk == b"VP8 ":  # lossy: a key frame's start code, then 14-bit sizes
        if data[23:26] != b"\x9d\x01\x2a":
            raise NotReadable("a WebP without a key frame")
        width, height = _unpack("<HH", data, 26)
        width, height = width & 0x3FFF, height & 0x3FFF
    elif chunk == b"VP8L":  # lossless: a signature byte, then 14 bits each of width - 1 and height - 1
        if data[20:21] != b"\x2f":
            raise NotReadable("a lossless WebP without its signature")
        (bits,) = _unpack("<I", data, 21)
        width, height = (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    elif chunk == b"VP8X":  # extended: a 24-bit canvas width - 1 and height - 1
        size = _unpack("<6B", data, 24)
        width = (size[0] | size[1] << 8 | size[2] << 16) + 1
        height = (size[3] | size[4] << 8 | size[5] << 16) + 1
    else:
        raise NotReadable("a WebP of an unknown kind")
    return _sized("WEBP", width, height, "RGBA")


# --- TIFF -------------------------------------------------------------------------------------

_TIFF_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 16: 8, 17: 8, 18: 8}
_WIDTH, _HEIGHT, _BITS, _SAMPLES, _ROWS_PER_STRIP = 256, 257, 258, 277, 278
_STRIP_OFFSETS, _STRIP_BYTES, _PLANAR = 273, 279, 284
_TILE_WIDTH, _TILE_HEIGHT, _TILE_OFFSETS, _TILE_BYTES = 322, 323, 324, 325


def _tiff(data: bytes) -> Header:
    """The first directory's geometry; its strip (or tile) table must be as long as the geometry
    says, and no longer than MAX_TIFF_STRIPS: Pillow's open walks that table in Python."""
    order = "<" if data[:2] == b"II" else ">"
    (offset,) = _unpack(order + "I", data, 4)
    (count,) = _unpack(order + "H", data, offset)
    if count > MAX_TIFF_TAGS:
        raise TooComplex(f"a TIFF with {count} tags in its first directory, over {MAX_TIFF_TAGS}")
    values: dict[int, int] = {}  # a tag's first value
    counts: dict[int, int] = {}
    for entry in range(count):
        tag, kind, n = _unpack(order + "HHI", data, offset + 2 + 12 * entry)
        size = _TIFF_TYPE_SIZES.get(kind)
        if size is None:
            raise NotReadable(f"a TIFF tag of unknown type {kind}")
        if n * size > len(data):
            raise NotReadable(f"a TIFF tag {tag} of {n} values, more than the file holds")
        counts[tag] = n
        if kind in (3, 4) and n >= 1:
            at = offset + 2 + 12 * entry + 8  # the value itself when it fits in 4 bytes, else where it is
            if n * size > 4:
                (at,) = _unpack(order + "I", data, at)
            (values[tag],) = _unpack(order + ("H" if kind == 3 else "I"), data, at)
    width, height = values.get(_WIDTH, 0), values.get(_HEIGHT, 0)
    if width <= 0 or height <= 0:
        raise NotReadable(f"a TIFF of {width}x{height} pixels")
    samples, bits = values.get(_SAMPLES, 1), values.get(_BITS, 1)
    planes = samples if values.get(_PLANAR, 1) == 2 else 1
    if _TILE_OFFSETS in counts:
        tile_width, tile_height = values.get(_TILE_WIDTH, 0), values.get(_TILE_HEIGHT, 0)
        if tile_width <= 0 or tile_height <= 0:
            raise NotReadable("a tiled TIFF without its tile size")
        expected = -(-width // tile_width) * -(-height // tile_height) * planes
        table, table_bytes = _TILE_OFFSETS, _TILE_BYTES
    else:
        rows = min(values.get(_ROWS_PER_STRIP, height) or height, height)
        expected = -(-height // rows) * planes
        table, table_bytes = _STRIP_OFFSETS, _STRIP_BYTES
    if counts.get(table) != expected or counts.get(table_bytes, expected) != expected:
        raise TooComplex(f"a TIFF whose strip table holds {counts.get(table)} entries where its size needs {expected}")
    if expected > MAX_TIFF_STRIPS:
        raise TooComplex(f"a TIFF of {expected} strips or tiles, over {MAX_TIFF_STRIPS}")
    mode = ("1" if bits == 1 else "L" if bits <= 8 else "I;16" if bits == 16 else "F") if samples == 1 else "RGB"
    return _sized("TIFF", width, height, mode)
