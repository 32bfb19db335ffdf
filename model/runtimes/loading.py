"""How a model file runs: TensorFlow or LiteRT for Keras files, scikit-learn for skops files.

Every predictor offers ``version``, ``card`` and ``probabilities(images)``; only the runtime
chosen is imported, so a LiteRT worker never loads TensorFlow.
"""

from __future__ import annotations

from collections.abc import Callable

from model.runtimes.predictor import Predictor


def load_predictor(
    file_bytes: bytes,
    card: dict,
    version: int,
    backend: str,
    threads: int = 0,
    litert_export: Callable[[], bytes] | None = None,
) -> Predictor:
    """A predictor for one model file on ``backend`` (``tensorflow`` or ``litert``, with
    ``threads`` interpreter threads, 0: one per core). For a Keras file on LiteRT,
    ``litert_export()`` gives its LiteRT flatbuffer (default: exported now, in a child process)."""
    file_format = card.get("format", "keras")
    if file_format == "skops":
        from model.runtimes.scikit_learn import ClassicPredictor

        return ClassicPredictor.from_bytes(file_bytes, version, card)
    if file_format != "keras":
        raise ValueError(f"version {version} has unknown format {file_format!r}")
    if backend == "litert":
        from model.runtimes import litert

        flatbuffer = litert_export() if litert_export else litert.export_in_subprocess(file_bytes)
        return litert.LiteRTPredictor(flatbuffer, version, card, threads)
    from model.runtimes.keras_predictor import KerasPredictor

    return KerasPredictor.from_bytes(file_bytes, version, card)
