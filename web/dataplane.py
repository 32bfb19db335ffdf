"""The Open Inference Protocol's work, whatever the transport: what HTTP/REST
(web/inference_protocol.py) and gRPC (web/grpc_protocol.py) both call, as MLServer's
handlers/dataplane.py is to its REST and gRPC servers.

An inference request becomes one prediction job holding its whole tensor (jobs/tensors.py),
through the same records, lanes and workers as every other prediction: its images are
micro-batched with theirs and held to the same limits (counted as images) and tokens. The request
waits for its answers, up to MAX_WAIT_SECONDS or its own deadline (HTTP's ``parameters.timeout``,
in microseconds, as tritonclient's ``infer(timeout=)`` sends it; gRPC's call deadline or that
parameter), and when it gives up, it expires its job: if not yet started, it is never read. Its
``priority`` (Triton's: 1 the highest) chooses the job's lane within the client's bounds
(jobs/records.py, Lanes). The one model, ``digits``:

    input  image          BYTES [-1]          encoded image files, preprocessed as uploads are
    input  pixels         UINT8 [-1, 28, 28]  digits already in MNIST's form (light ink on dark)
    output probabilities  FP32  [-1, 10]
    output label          INT64 [-1]          -1 for an image without a digit on it

A request carries one of the inputs. Its data is raw bytes (the binary tensor data extension
over HTTP, ``raw_input_contents`` over gRPC: a BYTES tensor as 4-byte little-endian lengths, each
followed by its bytes) or a list of values (JSON ``data``, where an image is base64; gRPC's typed
contents, where it is bytes). Refusals are :class:`ApiError` with an HTTP status, which the gRPC
transport maps to its status codes. Everything here runs inside a Flask request context: the
client's address and token, the app's connections and settings come from there.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
from dataclasses import dataclass
from importlib.metadata import version as package_version

import numpy as np

from jobs import deadlines, tensors, workers
from jobs.schemas import JobRecord
from web import model_statistics as statistics
from web.auth import ADMIN_DISABLED, check
from web.errors import ApiError
from web.services import services, settings
from web.submit import check_images, submit_tensor

MODEL = "digits"
INPUTS = {"image": ("BYTES", [-1]), "pixels": ("UINT8", [-1, 28, 28])}
OUTPUTS = {"probabilities": ("FP32", [-1, 10], "<f4"), "label": ("INT64", [-1], "<i8")}
EXTENSIONS = ["binary_tensor_data", "classification", "model_configuration", "statistics"]
# Triton's model configuration names the protocol's datatypes so (BYTES is its TYPE_STRING).
CONFIG_TYPES = {"BYTES": "TYPE_STRING", "UINT8": "TYPE_UINT8", "FP32": "TYPE_FP32", "INT64": "TYPE_INT64"}
# Jobs that failed for what the client sent (a 400); any other failure is the service's (a 503).
CLIENT_FAILURES = {"invalid_image", "too_costly", "preprocessing_failed", "poison", "image_missing"}
# A number in a path or header is read only when it is a few ASCII digits (int() of thousands of
# digits is refused with a ValueError; str.isdigit() takes other scripts' digits too).
_DIGITS = re.compile(r"[0-9]{1,18}")


@dataclass(frozen=True)
class InputTensor:
    """One input tensor as a transport received it: ``data`` is raw bytes or a list of values (None:
    the request had none); ``binary_data_size`` is the byte count the request declared for raw data."""

    name: str
    datatype: str
    shape: list[int]
    data: bytes | list | None
    binary_data_size: object = None


@dataclass(frozen=True)
class OutputRequest:
    """An output a request names, with its classification parameter as given (0: the whole tensor)."""

    name: str
    classification: object = 0


@dataclass(frozen=True)
class Inference:
    """The answer to an inference request: every image's probabilities and label, in order, the
    model version that read them, and the outputs to send, in order, each with its class count
    (0: the whole tensor; k: each image's k most likely digits, see :func:`classified`)."""

    probabilities: np.ndarray
    labels: np.ndarray
    model_version: str
    outputs: dict[str, int]

    def tensor(self, name: str) -> np.ndarray:
        return self.probabilities if name == "probabilities" else self.labels


def server_metadata() -> dict:
    return {"name": MODEL, "version": package_version("digits"), "extensions": EXTENSIONS}


def workers_ready() -> bool:
    """Ready when a live worker serves predictions, and this process is not going away (web/draining.py)."""
    svc = services()
    return not svc.drain.draining and any(worker.predicts for worker in workers.live(svc.redis))


def model_metadata(model: str, version: str | None) -> dict:
    """The model's (or one version's) inputs, outputs and versions."""
    number = model_version(model, version)
    versions = [number] if number is not None else services().store.versions()
    return {
        "name": MODEL,
        "versions": [str(v) for v in versions],
        "platform": "digits",
        "inputs": [{"name": n, "datatype": t, "shape": s} for n, (t, s) in INPUTS.items()],
        "outputs": [{"name": n, "datatype": t, "shape": s} for n, (t, s, _) in OUTPUTS.items()],
    }


def model_config(model: str, version: str | None) -> dict:
    """The model as a Triton model configuration: the shapes of the metadata, whose first
    dimension is the request's image count, so no batching is declared (max_batch_size 0) and
    each input is optional (a request carries one of them)."""
    model_version(model, version)

    def tensor(name: str, datatype: str, shape: list[int]) -> dict:
        return {"name": name, "data_type": CONFIG_TYPES[datatype], "dims": shape}

    return {
        "name": MODEL,
        "platform": "digits",
        "max_batch_size": 0,
        "input": [tensor(n, t, s) | {"optional": True} for n, (t, s) in INPUTS.items()],
        "output": [tensor(n, t, s) for n, (t, s, _) in OUTPUTS.items()],
    }


def model_statistics(model: str, version: str | None) -> dict:
    """Triton's statistics extension: each version's figures (web/model_statistics.py); every
    version stored, and any counted since, when ``version`` is None."""
    number = model_version(model, version)
    figures = statistics.read(services().redis)
    if number is not None:
        versions = [str(number)]
    else:
        known = {str(v) for v in services().store.versions()} | set(figures)
        versions = sorted(known, key=lambda v: (len(v), v))
    return {"model_stats": [statistics.model_stat(MODEL, v, figures.get(v, {})) for v in versions]}


def model_ready(model: str, version: str | None) -> dict:
    """Whether the model (or one version) can be served: ``{"name", "ready"[, "version"]}``."""
    number = model_version(model, version)
    is_ready = workers_ready() and (number is None or servable(number))
    return {"name": MODEL, "ready": is_ready} | ({"version": str(number)} if number is not None else {})


def version_to_serve(model: str, version: str | None) -> int | None:
    """The version an inference request names (None: the active one), checked before its body is
    read: 404 for another model, an unknown version or one that may not be served. A version other
    than the active one needs the admin token: a worker keeps two versions at hand, and anyone
    cycling through others would have every batch wait for a model to load."""
    number = model_version(model, version)
    if number is not None and number != services().store.active_version():
        check((settings().admin_token,), "admin", ADMIN_DISABLED)
    if number is not None and not servable(number):
        raise ApiError(404, "version_not_servable", f"version {number} did not pass its check and is not served")
    return number


def infer(
    number: int | None,
    inputs: list[InputTensor],
    outputs: list[OutputRequest] | None,
    wait: float | None = None,
    timeout_ms: int | None = None,
    priority: int = 0,
) -> Inference:
    """Every image's probabilities and label, read by model version ``number`` (from
    :func:`version_to_serve`), once all have been read: one job for the whole tensor, waited for
    up to ``wait`` seconds (at most MAX_WAIT_SECONDS), then 503 ``timeout``; or up to the request's
    deadline, ``timeout_ms`` (None: the server's default; see jobs/deadlines.py), then 503
    ``deadline_exceeded``. Either way the job is expired: if not yet started, it is never read.
    ``priority`` chooses its lane (jobs/records.py, Lanes). ``outputs`` None: all."""
    name, images = _input(inputs)
    wanted = _outputs(outputs)
    config = settings()
    deadline_s = deadlines.timeout_ms(timeout_ms, config.default_timeout_ms, config.max_timeout_ms) / 1000
    wait = min(config.max_wait_seconds, config.max_wait_seconds if wait is None else wait)
    waited_for_deadline = bool(deadline_s) and deadline_s <= wait
    wait = deadline_s if waited_for_deadline else wait
    job_id, record = submit_tensor(
        name, _payload(name, images), len(images), version=number, wait=wait, timeout_ms=timeout_ms, priority=priority
    )
    if record is None:
        # Nobody will read these answers: a job not started yet is not read at all.
        if waited_for_deadline:
            reason = f"the request's deadline ({deadline_s * 1000:g} ms) passed before its images were all read"
            services().records.expire([job_id], deadlines.exceeded(reason))
            raise ApiError(503, deadlines.DEADLINE_EXCEEDED, reason)
        message = f"the images were not all read within {wait:g} s; the service is busy, retry shortly"
        services().records.expire([job_id], deadlines.exceeded(message))
        raise ApiError(503, "timeout", message, {"Retry-After": "1"})
    probabilities, labels, served = _outcomes(record)
    return Inference(probabilities, labels, str(served or number or services().store.active_version()), wanted)


def microseconds_to_ms(timeout_us: int | None) -> int | None:
    """A request's ``timeout`` parameter (microseconds, as Triton's clients send it) in whole
    milliseconds, rounded up; None for none."""
    return None if timeout_us is None else -(-timeout_us // 1000)


def model_version(model: str, version: str | None) -> int | None:
    """The version the request names (None: the active one); 404 for another model or an unknown version."""
    if model != MODEL:
        raise ApiError(404, "unknown_model", f"no model {model[:64]!r}: this server has one, {MODEL!r}")
    if version is None:
        return None
    if not _DIGITS.fullmatch(version) or services().store.card(int(version)) is None:
        raise ApiError(404, "unknown_version", f"no version {version[:64]!r} of {MODEL!r}")
    return int(version)


def servable(version: int) -> bool:
    """Whether ``version`` may be served: the active one, or one whose check passed."""
    store = services().store
    verdict = store.check(version)
    return version == store.active_version() or bool(verdict and verdict.get("ok"))


def _input(inputs: list[InputTensor]) -> tuple[str, list[tuple[str, bytes]] | np.ndarray]:
    """The one input tensor's name and its images: image files as (name, bytes), or digits as
    (N, 28, 28) uint8; checked against the limits (image files are looked at by :func:`_payload`)."""
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
    size, data = tensor.binary_data_size, tensor.data
    if size is not None:
        if type(size) is not int or not isinstance(data, bytes) or size != len(data):
            given = len(data) if isinstance(data, bytes) else 0
            raise ApiError(400, "invalid_binary_data", f"binary_data_size {size} but {given} bytes follow")
    elif data is None:
        raise ApiError(400, "missing_data", f"input {name!r} has neither data nor binary_data_size")
    if name == "image":
        return name, _image_files(data, count)
    return name, _pixels(data, count)


def _payload(name: str, images: list[tuple[str, bytes]] | np.ndarray) -> bytes:
    """The tensor job's payload (jobs/tensors.py) of the input's images; 4xx for an image file
    that is not acceptable (web/images.py), as the job API answers it."""
    if name == "pixels":
        return tensors.pack_pixels(images)
    check_images(images)
    return tensors.pack_files([file for _, file in images])


def _outputs(outputs: list[OutputRequest] | None) -> dict[str, int]:
    """The outputs to send, each with its class count; all of them, whole, when none are named."""
    if outputs is None:
        return dict.fromkeys(OUTPUTS, 0)
    if not outputs:
        raise ApiError(400, "invalid_outputs", f"outputs must name some of {sorted(OUTPUTS)}")
    wanted = {}
    for output in outputs:
        name, classes = output.name, output.classification
        if name not in OUTPUTS:
            raise ApiError(400, "unknown_output", f"no output {name[:64]!r}; see {sorted(OUTPUTS)}")
        if classes and name != "probabilities":
            raise ApiError(400, "invalid_classification", "classification applies to the output probabilities")
        if type(classes) is not int or not 0 <= classes <= 10:
            raise ApiError(400, "invalid_classification", "classification is a count of digits, 1 to 10")
        wanted[name] = classes
    return wanted


def _image_files(data: bytes | list, count: int) -> list[tuple[str, bytes]]:
    """The BYTES tensor's elements: from raw data (length-prefixed), JSON (base64 strings) or
    gRPC's typed contents (bytes)."""
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
    elif isinstance(data, list) and len(data) == count and all(isinstance(v, bytes) for v in data):
        files = data
    else:
        if not (isinstance(data, list) and len(data) == count and all(isinstance(v, str) for v in data)):
            raise ApiError(400, "invalid_data", f"data must be {count} strings: each image file in base64")
        try:
            files = [base64.b64decode(value, validate=True) for value in data]
        except (binascii.Error, ValueError):
            raise ApiError(400, "invalid_base64", "an image of data is not valid base64") from None
    return [(f"image[{i}]", file) for i, file in enumerate(files)]


def _pixels(data: bytes | list, count: int) -> np.ndarray:
    """The UINT8 tensor as (count, 28, 28) uint8, from raw data or numbers 0-255."""
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


def _outcomes(record: JobRecord) -> tuple[np.ndarray, np.ndarray, int | None]:
    """(probabilities, labels, model version) of the ended tensor job; its failure as an error
    (naming the first image that failed, as the worker wrote it)."""
    if record["status"] != "succeeded":
        error = record.get("error") or {"code": "failed", "message": "the request's job failed"}
        raise ApiError(400 if error["code"] in CLIENT_FAILURES else 503, error["code"], error["message"])
    result: tensors.TensorResult = record["result"]
    probabilities, labels = tensors.outputs(result)
    return probabilities, labels, result["model_version"]


def classified(probabilities: np.ndarray, count: int) -> list[list[str]]:
    """Each row's ``count`` highest probabilities, highest first, as the classification extension
    writes them: "<value>:<index>" (here the index is the digit)."""
    order = np.argsort(-probabilities, axis=1, kind="stable")[:, :count]
    return [[f"{row[digit]:f}:{digit}" for digit in top] for row, top in zip(probabilities, order, strict=True)]
