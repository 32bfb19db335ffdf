"""Every shape of the HTTP API, written once: what each request may carry (query strings, bodies,
path parameters) and what each answer holds. The views validate with these (web/validation.py),
and the OpenAPI document is generated from them (web/openapi.py).

Requests are pydantic models, each with its table of refusals (which status and code a bad field
gets); answers are TypedDicts, which cost nothing at run time. The job record and its results are
in jobs/schemas.py; the inference protocol's own types in web/inference_types.py (generated from
its published specification). A limit that comes from the running configuration (images per
request, the longest wait) makes a model per value: ``predictions_json(max_images)``.
"""

from __future__ import annotations

import functools
import re
from typing import Annotated, Any, ClassVar, Literal, NotRequired, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictInt, TypeAdapter, create_model
from pydantic_core import PydanticCustomError

# pydantic reads TypedDicts from typing_extensions on Python < 3.12
from typing_extensions import TypedDict

from jobs.schemas import READ_MODES, JobId, JobRecord, ModelCard, ReadMode
from model.results import ErrorDetail, Png
from web.inference_types import InferenceRequest, Parameters, RequestInput, RequestOutput, TensorData
from web.validation import Refusals

# --- numbers written in text: bounded before they are read ------------------------------------

MAX_NUMBER_CHARS = 32  # a number in a query string or header is read only when at most this long
# A plain decimal number: float() alone would also take "1_0", " 5", "nan" and other scripts' digits.
_DECIMAL = re.compile(r"([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?")
_WHOLE = re.compile(r"[0-9]{1,18}")

ModelT = TypeVar("ModelT", bound=BaseModel)


def _plain_decimal(value: Any) -> Any:
    """A query string's decimal number, read only when short: a regex over thousands of digits
    once cost seconds of CPU (it backtracks)."""
    if isinstance(value, str) and not (len(value) <= MAX_NUMBER_CHARS and _DECIMAL.fullmatch(value)):
        raise PydanticCustomError("decimal", "must be a plain decimal number, like 2.5")
    return value


def _whole_number(value: Any) -> Any:
    """A query string's or header's whole number: ASCII digits, at most 18 of them."""
    if isinstance(value, str) and not _WHOLE.fullmatch(value):
        raise PydanticCustomError("whole_number", "must be a whole number written in digits")
    return value


# The check of the text wraps the number's own constraints (given last, they would not reach the schema).


def decimal_text(constraints: Any) -> Any:
    """A decimal number in text, within ``constraints`` (a pydantic Field)."""
    return Annotated[float, constraints, BeforeValidator(_plain_decimal)]


def whole_number_text(constraints: Any) -> Any:
    """A whole number in text, within ``constraints`` (a pydantic Field)."""
    return Annotated[int, constraints, BeforeValidator(_whole_number)]


# --- path parameters ---------------------------------------------------------------------------

ModelVersionText = Annotated[str, Field(pattern="^[1-9][0-9]{0,9}$", description="a model version: a positive integer")]
ProtocolModelName = Literal["digits"]
ProtocolVersionText = Annotated[str, Field(pattern="^[0-9]+$", description="a model version")]
PATH_PARAMETERS: dict[str, Any] = {"job_id": JobId, "batch_id": JobId, "version": ModelVersionText}

# --- query strings ----------------------------------------------------------------------------

QUERY = ConfigDict(extra="ignore", frozen=True)
READ = Field(
    description="digit: each image is one digit (label); number: each image is one handwritten number (text)",
)
# The deadline of a submission's jobs, in milliseconds; at most a day's worth is read (MAX_TIMEOUT_MS
# lowers it further): not started by then, a job ends expired unread.
MAX_TIMEOUT_MS_READ = 86_400_000
TIMEOUT_MS = Field(
    ge=0,
    le=MAX_TIMEOUT_MS_READ,
    description="a job not started this many ms after submission ends expired, unread (0: the server's default)",
)
TimeoutMs = Annotated[int, TIMEOUT_MS]
# Triton's request priority: 0 none (the lane follows the client's backlog), 1 the highest (the fast
# lane, within the client's share of it), 2 and beyond lower (the bulk lane); read up to uint64's top.
MAX_PRIORITY = 2**64 - 1
PRIORITY = Field(
    ge=0,
    le=MAX_PRIORITY,
    description="1: the fast lane, ahead of your own backlog (at most INTERACTIVE_PENDING of your jobs"
    " there at once); 2 or more: the bulk lane; 0: by your backlog",
)
Priority = Annotated[int, PRIORITY]
StrictTimeoutMs = Annotated[StrictInt, TIMEOUT_MS]  # in JSON: a number, not text


class WaitQuery(BaseModel):
    """``?wait=S``: hold the request until the job(s) end or S seconds pass."""

    model_config = QUERY
    refusals: ClassVar = Refusals("invalid_wait")
    wait: decimal_text(Field(ge=0)) = 0.0


def _wait(max_wait: float) -> Any:
    description = f"hold the request until the job(s) end or this many seconds pass (0 to {max_wait:g})"
    return decimal_text(Field(ge=0, le=max_wait, description=description))


@functools.cache
def wait_query(max_wait: float) -> type[WaitQuery]:
    """:class:`WaitQuery` up to ``max_wait`` seconds (MAX_WAIT_SECONDS)."""
    return create_model("WaitQuery", __base__=WaitQuery, wait=(_wait(max_wait), 0.0))


class PredictionsQuery(WaitQuery):
    """A submission's query: ``?wait=``, and ``?read=`` (or as a field of the body)."""

    refusals: ClassVar = Refusals(
        "invalid_wait", {"read": "invalid_read", "timeout_ms": "invalid_timeout", "priority": "invalid_priority"}
    )
    read: Annotated[ReadMode, READ] | None = None
    timeout_ms: whole_number_text(TIMEOUT_MS) | None = None
    priority: whole_number_text(PRIORITY) | None = None


@functools.cache
def predictions_query(max_wait: float) -> type[PredictionsQuery]:
    return create_model("PredictionsQuery", __base__=PredictionsQuery, wait=(_wait(max_wait), 0.0))


class JobListQuery(BaseModel):
    model_config = QUERY
    refusals: ClassVar = Refusals("invalid_limit")
    limit: whole_number_text(Field(ge=1, le=200, description="how many, newest first")) = 50


class FeedbackListQuery(BaseModel):
    model_config = QUERY
    refusals: ClassVar = Refusals("invalid_limit")
    limit: whole_number_text(Field(ge=1, le=1000, description="how many, newest first")) = 100


class ExportQuery(BaseModel):
    model_config = QUERY
    refusals: ClassVar = Refusals("invalid_split")
    split: Annotated[
        Literal["all", "train", "held_out"],
        Field(description="all, what training may use (train), or what judges it (held_out)"),
    ] = "all"


# --- request bodies ---------------------------------------------------------------------------

WHITE_PIXEL_PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGP4DwABAQEAsTj2FAAAAABJRU5ErkJggg=="
Base64Image = Annotated[str, Field(description="an image file in base64, or a data:image/...;base64, URL")]
BinaryFile = bytes  # a file's bytes: a string of format binary in the document


class PredictionsJson(BaseModel):
    """Images to read, one job each, in order: ``{"images": ["<base64>", ...]}``."""

    model_config = ConfigDict(extra="ignore", json_schema_extra={"examples": [{"images": [WHITE_PIXEL_PNG]}]})
    refusals: ClassVar = Refusals(
        "invalid_request",
        {
            "": "invalid_json",
            "read": "invalid_read",
            "timeout_ms": "invalid_timeout",
            "priority": "invalid_priority",
            "images.*": "invalid_image",
            "images:too_short": "missing_image",
            "images:too_long": (413, "too_many_images"),
        },
    )
    # read first: a body wrong in both is refused for its read, as a form or query would be
    read: Annotated[ReadMode, READ] = READ_MODES[0]
    timeout_ms: StrictTimeoutMs | None = None
    priority: Annotated[StrictInt, PRIORITY] | None = None
    images: Annotated[list[Base64Image], Field(min_length=1)]


def predictions_json(max_images: int) -> type[PredictionsJson]:
    """:class:`PredictionsJson` of at most ``max_images`` images (MAX_IMAGES_PER_REQUEST)."""
    return _at_most(PredictionsJson, "images", Base64Image, max_images)


class PredictionsForm(BaseModel):
    """The multipart form of a submission: the ``image`` field once per image, in order."""

    read: Annotated[ReadMode, READ] = READ_MODES[0]
    timeout_ms: TimeoutMs | None = None
    priority: Priority | None = None
    image: Annotated[list[BinaryFile], Field(min_length=1)]


def predictions_form(max_images: int) -> type[PredictionsForm]:
    """:class:`PredictionsForm` of at most ``max_images`` images (MAX_IMAGES_PER_REQUEST)."""
    return _at_most(PredictionsForm, "image", BinaryFile, max_images)


@functools.cache
def _at_most(model: type[ModelT], field: str, item: object, max_items: int) -> type[ModelT]:
    """``model`` whose list ``field`` holds from one to ``max_items`` of ``item``."""
    bounded = Annotated[list[item], Field(min_length=1, max_length=max_items)]
    return create_model(model.__name__, __base__=model, **{field: (bounded, ...)})


class FeedbackBody(BaseModel):
    """The right digit for a succeeded prediction: exactly ``{"label": <0-9>}``."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"label": 7}]})
    refusals: ClassVar = Refusals("invalid_feedback", {"label": "invalid_label", "label:missing": "invalid_feedback"})
    label: Annotated[StrictInt, Field(ge=0, le=9, description="the digit the image shows")]


class ModelUpload(BaseModel):
    """A model file (multipart ``file``: .keras or .skops) and notes for its card."""

    file: BinaryFile
    card: Annotated[str, Field(description="a JSON object: notes kept on the card")] = "{}"


# The notes of an uploaded model's card: any JSON object.
CARD_NOTES = TypeAdapter(dict[str, Any])


# --- answers ----------------------------------------------------------------------------------


class RefusedImage(TypedDict):
    """One image of a refused submission, and why it was refused."""

    index: Annotated[int, Field(ge=0, description="its place in the request, from 0")]
    name: Annotated[str, Field(description="'image <filename>' for a file, 'images[i]' in JSON")]
    status: int
    code: str
    message: str


class RefusalDetail(ErrorDetail):
    """An error's ``code`` and ``message``; a refused submission also names every bad image."""

    images: NotRequired[Annotated[list[RefusedImage], Field(description="a submission's every refused image")]]


class ErrorBody(TypedDict):
    """Every refusal and failure of the job API."""

    error: RefusalDetail


RetryAfter = Annotated[str, Field(pattern="^[0-9]+$", description="seconds to wait before trying again")]
# Headers an error answer carries, by its status.
ERROR_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": Annotated[str, Field(description='Bearer realm="digits"')]},
    429: {"Retry-After": RetryAfter},
    503: {"Retry-After": RetryAfter},
}


class JobLink(TypedDict):
    job_id: JobId
    status_url: str


class PredictionsAccepted(TypedDict):
    """Submitted: one job per image, in order, and the batch they make."""

    batch_id: JobId
    batch_url: str
    jobs: list[JobLink]


class JobList(TypedDict):
    jobs: list[JobRecord]


class TrainingAccepted(JobRecord):
    """A queued training job's record, and where to follow it."""

    job_id: JobId
    status_url: str


class CorrectionAnswer(TypedDict):
    """A digit someone gave for a prediction, and the 28x28 image it is of."""

    job_id: JobId
    label: Annotated[int, Field(ge=0, le=9, description="the digit given")]
    predicted: Annotated[int, Field(ge=0, le=9)]
    model_version: int | None
    corrected: Annotated[bool, Field(description="true: the model was wrong; false: confirmed")]
    held_out: Annotated[bool, Field(description="never trained on: it judges new versions")]
    created_at: Annotated[str, Field(json_schema_extra={"format": "date-time"})]
    image_png: Png
    client: NotRequired[Annotated[str, Field(description="the address that gave it: shown with the admin token only")]]


class CorrectionKept(CorrectionAnswer):
    replaced: Annotated[bool, Field(description="it replaced an earlier correction of the job")]


class FeedbackList(TypedDict):
    """The newest corrections, and counts over all of them."""

    total: Annotated[int, Field(ge=0)]
    corrected: Annotated[int, Field(ge=0, description="of them, where the model was wrong")]
    bytes: Annotated[int, Field(ge=0)]
    counts: Annotated[dict[str, int], Field(description="corrections per digit given")]
    confusion: Annotated[
        list[Annotated[list[int], Field(min_length=10, max_length=10)]],
        Field(
            min_length=10,
            max_length=10,
            description="confusion[given][predicted]: corrections giving that digit for that prediction",
        ),
    ]
    by_model_version: Annotated[
        dict[str, dict[str, int]], Field(description="per model version predicted: {corrected, confirmed}")
    ]
    corrections: Annotated[list[CorrectionAnswer], Field(description="newest first")]


class Deleted(TypedDict):
    deleted: Annotated[int, Field(ge=0)]


class ModelListed(ModelCard):
    """A version in the list: its card and its check's verdict (null: never checked)."""

    check: Annotated[
        dict[str, Any] | None, Field(description="its check's verdict: ok, reason, accuracy, ms_per_image")
    ]


class ModelList(TypedDict):
    active_version: int | None
    models: list[ModelListed]


class ModelShown(ModelCard):
    active: bool


class ModelStored(ModelCard):
    """An uploaded version, stored (not activated) once its check passed."""

    check: dict[str, Any]


class Activated(TypedDict):
    active_version: int


class Liveness(TypedDict):
    status: Literal["ok"]


class WorkerShown(TypedDict):
    name: NotRequired[Annotated[str, Field(description="host and pid: shown with the admin token only")]]
    model_version: str | None
    problem: NotRequired[Annotated[str, Field(description="why it does not serve the active version")]]


class Readiness(TypedDict):
    status: Literal["ready", "no_workers"]
    redis: Literal["ok"]
    workers: list[WorkerShown]
    queue_depth: dict[str, int]
    # Prediction lanes no live worker with a model takes jobs from: their jobs wait until they expire.
    unserved_lanes: list[str]


class Draining(TypedDict):
    """The process is going away (SIGTERM): it serves on a little, but send it nothing new."""

    status: Literal["draining"]


# --- the inference protocol (web/inference_protocol.py) ----------------------------------------
# Its types are the published spec's (web/inference_types.py, generated); what this server takes
# beyond them is said here, each with why.


def _object_or_none(value: Any) -> Any:
    """Parameters that are not an object are ignored, as they were before the spec's types were used
    (a request that sent them was answered, and still is)."""
    return value if isinstance(value, dict) else None


def _string_or_none(value: Any) -> Any:
    """An ``id`` that is not a string is not echoed, and the request is answered, as before."""
    return value if isinstance(value, str) else None


LenientParameters = Annotated[Parameters | None, BeforeValidator(_object_or_none)]


class ProtocolInput(RequestInput):
    """An input tensor: the spec's, and the binary tensor data extension: ``data`` is absent when
    ``parameters.binary_data_size`` says how many of the bytes after the JSON header are this tensor's."""

    parameters: LenientParameters = None
    data: TensorData | None = None


class ProtocolOutput(RequestOutput):
    """An output asked for; its parameters may say ``binary_data`` (send it as raw bytes after the
    JSON) and ``classification`` (1-10, probabilities only: each image's most likely digits)."""

    parameters: LenientParameters = None


class ProtocolRequestParameters(Parameters):
    """The request parameters this server reads, as Triton's clients send them (any other is
    accepted and ignored): ``timeout``, the deadline in microseconds (tritonclient's
    ``infer(timeout=)``), and ``priority`` (tritonclient's ``priority=``: 1 the fast lane, see
    jobs/records.py Lanes); and ``binary_data_output`` (untyped: anything but true is false)."""

    timeout: (
        Annotated[
            StrictInt,
            Field(
                ge=0,
                le=MAX_TIMEOUT_MS_READ * 1000,
                description="microseconds: a job not started by then ends expired, unread, and the request"
                " is answered 503 deadline_exceeded (0: the server's default)",
            ),
        ]
        | None
    ) = None
    priority: Annotated[StrictInt, PRIORITY] | None = None


class ProtocolRequest(InferenceRequest):
    """An inference request (its JSON header, with the binary tensor data extension)."""

    refusals: ClassVar = Refusals(
        "invalid_request",
        {
            "": "invalid_json",
            "inputs": "invalid_inputs",
            "inputs.*.name": "unknown_input",
            "inputs.*.datatype": "invalid_datatype",
            "inputs.*.shape": "invalid_shape",
            "inputs.*.data": "invalid_data",
            "outputs": "invalid_outputs",
            "outputs.*.name": "unknown_output",
            "parameters.timeout": "invalid_timeout",
            "parameters.priority": "invalid_priority",
        },
    )
    id: Annotated[str | None, BeforeValidator(_string_or_none)] = None
    parameters: Annotated[ProtocolRequestParameters | None, BeforeValidator(_object_or_none)] = None
    inputs: list[ProtocolInput]
    outputs: list[ProtocolOutput] | None = None


def _lowered(value: Any) -> Any:
    """A header's token as HTTP compares it (in any case); an empty one is none."""
    if isinstance(value, str) and len(value) <= MAX_NUMBER_CHARS:
        return value.strip().lower() or None
    return value


class InferenceHeaders(BaseModel):
    """The request headers an inference request may carry beyond HTTP's own."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    refusals: ClassVar = Refusals("invalid_header_length", {"Content-Encoding": (415, "unsupported_encoding")})
    header_length: Annotated[
        whole_number_text(Field(ge=0)) | None,
        Field(
            alias="Inference-Header-Content-Length",
            description="binary tensor data extension: the JSON header's length; the tensors' bytes follow it",
        ),
    ] = None
    encoding: Annotated[
        Literal["gzip", "deflate"] | None,
        Field(
            alias="Content-Encoding",
            description="the body compressed (tritonclient's request_compression_algorithm); it may inflate "
            "to at most MAX_CONTENT_LENGTH bytes",
        ),
        BeforeValidator(_lowered),
    ] = None


class ProtocolLiveness(TypedDict):
    """What KServe's REST client reads from the health routes (the protocol needs the status only)."""

    live: bool


class ProtocolReadiness(TypedDict):
    ready: bool


class ProtocolModelReadiness(TypedDict):
    name: str
    ready: bool
    version: NotRequired[str]


class ConfigTensor(TypedDict):
    name: str
    data_type: str
    dims: list[int]
    optional: NotRequired[bool]


class ProtocolModelConfig(TypedDict):
    """Triton's model configuration extension: the model as perf_analyzer reads it."""

    name: str
    platform: str
    max_batch_size: int
    input: list[ConfigTensor]
    output: list[ConfigTensor]


class StatisticDuration(TypedDict):
    """How many requests, and their nanoseconds together."""

    count: int
    ns: int


class InferStatistics(TypedDict):
    """Triton's split of a request's time: success and fail are whole requests (submission to
    result); queue (waiting in a lane), compute_input (preprocessing), compute_infer (the batch's
    model call) and compute_output (recording the result) are parts of the successful ones."""

    success: StatisticDuration
    fail: StatisticDuration
    queue: StatisticDuration
    compute_input: StatisticDuration
    compute_infer: StatisticDuration
    compute_output: StatisticDuration
    cache_hit: StatisticDuration
    cache_miss: StatisticDuration


class ModelStatistics(TypedDict):
    """One version's figures since the store's counts began (last_inference in epoch ms, 0: never)."""

    name: str
    version: str
    last_inference: int
    inference_count: int
    execution_count: int
    inference_stats: InferStatistics
    batch_stats: list[dict]


class ProtocolModelStatistics(TypedDict):
    """Triton's statistics extension: one entry per model version."""

    model_stats: list[ModelStatistics]


class ProtocolError(TypedDict):
    """Every refusal and failure under /v2: one string, the message and its code in parentheses."""

    error: str
