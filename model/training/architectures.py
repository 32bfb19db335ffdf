"""The networks, by name. Each is a plain list of layers so the architecture reads at a glance.

Input: (N, 28, 28, 1) float32 in [0, 1], MNIST-style (light ink on black).
Output: (N, 10) class probabilities.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from pathlib import Path

import keras
import tensorflow as tf
from keras import layers

INPUT_SHAPE = (28, 28, 1)
NUM_CLASSES = 10
# CPU features that multiply bfloat16 natively (Intel AMX, AVX-512 BF16), as /proc/cpuinfo names them.
NATIVE_BFLOAT16 = frozenset({"amx_bf16", "avx512_bf16"})


def training_dtype(cpu_flags: frozenset[str] | None = None, bfloat16_faster: Callable[[], bool] | None = None) -> str:
    """The Keras dtype policy a network trains in on a CPU with ``cpu_flags`` (default: this one's).

    "mixed_bfloat16" (float32 weights) where the CPU multiplies bfloat16 natively *and* TensorFlow's
    kernels use it (``bfloat16_faster``, default :func:`bfloat16_kernels_faster`): a training step
    about 2x faster than float32 there. Elsewhere "float32": emulated bfloat16 is far slower
    (measured on an AVX2-only EPYC, a step of ``default`` on 160 images: 2.24 s against 0.23 s in
    float32), and so it is on an AMX machine whose oneDNN is held to AVX2 (ONEDNN_MAX_CPU_ISA=AVX2)
    or turned off, which /proc/cpuinfo does not show. Either way a trained network is rebuilt in
    float32 for serving (see ``build``).
    """
    flags = _cpu_flags() if cpu_flags is None else cpu_flags
    if not flags & NATIVE_BFLOAT16:
        return "float32"
    return "mixed_bfloat16" if (bfloat16_faster or bfloat16_kernels_faster)() else "float32"


@functools.cache
def bfloat16_kernels_faster() -> bool:
    """Whether this process's TensorFlow computes a convolution's training step (forward and both
    gradients, a layer of ``default`` on 32 images) faster in bfloat16 than in float32: what the
    kernels can use, not what the CPU advertises (no, where they cannot make a bfloat16 convolution
    at all). Asked once per process; a few hundredths of a second where bfloat16 is native, a
    second or two where it is emulated (the second call decides)."""
    images = tf.random.stateless_uniform((32, 14, 14, 64), seed=(0, 0))
    kernel = tf.random.stateless_uniform((3, 3, 64, 64), seed=(0, 1))

    def step(dtype: str) -> float:
        x, w = tf.cast(images, dtype), tf.cast(kernel, dtype)
        started = time.perf_counter()
        with tf.GradientTape() as tape:
            tape.watch([x, w])
            loss = tf.reduce_sum(tf.nn.conv2d(x, w, 1, "SAME"))
        for gradient in tape.gradient(loss, [x, w]):
            gradient.numpy()
        return time.perf_counter() - started

    step("float32")  # the first call of each builds its kernels
    float32 = min(step("float32") for _ in range(3))
    try:
        step("bfloat16")
        return step("bfloat16") < float32
    except tf.errors.OpError:  # oneDNN has no bfloat16 convolution here (an AMX CPU held to AVX2)
        return False


@functools.cache
def _cpu_flags() -> frozenset[str]:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:  # not Linux: no claim of native bfloat16
        return frozenset()
    return next((frozenset(line.split(":", 1)[1].split()) for line in lines if line.startswith("flags")), frozenset())


class TrainingBatchNormalization(layers.BatchNormalization):
    """Batch norm whose training step is TensorFlow's fused kernel: half the cost of a training step
    of ``default`` here (Keras composes it from several operations). Inference is the parent's."""

    def call(self, inputs, training=None, mask=None):
        if not (training and self.trainable) or self.axis not in (-1, len(inputs.shape) - 1):
            return super().call(inputs, training=training, mask=mask)
        outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            inputs, tf.cast(self.gamma, "float32"), tf.cast(self.beta, "float32"), epsilon=self.epsilon
        )[:3]
        for moving, batch in ((self.moving_mean, mean), (self.moving_variance, variance)):
            moving.assign(moving * self.momentum + tf.cast(batch, moving.dtype) * (1 - self.momentum))
        return outputs


def seed(training: bool = False) -> keras.Model:
    """The network of the notebook this project grew from (about 98.5-99 % on MNIST)."""
    dtype = training_dtype() if training else None
    return keras.Sequential(
        [
            keras.Input(INPUT_SHAPE),
            layers.Conv2D(64, 3, activation="relu", dtype=dtype),
            layers.Conv2D(32, 3, activation="relu", dtype=dtype),
            layers.MaxPooling2D(2, dtype=dtype),
            layers.Flatten(dtype=dtype),
            layers.Dense(NUM_CLASSES, activation="softmax", dtype="float32"),
        ],
        name="seed",
    )


def _conv_bn_relu(filters: int, training: bool) -> list[keras.Layer]:
    dtype = training_dtype() if training else None
    norm = TrainingBatchNormalization if training else layers.BatchNormalization
    return [
        layers.Conv2D(filters, 3, padding="same", use_bias=False, dtype=dtype),
        norm(momentum=0.9, dtype=dtype),
        layers.ReLU(dtype=dtype),
    ]


def default(training: bool = False) -> keras.Model:
    """A small VGG-style network with batch norm: >= 99.4 % on MNIST at about 1.5x the seed's cost.

    One convolution at full resolution (a second one there would cost more than the rest together).
    """
    return _vgg("default", training, widths_at_7x7=(128,))


def deep(training: bool = False) -> keras.Model:
    """``default`` with a second convolution at 7x7: the ``strong`` recipe's network. Trained alike
    (scan degradations on half the augmented images), it read the robustness suite's 10,000 test
    digits 97.99 % right on average after 12 epochs against 97.63 % for ``default`` (97.79 % after
    20), and MNIST 99.61 % against 99.53 %; it costs 1.35x ``default`` to run (1.41x in LiteRT).
    """
    return _vgg("deep", training, widths_at_7x7=(128, 128))


def _vgg(name: str, training: bool, widths_at_7x7: tuple[int, ...]) -> keras.Model:
    """32 channels at 28x28, two convolutions of 64 at 14x14, then ``widths_at_7x7``, averaged."""
    dtype = training_dtype() if training else None
    at_7x7 = [layer for width in widths_at_7x7 for layer in _conv_bn_relu(width, training)]
    return keras.Sequential(
        [
            keras.Input(INPUT_SHAPE),
            *_conv_bn_relu(32, training),
            layers.MaxPooling2D(2, dtype=dtype),
            *_conv_bn_relu(64, training),
            *_conv_bn_relu(64, training),
            layers.MaxPooling2D(2, dtype=dtype),
            *at_7x7,
            layers.GlobalAveragePooling2D(dtype=dtype),
            layers.Dropout(0.3, dtype=dtype),
            layers.Dense(NUM_CLASSES, activation="softmax", dtype="float32"),
        ],
        name=name,
    )


def compact(training: bool = False) -> keras.Model:
    """The ``fast`` recipe's network: about a third of ``default``'s training cost, for CPUs without
    AMX (measured on an AVX2-only EPYC: 0.96 ms of CPU per training image against 3.0 ms).

    On AVX2 a step's cost follows the multiply-adds and the full-resolution layers: a strided 5x5
    convolution in place of the full-resolution one (no batch norm, ReLU or pooling at 28x28), one
    convolution at 14x14 instead of two, narrower layers. Its head reads the 7x7 map flat, not
    averaged: where strokes are matters to a network this shallow (two epochs on 20,000 images:
    98.9 % against 97.5 % averaged).
    """
    dtype = training_dtype() if training else None
    norm = TrainingBatchNormalization if training else layers.BatchNormalization
    return keras.Sequential(
        [
            keras.Input(INPUT_SHAPE),
            layers.Conv2D(32, 5, strides=2, padding="same", use_bias=False, dtype=dtype),
            norm(momentum=0.9, dtype=dtype),
            layers.ReLU(dtype=dtype),
            *_conv_bn_relu(48, training),
            layers.MaxPooling2D(2, dtype=dtype),
            *_conv_bn_relu(96, training),
            layers.Flatten(dtype=dtype),
            layers.Dropout(0.3, dtype=dtype),
            layers.Dense(NUM_CLASSES, activation="softmax", dtype="float32"),
        ],
        name="compact",
    )


KERAS_ARCHITECTURES: dict[str, Callable[..., keras.Model]] = {
    "seed": seed, "default": default, "deep": deep, "compact": compact,
}  # fmt: skip


def build(name: str, training: bool = False) -> keras.Model:
    """Return a new, untrained Keras network of the named architecture.

    ``training=True``: the same network (same weights, in the same order) in its form for training,
    faster but not for serving; :func:`for_serving` turns it into the plain float32 network.
    """
    try:
        return KERAS_ARCHITECTURES[name](training=training)
    except KeyError:
        raise ValueError(f"unknown architecture {name!r}; choose one of {sorted(KERAS_ARCHITECTURES)}") from None


def for_serving(name: str, trained: keras.Model) -> keras.Model:
    """The plain float32 network of architecture ``name`` holding ``trained``'s weights."""
    network = build(name)
    network.set_weights(trained.get_weights())
    return network
