"""Process-wide TensorFlow set-up: its log level and deliberate thread counts (two cores are shared).

The entry points call these (worker processes, the model's tools, the local client) before
anything imports TensorFlow; library modules never set up the process themselves.
"""

from __future__ import annotations

import os


def set_log_level(level: str) -> None:
    """TensorFlow's C++ log level (TF_CPP_MIN_LOG_LEVEL: "2" hides its start-up notes); must run
    before TensorFlow is imported, which reads it once."""
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = level


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
