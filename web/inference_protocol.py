"""The Open Inference Protocol (KServe v2, as Triton speaks it) over HTTP/REST, beside the job API.

An inference request becomes one prediction job per image, through the same records, queue and
workers as every other prediction: it is micro-batched with them and held to the same limits
and tokens. The request waits for its answers, up to MAX_WAIT_SECONDS or its own deadline
(``parameters.timeout``, in microseconds, as tritonclient's ``infer(timeout=)`` sends it), and
when it gives up, it expires its jobs: those not yet started are never read. The one model, ``digits``:

    input  image          BYTES [-1]          encoded image files, preprocessed as uploads are
    input  pixels         UINT8 [-1, 28, 28]  digits already in MNIST's form (light ink on dark)
    output probabilities  FP32  [-1, 10]
    output label          INT64 [-1]          -1 for an image without a digit on it

A request carries one of the inputs. Tensors come as JSON ``data`` (an image's bytes in base64)
or in the binary tensor data extension, which tritonclient uses by default: the JSON header's
length in the ``Inference-Header-Content-Length`` header, then each tensor's raw bytes in order
(a BYTES tensor as 4-byte little-endian lengths, each followed by its bytes). A request body may
come gzip- or deflate-encoded.

Two of Triton's extensions as well, for the tools built on it: classification (an output asked
for with ``"parameters": {"classification": k}`` comes back as each image's k most likely
digits, ``"<probability>:<digit>"``, BYTES [N, k]), and model configuration (``.../config``, what
perf_analyzer and Triton's example clients read before they send anything).
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
import zlib
from dataclasses import dataclass
from importlib.metadata import version as package_version

import numpy as np
from flask import Blueprint, Response, current_app, jsonify, request

from jobs import deadlines, workers
from jobs.schemas import JobRecord
from model.recognise import mnist_pixels_file
from web.auth import predict_token_if_configured
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
    ProtocolReadiness,
    ProtocolRequest,
    ProtocolVersionText,
)
from web.services import services, settings
from web.submit import submit_predictions
from web.validation import validated

bp = Blueprint("inference_protocol", __name__, url_prefix="/v2")

MODEL = "digits"
HEADER_LENGTH = "Inference-Header-Content-Length"
INPUTS = {"image": ("BYTES", [-1]), "pixels": ("UINT8", [-1, 28, 28])}
OUTPUTS = {"probabilities": ("FP32", [-1, 10], "<f4"), "label": ("INT64", [-1], "<i8")}
# Content-Encodings a request may come in, as zlib's wbits: gzip's wrapper, and deflate's (zlib's own).
ENCODINGS = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
EXTENSIONS = ["binary_tensor_data", "classification", "model_configuration"]
# Triton's model configuration names the protocol's datatypes so (BYTES is its TYPE_STRING).
CONFIG_TYPES = {"BYTES": "TYPE_STRING", "UINT8": "TYPE_UINT8", "FP32": "TYPE_FP32", "INT64": "TYPE_INT64"}
# Jobs that failed for what the client sent (a 400); any other failure is the service's (a 503).
CLIENT_FAILURES = {"invalid_image", "too_costly", "preprocessing_failed", "poison", "image_missing"}
# A number in a path or header is read only when it is a few ASCII digits (int() of thousands of
# digits is refused with a ValueError; str.isdigit() takes other scripts' digits too).
_DIGITS = re.compile(r"[0-9]{1,18}")


PATH = {"model": ProtocolModelName, "version": ProtocolVersionText}


@bp.get("")
@documented("protocolServerMetadata", {200: MetadataServerResponse})
def server_metadata():
    """Open Inference Protocol: the server."""
    return jsonify({"name": MODEL, "version": package_version("digits"), "extensions": EXTENSIONS})


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
    is_ready = _workers_ready()
    return jsonify({"ready": is_ready}), 200 if is_ready else 400


@bp.get("/models/<model>")
@bp.get("/models/<model>/versions/<version>")
@documented(
    {
        "/v2/models/{model}": "protocolModelMetadata",
        "/v2/models/{model}/versions/{version}": "protocolModelVersionMetadata",
    },
    {200: MetadataModelResponse},
    (404,),
    path=PATH,
)
@predict_token_if_configured  # as the job API's model reads
def model_metadata(model: str, version: str | None = None):
    """The model's (or one version's) inputs, outputs and versions."""
    number = _version(model, version)
    versions = [number] if number is not None else services().store.versions()
    return jsonify(
        {
            "name": MODEL,
            "versions": [str(v) for v in versions],
            "platform": "digits",
            "inputs": [{"name": n, "datatype": t, "shape": s} for n, (t, s) in INPUTS.items()],
            "outputs": [{"name": n, "datatype": t, "shape": s} for n, (t, s, _) in OUTPUTS.items()],
        }
    )


@bp.get("/models/<model>/config")
@bp.get("/models/<model>/versions/<version>/config")
@documented(
    {
        "/v2/models/{model}/config": "protocolModelConfig",
        "/v2/models/{model}/versions/{version}/config": "protocolModelVersionConfig",
    },
    {200: Answer(ProtocolModelConfig, "the configuration")},
    (404,),
    path=PATH,
)
@predict_token_if_configured
def model_config(model: str, version: str | None = None):
    """Triton's model configuration extension: the model as perf_analyzer reads it.

    The model as a Triton model configuration: the shapes of the metadata, whose first
    dimension is the request's image count, so no batching is declared (max_batch_size 0) and
    each input is optional (a request carries one of them)."""
    _version(model, version)

    def tensor(name: str, datatype: str, shape: list[int]) -> dict:
        return {"name": name, "data_type": CONFIG_TYPES[datatype], "dims": shape}

    return jsonify(
        {
            "name": MODEL,
            "platform": "digits",
            "max_batch_size": 0,
            "input": [tensor(n, t, s) | {"optional": True} for n, (t, s) in INPUTS.items()],
            "output": [tensor(n, t, s) for n, (t, s, _) in OUTPUTS.items()],
        }
    )


@bp.get("/models/<model>/ready")
@bp.get("/models/<model>/versions/<version>/ready")
@documented(
    {
        "/v2/models/{model}/ready": "protocolModelReady",
        "/v2/models/{model}/versions/{version}/ready": "protocolModelVersionReady",
    },
    {200: Answer(ProtocolModelReadiness, "yes"), 400: Answer(ProtocolModelReadiness, "no")},
    (404,),
    path=PATH,
)
@predict_token_if_configured
def model_ready(model: str, version: str | None = None):
    """The model (or one version) can be served."""
    number = _version(model, version)
    is_ready = _workers_ready() and (number is None or _servable(number))
    body = {"name": MODEL, "ready": is_ready} | ({"version": str(number)} if number is not None else {})
    return jsonify(body), 200 if is_ready else 400


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
    ``parameters.timeout`` (microseconds) is the request's deadline: when it passes first, the
    answer is 503 deadline_exceeded and the images not yet read are never read.
    ``parameters.priority`` 1 puts them in the fast lane ahead of the client's own backlog
    (within its share of that lane), 2 or more in the bulk lane.
    """
    number = _version(model, version)
    if number is not None and not _servable(number):
        raise ApiError(404, "version_not_servable", f"version {number} did not pass its check and is not served")
    header, binary = _split_body()
    name, images = _input(header.inputs, binary)
    wanted = _requested_outputs(header)
    config = settings()
    asked_ms = _timeout_ms(header)
    deadline_s = deadlines.timeout_ms(asked_ms, config.default_timeout_ms, config.max_timeout_ms) / 1000
    wait = min(config.max_wait_seconds, deadline_s) if deadline_s else config.max_wait_seconds
    checked = name == "pixels"
    priority = (header.parameters.priority if header.parameters else None) or 0
    submitted = submit_predictions(
        images, version=number, checked=checked, wait=wait, timeout_ms=asked_ms, priority=priority
    )
    records = submitted.records
    if records is None:
        # Nobody will read these answers: jobs not started yet are not read at all.
        if wait == deadline_s:
            reason = f"the request's deadline ({deadline_s * 1000:g} ms) passed before its images were all read"
            services().records.expire(submitted.job_ids, deadlines.exceeded(reason))
            raise ApiError(503, deadlines.DEADLINE_EXCEEDED, reason)
        message = f"the images were not all read within {wait:g} s; the service is busy, retry shortly"
        services().records.expire(submitted.job_ids, deadlines.exceeded(message))
        raise ApiError(503, "timeout", message, {"Retry-After": "1"})
    probabilities, labels, served = _outcomes(records, name)
    body = {"model_name": MODEL, "model_version": str(served or number or services().store.active_version())}
    if header.id is not None:
        body["id"] = header.id
    return _answer(body, {"probabilities": probabilities, "label": labels}, wanted)


def _timeout_ms(header: ProtocolRequest) -> int | None:
    """The request's own deadline (``parameters.timeout``, in microseconds) in whole milliseconds,
    rounded up; None when it gives none."""
    timeout_us = header.parameters.timeout if header.parameters else None
    return None if timeout_us is None else -(-timeout_us // 1000)


def _workers_ready() -> bool:
    """A live worker serves predictions, and this process is not going away (web/draining.py)."""
    svc = services()
    return not svc.drain.draining and any(worker.predicts for worker in workers.live(svc.redis))


def _version(model: str, version: str | None) -> int | None:
    """The version the path names (None: the active one); 404 for another model or an unknown version."""
    if model != MODEL:
        raise ApiError(404, "unknown_model", f"no model {model[:64]!r}: this server has one, {MODEL!r}")
    if version is None:
        return None
    if not _DIGITS.fullmatch(version) or services().store.card(int(version)) is None:
        raise ApiError(404, "unknown_version", f"no version {version[:64]!r} of {MODEL!r}")
    return int(version)


def _servable(version: int) -> bool:
    """Whether ``version`` may be served: the active one, or one whose check passed."""
    store = services().store
    verdict = store.check(version)
    return version == store.active_version() or bool(verdict and verdict.get("ok"))


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


def _input(inputs: list[ProtocolInput], binary: bytes) -> tuple[str, list[tuple[str, bytes]]]:
    """The one input tensor's name and its images as (name, bytes), checked against the limits."""
    if len(inputs) != 1:
        raise ApiError(400, "invalid_inputs", f"send exactly one input, one of {sorted(INPUTS)}")
    tensor = inputs[0]
    name, datatype, shape = tensor.name, tensor.datatype, tensor.shape
    if name not in INPUTS:
        raise ApiError(400, "unknown_input", f"no input {name[:64]!r}; the inputs are {sorted(INPUTS)}")
    if datatype != INPUTS[name][0]:
        raise ApiError(400, "invalid_datatype", f"input {name!r} is {INPUTS[name][0]}, not {datatype[:32]}")
    expected = INPUTS[name][1]
    if len(shape) != len(expected) or shape[1:] != expected[1:]:
        raise ApiError(400, "invalid_shape", f"input {name!r} has shape {expected} (-1: any count)")
    count, limit = shape[0], settings().max_images_per_request
    if not 1 <= count <= limit:
        raise ApiError(413 if count > limit else 400, "invalid_count", f"{count} images; send 1 to {limit}")
    size = (tensor.parameters.model_extra or {}).get("binary_data_size") if tensor.parameters else None
    if size is not None:
        if type(size) is not int or size != len(binary):
            raise ApiError(400, "invalid_binary_data", f"binary_data_size {size} but {len(binary)} bytes follow")
        data: bytes | list = binary
    elif tensor.data is not None:
        data = tensor.data.root
    else:
        raise ApiError(400, "missing_data", f"input {name!r} has neither data nor binary_data_size")
    if name == "image":
        return name, _image_files(data, count)
    return name, [(f"pixels[{i}]", mnist_pixels_file(digit)) for i, digit in enumerate(_pixels(data, count))]


def _image_files(data: bytes | list, count: int) -> list[tuple[str, bytes]]:
    """The BYTES tensor's elements: from binary data (length-prefixed) or JSON (base64 strings)."""
    max_bytes = settings().max_image_bytes
    if isinstance(data, bytes):
        files, offset = [], 0
        while offset < len(data) and len(files) < count:
            if offset + 4 > len(data):
                break
            (length,) = struct.unpack_from("<I", data, offset)
            offset += 4
            if length > max_bytes:
                message = f"image[{len(files)}] is {length} bytes, over the limit of {max_bytes}"
                raise ApiError(413, "too_large", message)
            files.append(data[offset : offset + length])
            offset += length
        if len(files) != count or offset != len(data):
            raise ApiError(400, "invalid_binary_data", f"the binary data does not hold exactly {count} images")
    else:
        if not (isinstance(data, list) and len(data) == count and all(isinstance(v, str) for v in data)):
            raise ApiError(400, "invalid_data", f"data must be {count} strings: each image file in base64")
        try:
            files = [base64.b64decode(value, validate=True) for value in data]
        except (binascii.Error, ValueError):
            raise ApiError(400, "invalid_base64", "an image of data is not valid base64") from None
    return [(f"image[{i}]", file) for i, file in enumerate(files)]


def _pixels(data: bytes | list, count: int) -> np.ndarray:
    """The UINT8 tensor as (count, 28, 28) uint8, from binary data or JSON numbers 0-255."""
    if isinstance(data, bytes):
        if len(data) != count * 28 * 28:
            raise ApiError(400, "invalid_binary_data", f"{count} digits of 28x28 bytes are {count * 784} bytes")
        return np.frombuffer(data, np.uint8).reshape(count, 28, 28)
    try:
        values = np.asarray(data)
    except ValueError:
        values = np.asarray([])
    if values.size != count * 784 or values.dtype.kind not in "iu" or values.min() < 0 or values.max() > 255:
        raise ApiError(400, "invalid_data", f"data must be {count * 784} whole numbers from 0 to 255 (flat or nested)")
    return values.astype(np.uint8).reshape(count, 28, 28)


@dataclass(frozen=True)
class Wanted:
    """How to send one output: as binary data or JSON, whole or as its ``classes`` most likely digits."""

    binary: bool
    classes: int = 0


def _requested_outputs(header: ProtocolRequest) -> dict[str, Wanted]:
    """The outputs to send, and how; all of them, whole, when none are named."""
    parameters = (header.parameters.model_extra or {}) if header.parameters else {}
    binary_default = parameters.get("binary_data_output") is True
    outputs = header.outputs
    if outputs is None:
        return dict.fromkeys(OUTPUTS, Wanted(binary_default))
    if not outputs:
        raise ApiError(400, "invalid_outputs", f"outputs must name some of {sorted(OUTPUTS)}")
    wanted = {}
    for output in outputs:
        name = output.name
        if name not in OUTPUTS:
            raise ApiError(400, "unknown_output", f"no output {name[:64]!r}; see {sorted(OUTPUTS)}")
        own = (output.parameters.model_extra or {}) if output.parameters else {}
        classes = own.get("classification", 0)
        if classes and name != "probabilities":
            raise ApiError(400, "invalid_classification", "classification applies to the output probabilities")
        if type(classes) is not int or not 0 <= classes <= 10:
            raise ApiError(400, "invalid_classification", "classification is a count of digits, 1 to 10")
        wanted[name] = Wanted(own.get("binary_data", binary_default) is True, classes)
    return wanted


def _outcomes(records: list[JobRecord | None], name: str) -> tuple[np.ndarray, np.ndarray, int | None]:
    """(probabilities, labels, model version) of the ended jobs; the first failure as an error."""
    probabilities = np.zeros((len(records), 10), np.float32)
    labels = np.full(len(records), -1, np.int64)
    served = None
    for index, record in enumerate(records):
        if record is None or record["status"] != "succeeded":
            error = (record or {}).get("error") or {"code": "expired", "message": "the job's record expired"}
            status = 400 if error["code"] in CLIENT_FAILURES else 503
            raise ApiError(status, error["code"], f"{name}[{index}]: {error['message']}")
        result = record["result"]
        if result.get("label") is not None:
            labels[index] = result["label"]
            probabilities[index] = result["probabilities"]
            served = served or result.get("model_version")
    return probabilities, labels, served


def _classified(probabilities: np.ndarray, count: int) -> list[list[str]]:
    """Each row's ``count`` highest probabilities, highest first, as the classification extension
    writes them: "<value>:<index>" (here the index is the digit)."""
    order = np.argsort(-probabilities, axis=1, kind="stable")[:, :count]
    return [[f"{row[digit]:f}:{digit}" for digit in top] for row, top in zip(probabilities, order, strict=True)]


def _answer(body: dict, tensors: dict[str, np.ndarray], wanted: dict[str, Wanted]) -> Response:
    """The inference response: JSON, or JSON then binary tensors when any output was asked for as binary."""
    chunks, outputs = [], []
    for name, how in wanted.items():
        datatype, _, dtype = OUTPUTS[name]
        tensor = tensors[name]
        if how.classes:
            rows = _classified(tensor, how.classes)
            output = {"name": name, "datatype": "BYTES", "shape": [len(rows), how.classes]}
            if how.binary:
                raw = b"".join(struct.pack("<I", len(text)) + text.encode() for row in rows for text in row)
            else:
                output["data"] = [text for row in rows for text in row]
        else:
            output = {"name": name, "datatype": datatype, "shape": list(tensor.shape)}
            if how.binary:
                raw = tensor.astype(dtype).tobytes()
            else:
                output["data"] = tensor.ravel().tolist()
        if how.binary:
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
