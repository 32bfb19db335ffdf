"""The LiteRT backend: a Keras model exported to a LiteRT (TFLite) flatbuffer, run by the small
``ai-edge-litert`` interpreter so a worker needs no TensorFlow in memory.

    python -m model.runtimes.litert MODEL.keras OUT.tflite      # export (this step needs TensorFlow)

At load it imports numpy and the standard library only: bench/peers.py runs this same file in
MLServer's venv, where nothing of the project is installed.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

MAX_BATCH = 256


def export(keras_bytes: bytes) -> bytes:
    """Convert ``.keras`` file bytes to LiteRT bytes (float32, same outputs within float rounding)."""
    import tensorflow as tf

    from model.runtimes import keras_files

    network = keras_files.load(keras_bytes)
    converter = tf.lite.TFLiteConverter.from_keras_model(network)
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):  # the converter is chatty
        return converter.convert()


def export_in_subprocess(keras_bytes: bytes, timeout: float = 300) -> bytes:
    """Export in a child process, so the caller never loads TensorFlow itself."""
    with tempfile.TemporaryDirectory() as tmp:
        source, target = Path(tmp) / "model.keras", Path(tmp) / "model.tflite"
        source.write_bytes(keras_bytes)
        subprocess.run(
            [sys.executable, "-m", "model.runtimes.litert", str(source), str(target)],
            check=True,
            timeout=timeout,
            capture_output=True,
            env={"TF_CPP_MIN_LOG_LEVEL": "2"},  # nothing of the service's environment
        )
        return target.read_bytes()


class LiteRTPredictor:
    """Same interface as :class:`model.runtimes.keras_predictor.KerasPredictor`, on the LiteRT interpreter."""

    def __init__(self, flatbuffer: bytes, version: int | None = None, card: dict | None = None, threads: int = 0):
        """``threads``: the interpreter's threads (0: one per core)."""
        from ai_edge_litert.interpreter import Interpreter

        self.version, self.card = version, card or {}
        threads = threads or (os.cpu_count() or 1)
        self._interpreter = Interpreter(model_content=flatbuffer, num_threads=threads)
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]
        self._batch = 0
        self.probabilities(np.zeros((1, 28, 28), np.float32))  # allocate and warm up now

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """(N, 28, 28) float32 in [0, 1] -> (N, 10) float32 probabilities, in input order."""
        x = np.asarray(images, dtype=np.float32).reshape(-1, 28, 28, 1)
        parts = [self._run(x[i : i + MAX_BATCH]) for i in range(0, len(x), MAX_BATCH)]
        return np.concatenate(parts) if parts else np.zeros((0, 10), np.float32)

    def _run(self, x: np.ndarray) -> np.ndarray:
        if len(x) != self._batch:  # re-planning costs far less than computing padding
            self._interpreter.resize_tensor_input(self._input, list(x.shape))
            self._interpreter.allocate_tensors()
            self._batch = len(x)
        self._interpreter.set_tensor(self._input, x)
        self._interpreter.invoke()
        return self._interpreter.get_tensor(self._output).copy()


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    if len(args) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    Path(args[1]).write_bytes(export(Path(args[0]).read_bytes()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
