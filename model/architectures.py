"""The networks, by name. Each is a plain list of layers so the architecture reads at a glance.

Input: (N, 28, 28, 1) float32 in [0, 1], MNIST-style (light ink on black).
Output: (N, 10) class probabilities.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import tensorflow as tf
from keras import layers

INPUT_SHAPE = (28, 28, 1)
NUM_CLASSES = 10
# While training, layers compute in bfloat16 (the CPU's AMX units: about 2x faster here) and keep
# float32 weights; a trained network is rebuilt in float32 for serving (see ``build``).
TRAINING_DTYPE = "mixed_bfloat16"


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
    dtype = TRAINING_DTYPE if training else None
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
    dtype = TRAINING_DTYPE if training else None
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
    dtype = TRAINING_DTYPE if training else None
    return keras.Sequential(
        [
            keras.Input(INPUT_SHAPE),
            *_conv_bn_relu(32, training),
            layers.MaxPooling2D(2, dtype=dtype),
            *_conv_bn_relu(64, training),
            *_conv_bn_relu(64, training),
            layers.MaxPooling2D(2, dtype=dtype),
            *_conv_bn_relu(128, training),
            layers.GlobalAveragePooling2D(dtype=dtype),
            layers.Dropout(0.3, dtype=dtype),
            layers.Dense(NUM_CLASSES, activation="softmax", dtype="float32"),
        ],
        name="default",
    )


KERAS_ARCHITECTURES: dict[str, Callable[..., keras.Model]] = {"seed": seed, "default": default}


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
