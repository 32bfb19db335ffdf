"""The Open Inference Protocol over gRPC: Triton's ``inference.GRPCInferenceService``, whose
messages and stubs come from the ``tritonclient`` wheel (``tritonclient.grpc.service_pb2``).

Why those and not KServe's ``grpc_predict_v2.proto``: Triton's service is the same package,
service and messages plus the model configuration call (``ModelConfig``) that perf_analyzer and
Triton's clients make before they send anything; the wheel ships them compiled against the
protobuf runtime it requires, so no code is generated here and none can drift.

Each call is answered by web/dataplane.py, the work HTTP's /v2 routes do too, inside a Flask
request context made from the call: its peer's address and its ``authorization`` metadata
(``Bearer <token>``) stand where HTTP's client address and header do, so the tokens, the
per-client bounds and the waits are the HTTP ones, counted in the same Redis. Refusals become
gRPC status codes (:data:`STATUS`) with the HTTP message and code as details, ``retry-after`` in
the trailing metadata where HTTP would send ``Retry-After``.

Tensors: ``raw_input_contents`` (tritonclient's default) or the typed contents (``bytes_contents``
for ``image``, ``uint_contents`` for ``pixels``); outputs always as ``raw_output_contents``.
Classification (``class_count`` in tritonclient) as over HTTP.
"""

from __future__ import annotations

import asyncio
import io
import logging
import math
import struct
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import grpc
import kombu.exceptions
import redis
from flask import Flask, g
from google.protobuf import json_format
from tritonclient.grpc import model_config_pb2 as config_pb2
from tritonclient.grpc import service_pb2, service_pb2_grpc

from jobs.replicas import NotReplicated
from web import dataplane
from web.auth import predict_token_if_configured
from web.dataplane import OUTPUTS, InputTensor, OutputRequest
from web.errors import MAX_MESSAGE_CHARS, RETRY_AFTER_S, ApiError

log = logging.getLogger(__name__)
access_log = logging.getLogger("web.access")
T = TypeVar("T")

# An HTTP refusal's status as gRPC's code: what the client can do about it is the same.
STATUS = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    413: grpc.StatusCode.INVALID_ARGUMENT,  # over a limit of one request: sending it again will not help
    415: grpc.StatusCode.INVALID_ARGUMENT,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,  # this client's own bounds: retry after
    503: grpc.StatusCode.UNAVAILABLE,  # busy or Redis away: retry after
}
# The WSGI environ of a call's request context, but for its path and client (werkzeug's test
# EnvironBuilder makes the same for three times the CPU of the context itself).
_CALL_ENVIRON = {
    "REQUEST_METHOD": "POST",
    "SCRIPT_NAME": "",
    "QUERY_STRING": "",
    "SERVER_NAME": "grpc",
    "SERVER_PORT": "0",
    "SERVER_PROTOCOL": "HTTP/2",
    "wsgi.url_scheme": "http",
    "wsgi.version": (1, 0),
    "wsgi.errors": sys.stderr,
    "wsgi.multithread": True,
    "wsgi.multiprocess": True,
    "wsgi.run_once": False,
}
# Redis away, as the web's error handlers see it (web/errors.py).
UNREACHABLE = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, kombu.exceptions.OperationalError)
# The element of typed contents each input's datatype comes in (KServe's and Triton's protos).
CONTENTS = {"BYTES": "bytes_contents", "UINT8": "uint_contents"}


class Refused(Exception):
    """A call answered with a gRPC status instead of a message."""

    def __init__(self, code: grpc.StatusCode, details: str, retry_after: str | None = None):
        super().__init__(details)
        self.code, self.details, self.retry_after = code, details, retry_after


class InferenceService(service_pb2_grpc.GRPCInferenceServiceServicer):
    """The protocol's calls, each run on ``pool`` (they read Redis and wait, which blocks) in a
    request context of ``app``; ServerLive alone needs neither."""

    def __init__(self, app: Flask, pool: ThreadPoolExecutor):
        self.app, self.pool = app, pool

    async def ServerLive(self, request, context):
        return service_pb2.ServerLiveResponse(live=True)

    async def ServerReady(self, request, context):
        def answer():
            return service_pb2.ServerReadyResponse(ready=dataplane.workers_ready())

        return await self._call(context, "ServerReady", answer)

    async def ready(self) -> bool:
        """What ServerReady answers (the rule of the web's /readyz, web/dataplane.py), False while
        Redis does not answer (where ServerReady is refused UNAVAILABLE, as HTTP's 503): the health
        service's readiness (web/grpc_health.py)."""

        def answer() -> bool:
            with self.app.app_context():
                try:
                    return dataplane.workers_ready()
                except UNREACHABLE:
                    return False

        return await asyncio.get_running_loop().run_in_executor(self.pool, answer)

    async def ServerMetadata(self, request, context):
        def answer():
            metadata = dataplane.server_metadata()
            return service_pb2.ServerMetadataResponse(
                name=metadata["name"], version=metadata["version"], extensions=metadata["extensions"]
            )

        return await self._call(context, "ServerMetadata", answer)

    async def ModelReady(self, request, context):
        def answer():
            # Not ready, rather than NOT_FOUND, for a model or version this server does not have:
            # tritonclient's is_model_ready raises on any error status.
            try:
                ready = dataplane.model_ready(request.name, _version(request))["ready"]
            except ApiError as exc:
                if exc.status != 404:
                    raise
                ready = False
            return service_pb2.ModelReadyResponse(ready=ready)

        return await self._call(context, "ModelReady", predict_token_if_configured(answer))

    async def ModelMetadata(self, request, context):
        def answer():
            metadata = dataplane.model_metadata(request.name, _version(request))
            return service_pb2.ModelMetadataResponse(
                name=metadata["name"],
                versions=metadata["versions"],
                platform=metadata["platform"],
                inputs=[_tensor_metadata(t) for t in metadata["inputs"]],
                outputs=[_tensor_metadata(t) for t in metadata["outputs"]],
            )

        return await self._call(context, "ModelMetadata", predict_token_if_configured(answer))

    async def ModelConfig(self, request, context):
        def answer():
            config = dataplane.model_config(request.name, _version(request))

            def tensor(kind, given):
                extra = {"optional": given["optional"]} if "optional" in given else {}
                return kind(name=given["name"], data_type=given["data_type"], dims=given["dims"], **extra)

            return service_pb2.ModelConfigResponse(
                config=config_pb2.ModelConfig(
                    name=config["name"],
                    platform=config["platform"],
                    max_batch_size=config["max_batch_size"],
                    input=[tensor(config_pb2.ModelInput, t) for t in config["input"]],
                    output=[tensor(config_pb2.ModelOutput, t) for t in config["output"]],
                )
            )

        return await self._call(context, "ModelConfig", predict_token_if_configured(answer))

    async def ModelStatistics(self, request, context):
        def answer():
            # The statistics' JSON names are the message's fields (Triton defines both alike).
            stats = dataplane.model_statistics(request.name or dataplane.MODEL, _version(request))
            return json_format.ParseDict(stats, service_pb2.ModelStatisticsResponse())

        return await self._call(context, "ModelStatistics", predict_token_if_configured(answer))

    async def ModelInfer(self, request, context):
        remaining = context.time_remaining()  # the client's deadline, if it set one

        def answer():
            number = dataplane.version_to_serve(request.model_name, _version(request, "model_version"))
            inputs = _inputs(request)
            outputs = [_output(given) for given in request.outputs] or None
            inference = dataplane.infer(
                number, inputs, outputs, wait=remaining, **_deadline_and_priority(request, remaining)
            )
            return _infer_response(request, inference)

        return await self._call(context, "ModelInfer", predict_token_if_configured(answer))

    async def _call(self, context: grpc.aio.ServicerContext, method: str, answer: Callable[[], T]) -> T:
        """``answer()`` on the pool in a request context for this call; a refusal as a gRPC status."""
        started = time.perf_counter()
        # Read on the event loop's thread, which owns the call; the pool's thread gets plain values.
        environ = {"REMOTE_ADDR": _peer_address(context.peer())}
        token = dict(context.invocation_metadata() or ()).get("authorization")
        if token is not None:
            environ["HTTP_AUTHORIZATION"] = token
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self.pool, self._in_context, environ, method, answer, started)
        except Refused as refused:
            if refused.retry_after:
                context.set_trailing_metadata((("retry-after", refused.retry_after),))
            await context.abort(refused.code, refused.details)

    def _in_context(self, environ: dict, method: str, answer: Callable[[], T], started: float) -> T:
        """``answer()`` in a Flask request context whose WSGI ``environ`` holds the call's client
        address and token; one access-log line for it, as the web writes one per request."""
        code = grpc.StatusCode.OK
        call = {**_CALL_ENVIRON, "PATH_INFO": f"/grpc/{method}", "wsgi.input": io.BytesIO(), **environ}
        with self.app.request_context(call):
            g.request_id = uuid.uuid4().hex
            try:
                return answer()
            except Refused as refused:
                code = refused.code
                raise
            except Exception as exc:
                refused = _refusal(exc)
                code = refused.code
                raise refused from None
            finally:
                access_log.info(
                    "gRPC %s %s",
                    method,
                    code.name,
                    extra={
                        "status": code.name,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                        "client": environ["REMOTE_ADDR"],
                        "batch_id": g.get("batch_id"),
                        "job_ids": g.get("job_ids"),
                    },
                )


def _version(request, field: str = "version") -> str | None:
    """The version a request names; the protocol's empty string is "the model's own choice"."""
    return getattr(request, field) or None


def _peer_address(peer: str) -> str:
    """The client's address from gRPC's peer ("ipv4:127.0.0.1:5000", "ipv6:[::1]:5000", "unix:...")."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rpartition(":")[0]
    if kind == "ipv6":
        return rest.rpartition(":")[0].strip("[]")
    return rest or "unknown"


def _tensor_metadata(given: dict) -> service_pb2.ModelMetadataResponse.TensorMetadata:
    return service_pb2.ModelMetadataResponse.TensorMetadata(
        name=given["name"], datatype=given["datatype"], shape=given["shape"]
    )


def _inputs(request: service_pb2.ModelInferRequest) -> list[InputTensor]:
    """The request's input tensors: raw contents (one per input, in order) or typed contents."""
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise ApiError(400, "invalid_binary_data", f"{len(raw)} raw_input_contents for {len(request.inputs)} inputs")
    tensors = []
    for index, given in enumerate(request.inputs):
        shape = list(given.shape)
        if raw:
            tensors.append(InputTensor(given.name, given.datatype, shape, raw[index], len(raw[index])))
            continue
        field = CONTENTS.get(given.datatype)
        values = list(getattr(given.contents, field)) if field and given.HasField("contents") else None
        tensors.append(InputTensor(given.name, given.datatype, shape, values or None))
    return tensors


def _deadline_and_priority(request: service_pb2.ModelInferRequest, remaining: float | None) -> dict:
    """The jobs' deadline and priority, as web/dataplane.py's ``infer`` takes them: the call's own
    deadline or the ``timeout`` parameter (microseconds, tritonclient's ``infer(timeout=)``),
    whichever is sooner, and the ``priority`` parameter (tritonclient's ``infer(priority=)``)."""
    given = request.parameters
    timeouts = [dataplane.microseconds_to_ms(given["timeout"].int64_param)] if "timeout" in given else []
    if remaining is not None:
        timeouts.append(max(1, math.ceil(remaining * 1000)))
    positive = [ms for ms in timeouts if ms > 0]
    priority = given["priority"].uint64_param if "priority" in given else 0
    return {"timeout_ms": min(positive) if positive else None, "priority": priority}


def _output(given: service_pb2.ModelInferRequest.InferRequestedOutputTensor) -> OutputRequest:
    classification = given.parameters.get("classification")
    classes = 0 if classification is None else getattr(classification, classification.WhichOneof("parameter_choice"))
    return OutputRequest(given.name, classes)


def _infer_response(
    request: service_pb2.ModelInferRequest, inference: dataplane.Inference
) -> service_pb2.ModelInferResponse:
    response = service_pb2.ModelInferResponse(
        model_name=dataplane.MODEL, model_version=inference.model_version, id=request.id
    )
    for name, classes in inference.outputs.items():
        tensor = inference.tensor(name)
        if classes:
            rows = dataplane.classified(tensor, classes)
            raw = b"".join(struct.pack("<I", len(text)) + text.encode() for row in rows for text in row)
            response.outputs.add(name=name, datatype="BYTES", shape=[len(rows), classes])
        else:
            datatype, _, dtype = OUTPUTS[name]
            raw = tensor.astype(dtype).tobytes()
            response.outputs.add(name=name, datatype=datatype, shape=list(tensor.shape))
        response.raw_output_contents.append(raw)
    return response


def _refusal(exc: Exception) -> Refused:
    """What a call that raised ``exc`` answers: the HTTP routes' refusals, as gRPC codes."""
    if isinstance(exc, ApiError):
        message = exc.message if len(exc.message) <= MAX_MESSAGE_CHARS else exc.message[: MAX_MESSAGE_CHARS - 3] + "..."
        code = STATUS.get(exc.status, grpc.StatusCode.UNKNOWN if exc.status < 500 else grpc.StatusCode.INTERNAL)
        return Refused(code, f"{message} ({exc.code})", exc.headers.get("Retry-After"))
    retry_after = str(RETRY_AFTER_S)
    if isinstance(exc, redis.exceptions.OutOfMemoryError):
        return Refused(grpc.StatusCode.UNAVAILABLE, "the job store is full; retry shortly (store_full)", retry_after)
    if isinstance(exc, UNREACHABLE):
        log.warning("gRPC: Redis unavailable: %s", exc)
        message = "the job store is unreachable; retry shortly (unavailable)"
        return Refused(grpc.StatusCode.UNAVAILABLE, message, retry_after)
    if isinstance(exc, NotReplicated):
        message = f"{exc}; not accepted: retry shortly (not_replicated)"
        return Refused(grpc.StatusCode.UNAVAILABLE, message, retry_after)
    log.exception("gRPC call failed")
    return Refused(grpc.StatusCode.INTERNAL, "the server failed to handle this request (internal_error)")
