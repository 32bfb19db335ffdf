"""How a stored model version runs in a worker: TensorFlow or LiteRT for Keras files,
scikit-learn for skops files. Every predictor offers ``version``, ``card`` and
``probabilities(images)``; only the one chosen is imported, so a LiteRT worker never loads TensorFlow.
"""

from __future__ import annotations

from model.store import ModelStore


def load_predictor(store: ModelStore, version: int, backend: str, threads: int = 0):
    """A predictor for ``version`` from ``store`` on ``backend`` (``tensorflow`` or ``litert``,
    with ``threads`` interpreter threads, 0: one per core); a missing LiteRT export is made and stored."""
    card = store.card(version)
    data = store.file(version)
    if card is None or data is None:
        raise KeyError(f"model version {version} is not in the store")
    file_format = card.get("format", "keras")
    if file_format == "skops":
        from model.classic import ClassicPredictor

        return ClassicPredictor.from_bytes(data, version, card)
    if file_format != "keras":
        raise ValueError(f"version {version} has unknown format {file_format!r}")
    if backend == "litert":
        from model import litert

        flatbuffer = store.litert_file(version)
        if flatbuffer is None:
            flatbuffer = litert.export_in_subprocess(data)
            store.set_litert_file(version, flatbuffer)
        return litert.LiteRTPredictor(flatbuffer, version, card, threads)
    from model.predictor import Predictor

    return Predictor.from_bytes(data, version, card)
