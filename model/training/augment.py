"""Training-time augmentation: the ways real digits differ from MNIST after preprocessing.

Works on whole batches inside the tf.data pipeline: (N, 28, 28, 1) float32 in [0, 1].
"""

from __future__ import annotations

import math

import tensorflow as tf

MAX_ROTATION_DEG = 12.0
SCALE_RANGE = (0.88, 1.12)
MAX_SHIFT_PX = 2.5
MAX_SHEAR = 0.15
P_THICKNESS = 0.4
P_BLUR = 0.2
P_LOW_RES = 0.2


def augment_batch(images: tf.Tensor, scan_share: float = 0.0) -> tf.Tensor:
    """Return a randomly distorted copy of a batch: affine jitter, stroke width, blur, low resolution;
    and, for ``scan_share`` of the images, one more of the ways scans degrade digits (see
    :func:`scan_degradations`)."""
    images = _random_affine(images)
    images = _random_thickness(images)
    images = _random_blur(images)
    images = _random_low_resolution(images)
    if scan_share:
        images = scan_degradations(images, scan_share)
    return tf.clip_by_value(images, 0.0, 1.0)


# Scan degradations: what real scans and photos do to handwriting beyond the jitter above. Their
# parameters are drawn from ranges of their own, not the robustness suite's (model/rendering/degraded.py),
# so that the suite measures what they teach rather than repeats it.
SCAN_SHEAR = 0.55
ELASTIC_PX = 2.5  # the largest displacement of the elastic field, in pixels
ELASTIC_GRID = 5  # control points per side of the smooth field
SPECKS = 0.05  # the largest share of pixels turned to ink specks
BILEVEL_SHARE = 0.5  # blocky digits whose pixels are each ink or paper


def scan_degradations(images: tf.Tensor, share: float) -> tf.Tensor:
    """For ``share`` of the images, one of: a strong slant, a broad or a fine pen, an elastic
    distortion, specks of ink, a blocky low-resolution copy, or thin even strokes."""
    n = tf.shape(images)[0]
    kinds = [_slant, _broad_pen, _fine_pen, _elastic, _specks, _blocky, _even_strokes]
    choice = tf.random.uniform([n], 0, len(kinds), dtype=tf.int32)
    chosen = tf.random.uniform([n]) < share
    out = images
    for k, degrade in enumerate(kinds):
        mask = tf.reshape(tf.cast(chosen & (choice == k), tf.float32), [-1, 1, 1, 1])
        out = mask * degrade(images) + (1 - mask) * out
    return out


def _transform(images: tf.Tensor, transforms: tf.Tensor) -> tf.Tensor:
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=transforms, output_shape=tf.shape(images)[1:3], fill_value=0.0,
        interpolation="BILINEAR", fill_mode="CONSTANT",
    )  # fmt: skip


def _slant(images: tf.Tensor) -> tf.Tensor:
    n = tf.shape(images)[0]
    shear = _uniform(n, -SCAN_SHEAR, SCAN_SHEAR)
    ones, zeros = tf.ones_like(shear), tf.zeros_like(shear)
    # Input column = output column + shear * (row - centre): rows above the centre lean the other way.
    transforms = tf.stack([ones, shear, -shear * 13.5, zeros, ones, zeros, zeros, zeros], axis=1)
    return _transform(images, transforms)


def _broad_pen(images: tf.Tensor) -> tf.Tensor:
    broader = _per_image(tf.shape(images)[0], 0.5)
    return broader * _dilated(images, 5) + (1 - broader) * _dilated(images, 3)


def _fine_pen(images: tf.Tensor) -> tf.Tensor:
    thinner = _eroded(images, 2)
    return thinner / tf.maximum(tf.reduce_max(thinner, axis=[1, 2, 3], keepdims=True), 0.3)


def _elastic(images: tf.Tensor) -> tf.Tensor:
    n = tf.shape(images)[0]
    coarse = tf.random.uniform([n, ELASTIC_GRID, ELASTIC_GRID, 2], -ELASTIC_PX, ELASTIC_PX)
    field = tf.image.resize(coarse, [28, 28], method="bicubic")
    rows, cols = tf.meshgrid(tf.range(28.0), tf.range(28.0), indexing="ij")
    return _sample(images, rows[None] + field[..., 0], cols[None] + field[..., 1])


def _sample(images: tf.Tensor, rows: tf.Tensor, cols: tf.Tensor) -> tf.Tensor:
    """Bilinear samples of (N, 28, 28, 1) ``images`` at (N, 28, 28) positions; black outside."""
    padded = tf.pad(images[..., 0], [[0, 0], [1, 1], [1, 1]])
    rows, cols = tf.clip_by_value(rows + 1, 0, 28.999), tf.clip_by_value(cols + 1, 0, 28.999)
    r0, c0 = tf.floor(rows), tf.floor(cols)
    fr, fc = rows - r0, cols - c0
    r0, c0 = tf.cast(r0, tf.int32), tf.cast(c0, tf.int32)
    batch = tf.broadcast_to(tf.range(tf.shape(images)[0])[:, None, None], tf.shape(r0))

    def at(r, c):
        return tf.gather_nd(padded, tf.stack([batch, r, c], axis=-1))

    top = at(r0, c0) * (1 - fc) + at(r0, c0 + 1) * fc
    bottom = at(r0 + 1, c0) * (1 - fc) + at(r0 + 1, c0 + 1) * fc
    return (top * (1 - fr) + bottom * fr)[..., None]


def _specks(images: tf.Tensor) -> tf.Tensor:
    n = tf.shape(images)[0]
    rate = tf.reshape(_uniform(n, 0.005, SPECKS), [-1, 1, 1, 1])
    return tf.where(tf.random.uniform(tf.shape(images)) < rate, 1.0, images)


def _blocky(images: tf.Tensor) -> tf.Tensor:
    """A coarse scan: reduced to 9-16 pixels and enlarged by repeating pixels; for BILEVEL_SHARE of
    the images each pixel also ink or paper (a black-and-white scanner), then softened a little as
    preprocessing's rescaling softens such a scan."""
    size = tf.random.uniform([], 9, 17, dtype=tf.int32)
    small = tf.image.resize(images, [size, size], method="area")
    blocks = tf.image.resize(small, [28, 28], method="nearest")
    bilevel = _stacked(lambda x: tf.nn.avg_pool2d(x, 2, 1, "SAME"), tf.cast(blocks >= 0.5, tf.float32))
    chosen = _per_image(tf.shape(images)[0], BILEVEL_SHARE)
    return chosen * bilevel + (1 - chosen) * blocks


def _even_strokes(images: tf.Tensor) -> tf.Tensor:
    """Strokes of one strength with even, soft edges, as a canvas pen draws: the strokes' cores
    (the darkest of each 2x2 at least half strength), grown back by a pixel and softened."""
    cores = tf.cast(_eroded(images, 2) > 0.5, tf.float32)
    return _stacked(lambda x: tf.nn.avg_pool2d(x, 2, 1, "SAME"), _dilated(cores, 2))


def _uniform(n: tf.Tensor, low: float, high: float) -> tf.Tensor:
    return tf.random.uniform([n], low, high)


def _random_affine(images: tf.Tensor) -> tf.Tensor:
    n = tf.shape(images)[0]
    angle = _uniform(n, -1.0, 1.0) * (MAX_ROTATION_DEG * math.pi / 180)
    scale = _uniform(n, *SCALE_RANGE)
    shear = _uniform(n, -MAX_SHEAR, MAX_SHEAR)
    dx = _uniform(n, -MAX_SHIFT_PX, MAX_SHIFT_PX)
    dy = _uniform(n, -MAX_SHIFT_PX, MAX_SHIFT_PX)
    # Output->input mapping about the image centre: p_in = A^-1 (p_out - c - d) + c.
    cos, sin = tf.cos(angle) / scale, tf.sin(angle) / scale
    a0, a1 = cos, sin + shear * cos
    b0, b1 = -sin, cos - shear * sin
    c = 13.5
    a2 = c - a0 * (c + dx) - a1 * (c + dy)
    b2 = c - b0 * (c + dx) - b1 * (c + dy)
    zeros = tf.zeros_like(a0)
    transforms = tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=transforms,
        output_shape=tf.shape(images)[1:3],
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="CONSTANT",
    )


def _per_image(n: tf.Tensor, probability: float) -> tf.Tensor:
    return tf.reshape(tf.cast(tf.random.uniform([n]) < probability, tf.float32), [-1, 1, 1, 1])


def _stacked(operation, images: tf.Tensor) -> tf.Tensor:
    """``operation`` on (N, 28, 28, 1) ``images`` run as one image of N channels: the same result,
    5-7 times faster (oneDNN's pooling and convolution on one channel do not vectorise)."""
    return tf.transpose(operation(tf.transpose(images, [3, 1, 2, 0])), [3, 1, 2, 0])


def _dilated(images: tf.Tensor, size: int) -> tf.Tensor:
    return _stacked(lambda x: tf.nn.max_pool2d(x, size, 1, "SAME"), images)


def _eroded(images: tf.Tensor, size: int) -> tf.Tensor:
    return -_dilated(-images, size)


def _random_thickness(images: tf.Tensor) -> tf.Tensor:
    """Blend towards a dilated (thicker) or eroded (thinner) stroke by a random amount."""
    n = tf.shape(images)[0]
    thicker = _dilated(images, 3)
    thinner = _eroded(images, 2)
    amount = tf.reshape(_uniform(n, -0.7, 0.7), [-1, 1, 1, 1]) * _per_image(n, P_THICKNESS)
    target = tf.where(amount > 0, thicker, thinner)
    return images + tf.abs(amount) * (target - images)


def _gaussian_kernel(sigma: float) -> tf.Tensor:
    x = tf.range(-2.0, 3.0)
    k = tf.exp(-(x**2) / (2 * sigma**2))
    k = k / tf.reduce_sum(k)
    return tf.reshape(k[:, None] * k[None, :], [5, 5, 1, 1])


def _random_blur(images: tf.Tensor) -> tf.Tensor:
    n = tf.shape(images)[0]
    kernel = _gaussian_kernel(0.9)
    blurred = _stacked(
        lambda x: tf.nn.depthwise_conv2d(x, tf.tile(kernel, [1, 1, tf.shape(x)[3], 1]), [1, 1, 1, 1], "SAME"), images
    )
    mask = _per_image(n, P_BLUR)
    return mask * blurred + (1 - mask) * images


def _random_low_resolution(images: tf.Tensor) -> tf.Tensor:
    """Simulate a digit scanned small and upscaled: down to 10-16 px and back up."""
    n = tf.shape(images)[0]
    size = tf.random.uniform([], 10, 17, dtype=tf.int32)
    small = tf.image.resize(images, [size, size], method="area")
    coarse = tf.image.resize(small, [28, 28], method="bilinear")
    mask = _per_image(n, P_LOW_RES)
    return mask * coarse + (1 - mask) * images
