"""Seldon MLServer serving this project's shipped model, for ``make bench-peers`` (bench/peers.py).

A custom runtime, as MLServer's docs have one written: the network exported to LiteRT
(model/shipped/default.tflite) run by this service's own ``LiteRTPredictor``, one thread in each of
MLServer's inference workers, as this service's predict workers run it in the benchmarks. Input ``pixels``
(UINT8 [N, 28, 28], MNIST's form), outputs ``probabilities`` (FP32 [N, 10]) and ``label``
(INT64 [N]): the names and types this service's model ``digits`` answers with. MLServer's adaptive
batching joins concurrent requests into one call here; this file runs in MLServer's venv, never
in the project's: bench/peers.py copies it into MLServer's model folder beside model/runtimes/litert.py
(as ``litert_predictor.py``: it imports nothing of the project at load), so both servers run one
interpreter code.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from litert_predictor import LiteRTPredictor
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse, ResponseOutput


class DigitsRuntime(MLModel):
    async def load(self) -> bool:
        self._predictor = LiteRTPredictor(Path(self.settings.parameters.uri).read_bytes(), threads=1)
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        pixels = NumpyCodec.decode_input(payload.inputs[0])
        probabilities = self._predictor.probabilities(pixels.astype(np.float32) / 255)
        labels = probabilities.argmax(axis=1)
        # INT64 [N], as this service answers (NumpyCodec would make a 1-D array [N, 1]).
        label = ResponseOutput(name="label", datatype="INT64", shape=[len(labels)], data=labels.tolist())
        outputs = [NumpyCodec.encode_output("probabilities", probabilities), label]
        return InferenceResponse(model_name=self.name, model_version=self.version, outputs=outputs)
