"""Process-wide TensorFlow set-up: quiet logs and deliberate thread counts (two cores are shared)."""

from __future__ import annotations

import os

from model.data import DataError  # re-exported for the CLIs' error handling

__all__ = ["DataError", "quiet_tensorflow", "configure_threads"]


def quiet_tensorflow() -> None:
    """Silence TensorFlow's C++ start-up chatter; must run before TensorFlow is imported."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def configure_threads(intra_op: int, inter_op: int) -> None:
    """Set TensorFlow's thread pools (0 = TensorFlow's choice).

    Must run before the first TensorFlow operation of the process.
    """
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(intra_op)
        tf.config.threading.set_inter_op_parallelism_threads(inter_op)
    except RuntimeError:
        pass  # TensorFlow already initialised in this process: keep what it has
