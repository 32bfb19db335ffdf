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


def augment_batch(images: tf.Tensor) -> tf.Tensor:
    """Return a randomly distorted copy of a batch: affine jitter, stroke width, blur, low resolution."""
    images = _random_affine(images)
    images = _random_thickness(images)
    images = _random_blur(images)
    images = _random_low_resolution(images)
    return tf.clip_by_value(images, 0.0, 1.0)


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


def _random_thickness(images: tf.Tensor) -> tf.Tensor:
    """Blend towards a dilated (thicker) or eroded (thinner) stroke by a random amount."""
    n = tf.shape(images)[0]
    thicker = tf.nn.max_pool2d(images, 3, 1, "SAME")
    thinner = -tf.nn.max_pool2d(-images, 2, 1, "SAME")
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
    blurred = tf.nn.conv2d(images, _gaussian_kernel(0.9), 1, "SAME")
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
