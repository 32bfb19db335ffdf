"""Preprocessing, one property at a time, on genuine MNIST digits turned into the files people send."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from model.images import preprocess as pre
from model.images.preprocess import NotADigit, NotAnImage, preprocess
from tests.conftest import png_bytes

SEVEN = 0  # index in the MNIST test set of a 7 (asymmetric: a rotation or a flip shows)


def encode(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Correlation of two 28x28 images, 1 for the same picture, near 0 for unrelated ones; the best
    over shifts of a pixel, since MNIST places a digit only to within half a pixel."""
    shifts = [np.roll(b, (dr, dc), axis=(0, 1)) for dr in (-1, 0, 1) for dc in (-1, 0, 1)]
    return max(float(np.corrcoef(a.ravel(), shifted.ravel())[0, 1]) for shifted in shifts)


def on_paper(digit: np.ndarray, size=(600, 450), at=(150, 260), scale: float = 6.0) -> np.ndarray:
    """The digit as dark ink (value 30) on white paper (235), scaled up and placed at ``at`` (row, col)."""
    side = round(28 * scale)
    big = np.asarray(Image.fromarray(digit).resize((side, side), Image.Resampling.BICUBIC), dtype=np.float32) / 255
    page = np.full((size[1], size[0]), 235.0, dtype=np.float32)
    page[at[0] : at[0] + side, at[1] : at[1] + side] -= big * (235 - 30)
    return page


def gray_png(pixels: np.ndarray) -> bytes:
    return encode(Image.fromarray(np.clip(np.round(pixels), 0, 255).astype(np.uint8), mode="L"))


@pytest.fixture(scope="module")
def seven(mnist) -> np.ndarray:
    assert mnist.y_test[SEVEN] == 7
    return mnist.x_test[SEVEN]


@pytest.fixture(scope="module")
def seven_seen(seven) -> np.ndarray:
    """What the network sees for the plain MNIST PNG: the reference the other files are compared with."""
    return preprocess(png_bytes(seven))


def test_mnist_digits_come_through_as_they_are(mnist):
    similarities = []
    for digit in mnist.x_test[:300]:
        seen = preprocess(png_bytes(digit))
        assert seen.shape == (28, 28) and seen.dtype == np.float32
        assert seen.min() >= 0 and seen.max() == pytest.approx(1.0)
        row, col = ndimage.center_of_mass(seen)
        assert 13.5 <= row <= 14.5 and 13.5 <= col <= 14.5  # as MNIST's own, within half a pixel
        similarities.append(similarity(seen, digit / 255))
    # A few faint-edged digits have a half-strength box under 20 pixels, and are scaled up a little.
    assert np.median(similarities) > 0.995 and np.mean(np.array(similarities) > 0.97) > 0.95
    assert min(similarities) > 0.85


def test_exif_orientation_is_applied(seven, seven_seen):
    upright = Image.fromarray(255 - seven).resize((140, 140), Image.Resampling.BICUBIC)
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # what a camera held sideways writes
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    with_tag = preprocess(encode(stored, "JPEG", quality=90, exif=exif.tobytes()))
    without_tag = preprocess(encode(stored, "JPEG", quality=90))
    assert similarity(with_tag, seven_seen) > 0.9
    assert similarity(without_tag, seven_seen) < 0.5


def test_transparent_canvas_drawing_is_read_as_ink_on_white(seven, seven_seen):
    # Canvas exports: the strokes' colour with their coverage in alpha; elsewhere (0, 0, 0, 0).
    for colour in [(0, 0, 0), (20, 40, 200), (255, 255, 255)]:
        pixels = np.zeros((28, 28, 4), dtype=np.uint8)
        pixels[..., :3] = colour
        pixels[..., 3] = seven
        big = Image.fromarray(pixels, mode="RGBA").resize((280, 280), Image.Resampling.BICUBIC)
        assert similarity(preprocess(encode(big)), seven_seen) > 0.9, colour


def test_alpha_flattening_puts_dark_ink_on_white_and_light_ink_on_black():
    dark = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
    dark.putpixel((5, 5), (0, 0, 0, 255))
    light = Image.new("RGBA", (40, 40), (255, 255, 255, 0))
    light.putpixel((5, 5), (255, 255, 255, 255))
    assert pre.decode(encode(dark)).getpixel((0, 0)) == 255
    assert pre.decode(encode(light)).getpixel((0, 0)) == 0


@pytest.mark.parametrize("mode", ["I;16", "P", "P+transparency", "CMYK", "1", "LA", "RGB"])
def test_every_image_mode_reads_the_same(seven, seven_seen, mode):
    ink_on_white = Image.fromarray(255 - seven).resize((112, 112), Image.Resampling.BICUBIC)
    if mode == "I;16":
        data = encode(Image.fromarray(np.asarray(ink_on_white, dtype=np.uint16) * 257))
        assert Image.open(io.BytesIO(data)).mode == "I;16"
    elif mode == "P+transparency":
        palette = ink_on_white.convert("P", palette=Image.Palette.ADAPTIVE)
        data = encode(palette, transparency=palette.getpixel((0, 0)))  # the paper is transparent
    elif mode == "CMYK":
        data = encode(ink_on_white.convert("CMYK"), "JPEG", quality=95)
    elif mode == "1":
        data = encode(ink_on_white.point(lambda v: 255 if v > 128 else 0).convert("1"), "TIFF")
    else:
        data = encode(ink_on_white.convert(mode))
    assert similarity(preprocess(data), seven_seen) > 0.9


def test_polarity_is_found_both_ways(mnist):
    for digit in mnist.x_test[:50]:
        light_on_dark = preprocess(png_bytes(digit))
        dark_on_light = preprocess(png_bytes(digit, invert=True))
        assert similarity(light_on_dark, dark_on_light) > 0.97


def test_a_dim_photo_of_white_paper_is_still_dark_ink_on_light(seven, seven_seen):
    # Underexposed: the paper is at 35 % grey, the ink at 5 %; both are "dark".
    page = on_paper(seven) * (90 / 235)
    assert similarity(preprocess(gray_png(page)), seven_seen) > 0.9


def test_uneven_lighting_and_noise_are_removed(seven, seven_seen):
    page = on_paper(seven)
    rows, cols = np.mgrid[0 : page.shape[0], 0 : page.shape[1]]
    light = 0.35 + 0.65 * (cols / page.shape[1]) * (0.5 + 0.5 * rows / page.shape[0])  # dark corner at 35 %
    grain = np.random.default_rng(0).normal(0, 12, page.shape)
    shaded = page * light + grain
    seen = preprocess(gray_png(shaded))
    assert similarity(seen, seven_seen) > 0.9
    # What the network sees has no trace of the shadow: the corners are black.
    assert max(seen[:4, :4].max(), seen[:4, -4:].max(), seen[-4:, :4].max(), seen[-4:, -4:].max()) == 0


def test_a_small_digit_off_centre_in_a_huge_photo(seven, seven_seen):
    page = on_paper(seven, size=(3000, 4000), at=(3100, 300), scale=5.0)  # a 100-pixel digit, bottom left
    for data in [gray_png(page), encode(Image.fromarray(page.astype(np.uint8)), "JPEG", quality=85)]:
        assert similarity(preprocess(data), seven_seen) > 0.9


def test_faint_pencil_on_a_grainy_scan_is_read(mnist):
    """Ink a quarter of the range from the paper, under grain of 3 %: it stands out from the noise
    many times over, though little from the paper (each used to be called blank)."""
    from model.rendering.degraded import degrade

    faint = [i for i in range(100) if preprocess_or_none(degrade(mnist.x_test[i], "low-contrast", i)) is None]
    assert faint == []
    grain = np.random.default_rng(2).normal(0, 0.03 * 255, (56, 56))
    page = np.full((56, 56), 0.85 * 255) - np.pad(mnist.x_test[SEVEN] * 0.25, 14) + grain
    assert similarity(preprocess(gray_png(page)), preprocess(png_bytes(mnist.x_test[SEVEN]))) > 0.85


def preprocess_or_none(data: bytes) -> np.ndarray | None:
    try:
        return preprocess(data)
    except NotADigit:
        return None


def test_dust_beside_the_strokes_is_removed(seven):
    """Specks of ink a pixel or two from the strokes, as dust on a scan lies: none of them reaches the
    network (they used to come through with the strokes' anti-aliased edges)."""
    clean = np.pad(seven, 14)
    ink = clean > 0
    near = ndimage.binary_dilation(ink, np.ones((5, 5))) & ~ndimage.binary_dilation(ink, np.ones((3, 3)))
    rows, cols = np.nonzero(near)
    dusty, placed = clean.copy(), np.zeros_like(ink)
    for r, c in zip(rows[::5], cols[::5], strict=True):
        if not placed[r - 1 : r + 2, c - 1 : c + 2].any():  # each speck alone, one pixel
            dusty[r, c], placed[r, c] = 255, True
    assert placed.sum() > 10
    seen, expected = preprocess(png_bytes(dusty)), preprocess(png_bytes(clean))
    assert np.abs(seen - expected).max() < 0.1


@pytest.mark.parametrize(
    "blank",
    [
        np.full((300, 400), 255.0),
        np.full((28, 28), 0.0),
        np.full((300, 400), 128.0),
        np.random.default_rng(1).normal(230, 12, (600, 800)),  # grainy empty paper
        np.linspace(90, 250, 800)[None, :].repeat(600, axis=0),  # unevenly lit empty paper
        np.pad(np.full((2, 2), 0.0), 300, constant_values=255),  # a speck of dust
    ],
    ids=["white", "black", "grey", "noise", "shadow", "speck"],
)
def test_a_blank_image_is_not_a_digit(blank):
    with pytest.raises(NotADigit):
        preprocess(gray_png(blank))


@pytest.mark.parametrize(
    "data",
    [b"", b"not an image at all" * 10, png_bytes(np.eye(28, dtype=np.uint8) * 255)[:50], bytes(range(256)) * 4],
    ids=["empty", "text", "truncated", "binary"],
)
def test_garbage_is_not_an_image(data):
    with pytest.raises(NotAnImage):
        preprocess(data)


def test_a_decompression_bomb_is_refused_before_decoding():
    bomb = encode(Image.new("1", (10_000, 5_000)))  # 50 megapixels in a few kilobytes
    assert len(bomb) < 100_000
    with pytest.raises(NotAnImage, match="over the limit"):
        preprocess(bomb, max_pixels=40_000_000)  # the service's default limit
    with pytest.raises(NotAnImage, match="over the limit"):
        preprocess(png_bytes(np.zeros((100, 100), np.uint8)), max_pixels=5_000)


def test_the_cli_shows_what_the_network_sees(tmp_path, seven):
    source, shown = tmp_path / "seven.png", tmp_path / "seen.png"
    source.write_bytes(png_bytes(seven, invert=True))
    assert pre.main([str(source), "--show", str(shown)]) == 0
    image = Image.open(shown)
    assert image.size == (280, 280)
    small = np.asarray(image.resize((28, 28), Image.Resampling.NEAREST), dtype=np.float32) / 255
    assert similarity(small, seven / 255) > 0.97
    blank = tmp_path / "blank.png"
    blank.write_bytes(png_bytes(np.full((28, 28), 255, np.uint8)))
    assert pre.main([str(blank), "--show", str(shown)]) == 1


def test_an_image_already_normalized_is_taken_as_it_is(mnist):
    digit = mnist.x_test[0]
    seen = preprocess(png_bytes(digit))
    assert np.allclose(seen, digit / digit.max(), atol=1e-6)  # not softened by a second normalisation
    shifted = np.roll(digit, (3, -2), axis=(0, 1))  # the same digit off-centre is normalised again
    assert pre.already_normalized(Image.fromarray(shifted)) is None
    com = ndimage.center_of_mass(preprocess(png_bytes(shifted)))
    assert abs(com[0] - 14) <= 0.5 and abs(com[1] - 14) <= 0.5


def test_most_mnist_digits_take_the_shortcut_and_agree_with_the_full_path(mnist):
    grays = [Image.fromarray(x) for x in mnist.x_test[:300]]
    shortcuts = [(g, pre.already_normalized(g)) for g in grays]
    taken = [(g, fast) for g, fast in shortcuts if fast is not None]
    assert len(taken) >= 0.9 * len(grays)
    differences = [np.abs(fast - pre.normalize(g)).mean() for g, fast in taken]
    assert np.mean(differences) < 0.01


@pytest.mark.parametrize("tone", [0, 128, 255])
def test_an_even_image_is_called_blank(tone):
    buffer = io.BytesIO()
    Image.new("L", (64, 64), tone).save(buffer, format="PNG")
    with pytest.raises(NotADigit, match="blank"):
        preprocess(buffer.getvalue())


def test_the_image_shown_back_is_a_png_of_exactly_what_the_network_saw(mnist):
    seen = preprocess(png_bytes(mnist.x_test[7], invert=True))
    shown = Image.open(io.BytesIO(pre.to_png(seen)))
    shown.load()  # Pillow checks every chunk's CRC
    assert shown.format == "PNG" and shown.mode == "L" and shown.size == (28, 28)
    assert np.array_equal(np.asarray(shown), np.round(seen * 255).astype(np.uint8))
