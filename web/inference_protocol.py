"""The Open Inference Protocol (KServe v2, as Triton speaks it) over HTTP/REST, beside the job API.

What a request asks and what it gets, whatever the transport, is web/dataplane.py's: the model,
its inputs and outputs, one prediction job per image, the wait. This module is HTTP's part:
tensors come as JSON ``data`` (an image's bytes in base64) or in the binary tensor data
extension, which tritonclient uses by default: the JSON header's length in the
``Inference-Header-Content-Length`` header, then each tensor's raw bytes in order. A request body
may come gzip- or deflate-encoded.

Three of Triton's extensions as well, for the tools built on it: classification (an output asked
for with ``"parameters": {"classification": k}`` comes back as each image's k most likely
digits, ``"<probability>:<digit>"``, BYTES [N, k]), model configuration (``.../config``, what
perf_analyzer and Triton's example clients read before they send anything), and statistics
(``.../stats``, each version's requests and where their time went: web/model_statistics.py).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Mapping
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from web import dataplane
from web.auth import predict_token_if_configured
from web.dataplane import MODEL, OUTPUTS, Inference, InputTensor, OutputRequest
from web.errors import ApiError
from web.inference_types import InferenceResponse, MetadataModelResponse, MetadataServerResponse
from web.openapi import Answer, Raw, documented
from web.schemas import (
    InferenceHeaders,
    ProtocolInput,
    ProtocolLiveness,
    ProtocolModelConfig,
    ProtocolModelName,
    ProtocolModelReadiness,
    ProtocolModelStatistics,
    ProtocolOutput,
    ProtocolReadiness,
    ProtocolRequest,
    ProtocolVersionText,
)
from web.services import settings
from web.validation import validated

bp = Blueprint("inference_protocol", __name__, url_prefix="/v2")

HEADER_LENGTH = "Inference-Header-Content-Length"
# Content-Encodings a request may come in, as zlib's wbits: gzip's wrapper, and deflate's (zlib's own).
ENCODINGS = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


PATH = {"model": ProtocolModelName, "version": ProtocolVersionText}


def model_read(operations: Mapping[str, str], responses: Mapping[int, Any]) -> Callable:
    """A read of the model or one of its versions: documented (404 where there is no such one),
    with the predict token when one is configured, as the job API's model reads."""

    def mark(view: Callable) -> Callable:
        return documented(operations, responses, (404,), path=PATH)(predict_token_if_configured(view))

    return mark


@bp.get("")
@documented("protocolServerMetadata", {200: MetadataServerResponse})
def server_metadata():
    """Open Inference Protocol: the server."""
    return jsonify(dataplane.server_metadata())


@bp.get("/health/live")
@documented("protocolLive", {200: ProtocolLiveness})
def live():
    """Open Inference Protocol: live."""
    return jsonify({"live": True})


@bp.get("/health/ready")
@documented("protocolReady", {200: Answer(ProtocolReadiness, "yes"), 400: Answer(ProtocolReadiness, "no")})
def ready():
    """Open Inference Protocol: a worker serves predictions.

    Ready when a live worker serves predictions; not ready is a 400, as the protocol has it.
    """
    is_ready = dataplane.workers_ready()
    return jsonify({"ready": is_ready}), 200 if is_ready else 400


@bp.get("/models/<model>")
@bp.get("/models/<model>/versions/<version>")
@model_read(
    {
        "/v2/models/{model}": "protocolModelMetadata",
        "/v2/models/{model}/versions/{version}": "protocolModelVersionMetadata",
    },
    {200: MetadataModelResponse},
)
def model_metadata(model: str, version: str | None = None):
    """The model's (or one version's) inputs, outputs and versions."""
    return jsonify(dataplane.model_metadata(model, version))


@bp.get("/models/<model>/config")
@bp.get("/models/<model>/versions/<version>/config")
@model_read(
    {
        "/v2/models/{model}/config": "protocolModelConfig",
        "/v2/models/{model}/versions/{version}/config": "protocolModelVersionConfig",
    },
    {200: Answer(ProtocolModelConfig, "the configuration")},
)
def model_config(model: str, version: str | None = None):
    """Triton's model configuration extension: the model as perf_analyzer reads it.

    The model as a Triton model configuration: the shapes of the metadata, whose first
    dimension is the request's image count, so no batching is declared (max_batch_size 0) and
    each input is optional (a request carries one of them)."""
    return jsonify(dataplane.model_config(model, version))


@bp.get("/models/stats")
@bp.get("/models/<model>/stats")
@bp.get("/models/<model>/versions/<version>/stats")
@model_read(
    {
        "/v2/models/stats": "protocolStatistics",
        "/v2/models/{model}/stats": "protocolModelStatistics",
        "/v2/models/{model}/versions/{version}/stats": "protocolModelVersionStatistics",
    },
    {200: Answer(ProtocolModelStatistics, "each version's figures")},
)
def model_stats(model: str = MODEL, version: str | None = None):
    """Triton's statistics extension: each version's requests, and their queue and compute times.

    Per version since the counts began: requests that succeeded and failed and their whole time
    (submission to result), and the successful ones' time queued, preprocessing, in the model
    call and after it (nanoseconds, summed); model calls as ``execution_count``. Without a model
    in the path, every model's (there is one)."""
    return jsonify(dataplane.model_statistics(model, version))


@bp.get("/models/<model>/ready")
@bp.get("/models/<model>/versions/<version>/ready")
@model_read(
    {
        "/v2/models/{model}/ready": "protocolModelReady",
        "/v2/models/{model}/versions/{version}/ready": "protocolModelVersionReady",
    },
    {200: Answer(ProtocolModelReadiness, "yes"), 400: Answer(ProtocolModelReadiness, "no")},
)
def model_ready(model: str, version: str | None = None):
    """The model (or one version) can be served."""
    body = dataplane.model_ready(model, version)
    return jsonify(body), 200 if body["ready"] else 400


@bp.post("/models/<model>/infer")
@bp.post("/models/<model>/versions/<version>/infer")
@documented(
    {
        "/v2/models/{model}/infer": "protocolInfer",
        "/v2/models/{model}/versions/{version}/infer": "protocolInferVersion",
    },
    {200: [Answer(InferenceResponse, "the outputs"), Raw("application/octet-stream", "the JSON header, then outputs")]},
    (400, 404, 413, 415, 429, 503),
    headers=InferenceHeaders,
    body={
        "application/json": ProtocolRequest,
        "application/octet-stream": Raw("application/octet-stream", "the JSON header, then the tensors' bytes"),
    },
    path=PATH,
)
@predict_token_if_configured
def infer(model: str, version: str | None = None):
    """Probabilities (FP32 [N, 10]) and label (INT64 [N], -1: no digit) of each image.

    Every image's probabilities and label, in order, once all have been read. One input: image
    (BYTES [N], image files; base64 in JSON) or pixels (UINT8 [N, 28, 28]). Outputs may be asked
    for as binary data, and probabilities as each image's k most likely digits (classification).
    A version other than the active one needs the admin token.
    ``parameters.timeout`` (microseconds) is the request's deadline: when it passes first, the
    answer is 503 deadline_exceeded and the images not yet read are never read.
    ``parameters.priority`` 1 puts them in the fast lane ahead of the client's own backlog
    (within its share of that lane), 2 or more in the bulk lane.
    """
    number = dataplane.version_to_serve(model, version)
    header, binary = _split_body()
    inputs = [_tensor(given, binary) for given in header.inputs]
    outputs = None if header.outputs is None else [_output(given) for given in header.outputs]
    asked = header.parameters
    timeout_ms = dataplane.microseconds_to_ms(asked.timeout) if asked else None
    answer = dataplane.infer(number, inputs, outputs, timeout_ms=timeout_ms, priority=(asked and asked.priority) or 0)
    body = {"model_name": MODEL, "model_version": answer.model_version}
    if header.id is not None:
        body["id"] = header.id
    return _answer(body, answer, _binary_outputs(header))


def _split_body() -> tuple[ProtocolRequest, bytes]:
    """The request's JSON header, checked against the protocol's types, and the binary tensor data
    after it (empty without the extension)."""
    given = {name: request.headers[name] for name in (HEADER_LENGTH, "Content-Encoding") if name in request.headers}
    headers = validated(InferenceHeaders, given, subject="the headers")
    body = _inflated(request.get_data(cache=False), headers.encoding)
    length = len(body) if headers.header_length is None else headers.header_length
    if length > len(body):
        raise ApiError(400, "invalid_header_length", f"{HEADER_LENGTH} must be a byte count within the body")
    return validated(ProtocolRequest, body[:length], subject="the inference request", json=True), body[length:]


def _inflated(body: bytes, encoding: str | None) -> bytes:
    """The body as sent before its Content-Encoding (tritonclient's request_compression_algorithm),
    never inflated past MAX_CONTENT_LENGTH: a small body must not become a large one in memory."""
    if encoding is None:
        return body
    limit = settings().max_content_length
    inflater = zlib.decompressobj(ENCODINGS[encoding])
    try:
        inflated = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise ApiError(400, "invalid_encoding", f"the body is not valid {encoding}: {exc}") from None
    if len(inflated) > limit:
        raise ApiError(413, "too_large", f"the {encoding} body inflates to over {limit} bytes (MAX_CONTENT_LENGTH)")
    if not inflater.eof:
        raise ApiError(400, "invalid_encoding", f"the {encoding} body is truncated")
    return inflated


def _tensor(given: ProtocolInput, binary: bytes) -> InputTensor:
    """An input tensor of the JSON header, its data from the JSON or, with the binary tensor data
    extension, the bytes after the header."""
    size = (given.parameters.model_extra or {}).get("binary_data_size") if given.parameters else None
    data = binary if size is not None else given.data.root if given.data is not None else None
    return InputTensor(given.name, given.datatype, given.shape, data, size)


def _output(given: ProtocolOutput) -> OutputRequest:
    own = (given.parameters.model_extra or {}) if given.parameters else {}
    return OutputRequest(given.name, own.get("classification", 0))


def _binary_outputs(header: ProtocolRequest) -> dict[str, bool]:
    """Which outputs go as binary data (by name; ``None``: those the request does not name)."""
    parameters = (header.parameters.model_extra or {}) if header.parameters else {}
    binary_default = parameters.get("binary_data_output") is True
    binary: dict = {None: binary_default}
    for output in header.outputs or []:
        own = (output.parameters.model_extra or {}) if output.parameters else {}
        binary[output.name] = own.get("binary_data", binary_default) is True
    return binary


def _answer(body: dict, answer: Inference, binary_outputs: dict[str, bool]) -> Response:
    """The inference response: JSON, or JSON then binary tensors when any output was asked for as binary."""
    chunks, outputs = [], []
    for name, classes in answer.outputs.items():
        datatype, _, dtype = OUTPUTS[name]
        tensor = answer.tensor(name)
        binary = binary_outputs.get(name, binary_outputs[None])
        if classes:
            rows = dataplane.classified(tensor, classes)
            output = {"name": name, "datatype": "BYTES", "shape": [len(rows), classes]}
            if binary:
                raw = b"".join(struct.pack("<I", len(text)) + text.encode() for row in rows for text in row)
            else:
                output["data"] = [text for row in rows for text in row]
        else:
            output = {"name": name, "datatype": datatype, "shape": list(tensor.shape)}
            if binary:
                raw = tensor.astype(dtype).tobytes()
            else:
                output["data"] = tensor.ravel().tolist()
        if binary:
            output["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        outputs.append(output)
    body["outputs"] = outputs
    if not chunks:
        return jsonify(body)
    header = current_app.json.dumps(body).encode()
    response = Response(header + b"".join(chunks), content_type="application/octet-stream")
    response.headers[HEADER_LENGTH] = str(len(header))
    return response
