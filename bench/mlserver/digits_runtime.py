"""Seldon MLServer serving this project's shipped model, for ``make bench-peers`` (bench/peers.py).

A custom runtime, as MLServer's docs have one written: the network exported to LiteRT
(model/shipped/default.tflite) on the LiteRT interpreter, one thread in each of MLServer's
inference workers, as this service's predict workers run it in the benchmarks. Input ``pixels``
(UINT8 [N, 28, 28], MNIST's form), outputs ``probabilities`` (FP32 [N, 10]) and ``label``
(INT64 [N]): the names and types this service's model ``digits`` answers with. MLServer's adaptive
batching joins concurrent requests into one call here; this file runs in MLServer's venv, never
in the project's (it imports nothing of the project).
"""

from __future__ import annotations

import numpy as np
from ai_edge_litert.interpreter import Interpreter
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse, ResponseOutput


class DigitsRuntime(MLModel):
    async def load(self) -> bool:
        self._interpreter = Interpreter(model_path=self.settings.parameters.uri, num_threads=1)
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]
        self._batch = 0
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        pixels = NumpyCodec.decode_input(payload.inputs[0])
        x = pixels.astype(np.float32).reshape(-1, 28, 28, 1) / 255
        if len(x) != self._batch:  # re-planned only when the batch size changes
            self._interpreter.resize_tensor_input(self._input, list(x.shape))
            self._interpreter.allocate_tensors()
            self._batch = len(x)
        self._interpreter.set_tensor(self._input, x)
        self._interpreter.invoke()
        probabilities = self._interpreter.get_tensor(self._output).copy()
        labels = probabilities.argmax(axis=1)
        # INT64 [N], as this service answers (NumpyCodec would make a 1-D array [N, 1]).
        label = ResponseOutput(name="label", datatype="INT64", shape=[len(labels)], data=labels.tolist())
        outputs = [NumpyCodec.encode_output("probabilities", probabilities), label]
        return InferenceResponse(model_name=self.name, model_version=self.version, outputs=outputs)
