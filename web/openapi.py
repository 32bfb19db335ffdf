"""``GET /api/v1/openapi.json``: the OpenAPI 3.1 description of the JSON API.

Written by hand next to the code it describes, and kept true by tests: every /api/v1 route is
documented, every documented path exists, and schemathesis checks the live service against it.
Limits (images per request, longest wait) come from the running configuration.
"""

from __future__ import annotations

from flask import Blueprint, jsonify

from jobs.records import READ_MODES
from model.training.config import (
    ACTIVATION_POLICIES,
    ARCHITECTURES,
    DEFAULT_RECIPE,
    FINE_TUNE_EPOCHS,
    MAX_VERSION,
    RANGES,
    RECIPE_ARCHITECTURES,
    RECIPES,
)
from web.services import settings

bp = Blueprint("openapi", __name__)

JOB_ID = {"type": "string", "pattern": "^[0-9a-f]{32}$", "description": "32 lowercase hex digits"}
VERSION = {"type": "string", "pattern": "^[1-9][0-9]{0,9}$", "description": "a model version: a positive integer"}
TIMESTAMP = {"type": ["string", "null"], "format": "date-time"}
TOKEN = [{"bearer": []}]
WHITE_PIXEL_PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGP4DwABAQEAsTj2FAAAAABJRU5ErkJggg=="

ERROR_CODES = {
    400: "malformed request: missing, empty or undecodable image, bad JSON, bad parameter",
    401: "no token (Authorization: Bearer <token>)",
    403: "wrong token, a token of the wrong role, or the server has no such token configured",
    404: "no such job, batch or model version (never issued, or expired)",
    408: "the request did not arrive in time (REQUEST_READ_TIMEOUT)",
    409: "conflict: the active version cannot be deleted, a model failed its check (model_refused), "
    "the model store is full (model_store_full), or feedback on a job that is not a succeeded "
    "prediction with a digit (not_a_prediction, job_not_succeeded, no_digit_read, not_a_digit)",
    413: "too large: bytes per image, pixels, bytes once decoded, images per request, request body or multipart parts",
    415: "not an image, an unsupported image format, or the wrong content type",
    429: "over the submission rate limit (rate_limited), too many pending jobs or bytes (too_many_pending, "
    "too_many_pending_bytes), too many training jobs, or too many wrong tokens",
    507: "the corrections take MAX_FEEDBACK_BYTES already (feedback_store_full)",
    503: "Redis is unreachable or full, the queue is full (queue_full), or no worker checked a model in time; "
    "retry after the given seconds",
}
RETRY_AFTER = {"description": "seconds to wait before retrying", "schema": {"type": "string", "pattern": "^[0-9]+$"}}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, description: str, headers: dict | None = None, links: dict | None = None) -> dict:
    response = {"description": description, "content": {"application/json": {"schema": schema}}}
    if headers:
        response["headers"] = headers
    if links:
        response["links"] = links
    return response


def _link(operation_id: str, **parameters: str) -> dict:
    """An OpenAPI link: where a response's ids lead next (clients and schemathesis follow them)."""
    return {"operationId": operation_id, "parameters": parameters}


def _accepted(schema: str, description: str, links: dict, errors: tuple[int, ...]) -> dict:
    """The responses of a submission: 202 with where its ids lead, or one of ``errors``."""
    return {"202": _json(_ref(schema), description, links=links), **_errors(*errors)}


def _errors(*statuses: int) -> dict:
    """The error responses of an operation: the same JSON body, with Retry-After where it applies."""
    responses = {}
    for status in statuses:
        headers = None
        if status in (429, 503):
            headers = {"Retry-After": {**RETRY_AFTER, "required": True}}
        elif status == 401:
            headers = {"WWW-Authenticate": {"required": True, "schema": {"type": "string"}}}
        responses[str(status)] = _json(_ref("Error"), ERROR_CODES[status], headers)
    return responses


def _wait_parameter(limit: int) -> dict:
    return {
        "name": "wait",
        "in": "query",
        "required": False,
        "description": f"hold the request until the job(s) end or this many seconds pass (0 to {limit})",
        "schema": {"type": "number", "minimum": 0, "maximum": limit},
    }


READ = {
    "enum": list(READ_MODES),
    "default": READ_MODES[0],
    "description": "digit: each image is one digit (label); number: each image is one handwritten number (text)",
}


def _path_parameter(name: str, schema: dict) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": schema}


def schemas(max_images: int) -> dict:
    error_detail = {
        "type": "object",
        "required": ["code", "message"],
        "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
    }
    prediction = {
        "type": "object",
        "description": "a prediction; label is null (with a reason) when the image holds no digit",
        "required": ["label", "probabilities", "model_version"],
        "properties": {
            "label": {"type": ["integer", "null"], "minimum": 0, "maximum": 9},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
            "probabilities": {
                "type": ["array", "null"],
                "items": {"type": "number", "minimum": 0, "maximum": 1},
                "minItems": 10,
                "maxItems": 10,
            },
            "model_version": {"type": ["integer", "null"]},
            "input_png": {"type": "string", "contentEncoding": "base64", "description": "the 28x28 image seen"},
            "timings": {"type": "object", "additionalProperties": {"type": "number"}},
            "reason": {"type": "string"},
        },
    }
    probabilities = {
        "type": "array",
        "items": {"type": "number", "minimum": 0, "maximum": 1},
        "minItems": 10,
        "maxItems": 10,
    }
    number_digit = {
        "type": "object",
        "required": ["label", "confidence", "probabilities", "box", "input_png"],
        "properties": {
            "label": {"type": "integer", "minimum": 0, "maximum": 9},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
            "probabilities": probabilities,
            "box": {
                "type": "array",
                "items": {"type": "integer", "minimum": 0},
                "minItems": 4,
                "maxItems": 4,
                "description": "[x0, y0, x1, y1] in the sent image's pixels (upright), x1 and y1 exclusive",
            },
            "input_png": {"type": "string", "contentEncoding": "base64", "description": "the 28x28 image seen"},
        },
    }
    number_prediction = {
        "type": "object",
        "description": (
            "a number read (read=number): its digits left to right; text is empty (with a reason) when the "
            "image holds no digit"
        ),
        "required": ["text", "digits", "confidence", "model_version"],
        "properties": {
            "text": {"type": "string", "pattern": "^[0-9]*$", "description": "the digits, leading zeros kept"},
            "digits": {"type": "array", "items": number_digit},
            "confidence": {
                "type": ["number", "null"],
                "minimum": 0,
                "maximum": 1,
                "description": (
                    "the probability that the digits were found where they are (under the fitted segmentation "
                    "scoring) times each digit's confidence; null when there are no digits"
                ),
            },
            "model_version": {"type": ["integer", "null"]},
            "timings": {"type": "object", "additionalProperties": {"type": "number"}},
            "reason": {"type": "string"},
        },
    }
    training_result = {
        "type": "object",
        "required": ["model_version", "test_accuracy", "activated", "card"],
        "properties": {
            "model_version": {"type": "integer"},
            "test_accuracy": {"type": "number"},
            "held_out_accuracy": {"type": ["number", "null"], "description": "on the held-out corrections"},
            "held_out_count": {"type": "integer", "minimum": 0},
            "activated": {"type": "boolean"},
            "activation": {"type": "string", "description": "why it was or was not activated"},
            "card": _ref("ModelCard"),
        },
    }
    job = {
        "type": "object",
        "required": ["id", "type", "status", "created_at", "started_at", "finished_at", "result", "error"],
        "properties": {
            "id": JOB_ID,
            "type": {"enum": ["predict", "train", "check"]},
            "status": {"enum": ["queued", "running", "succeeded", "failed", "cancelled"]},
            "created_at": TIMESTAMP,
            "started_at": TIMESTAMP,
            "finished_at": TIMESTAMP,
            "read": {**READ, "description": "prediction jobs: what the job reads, a digit or a number"},
            "result": {
                "anyOf": [{"type": "null"}, _ref("Prediction"), _ref("NumberPrediction"), _ref("TrainingResult")]
            },
            "error": {"anyOf": [{"type": "null"}, error_detail]},
            "worker": {"type": "string", "description": "the worker process that took it"},
            "params": {"type": "object", "description": "training jobs: the parameters"},
            "progress": {"type": "object", "description": "training jobs: epoch, batch, ETA, history"},
            "cancel_requested": {"type": "boolean"},
        },
    }
    job_link = {
        "type": "object",
        "required": ["job_id", "status_url"],
        "properties": {"job_id": JOB_ID, "status_url": {"type": "string"}},
    }
    training_request = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "recipe": {
                "enum": list(RECIPES),
                "default": DEFAULT_RECIPE,
                "description": "how many epochs and which architecture, unless given: "
                + ", ".join(f"{name} {RECIPES[name]} of {arch}" for name, arch in RECIPE_ARCHITECTURES.items())
                + " (fast: about 99.2 % in under a minute; strong: the best model, which"
                " also learns that parts of digits and digits run together are no digit: it reads numbers best)",
            },
            "arch": {"enum": list(ARCHITECTURES), "description": "default: the recipe's"},
            "augment": {
                "type": "boolean",
                "description": "distort the images of the epochs between the first and the last",
            },
            "include_feedback": {"type": "boolean", "description": "mix the corrections (but the held-out ones) in"},
            "base_version": {
                "type": ["integer", "null"],
                "minimum": 1,
                "maximum": MAX_VERSION,
                "description": f"fine-tune this stored Keras version (default epochs: {FINE_TUNE_EPOCHS})",
            },
            "activate": {
                "enum": list(ACTIVATION_POLICIES),
                "default": "never",
                "description": "if-better: better on the held-out corrections and at most 0.1 point worse on "
                "MNIST test (without corrections: better on MNIST test)",
            },
            **{
                name: {
                    "type": ["integer" if kind is int else "number", "null"],
                    "minimum": low,
                    "maximum": high,
                    "description": "null or absent: the default",
                }
                for name, (kind, low, high) in RANGES.items()
            },
        },
    }
    correction = {
        "type": "object",
        "required": [
            *("job_id", "label", "predicted", "model_version"),
            *("corrected", "held_out", "created_at", "image_png"),
        ],
        "properties": {
            "job_id": JOB_ID,
            "label": {"type": "integer", "minimum": 0, "maximum": 9, "description": "the digit given"},
            "predicted": {"type": "integer", "minimum": 0, "maximum": 9},
            "model_version": {"type": ["integer", "null"]},
            "corrected": {"type": "boolean", "description": "true: the model was wrong; false: confirmed"},
            "held_out": {"type": "boolean", "description": "never trained on: it judges new versions"},
            "created_at": {"type": "string", "format": "date-time"},
            "image_png": {"type": "string", "contentEncoding": "base64", "description": "the 28x28 input"},
            "replaced": {"type": "boolean", "description": "POST only: it replaced an earlier correction of the job"},
        },
    }
    card = {
        "type": "object",
        "description": "architecture, hyper-parameters, test accuracy, confusion matrix, history...",
        "required": ["version", "format", "file_bytes", "file_sha256", "stored_at"],
        "properties": {
            "version": {"type": "integer", "minimum": 1},
            "format": {"type": "string"},
            "file_bytes": {"type": "integer"},
            "file_sha256": {"type": "string"},
            "stored_at": {"type": "string"},
        },
    }
    return {
        "Error": {"type": "object", "required": ["error"], "properties": {"error": error_detail}},
        "Prediction": prediction,
        "NumberPrediction": number_prediction,
        "TrainingResult": training_result,
        "Job": job,
        "JobLink": job_link,
        "PredictionsAccepted": {
            "type": "object",
            "required": ["batch_id", "batch_url", "jobs"],
            "properties": {
                "batch_id": JOB_ID,
                "batch_url": {"type": "string"},
                "jobs": {"type": "array", "items": _ref("JobLink"), "minItems": 1, "maxItems": max_images},
            },
        },
        "Batch": {
            "type": "object",
            "required": ["id", "total", "counts", "done", "jobs"],
            "properties": {
                "id": JOB_ID,
                "total": {"type": "integer"},
                "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
                "done": {"type": "boolean"},
                "jobs": {
                    "type": "array",
                    "description": "in submission order; an expired record is {id, status: expired}",
                    "items": {
                        "anyOf": [
                            _ref("Job"),
                            {
                                "type": "object",
                                "required": ["id", "status"],
                                "properties": {"status": {"const": "expired"}},
                            },
                        ]
                    },
                },
            },
        },
        "Correction": correction,
        "FeedbackList": {
            "type": "object",
            "required": ["total", "corrected", "bytes", "counts", "confusion", "by_model_version", "corrections"],
            "properties": {
                "total": {"type": "integer", "minimum": 0},
                "corrected": {"type": "integer", "minimum": 0, "description": "of them, where the model was wrong"},
                "bytes": {"type": "integer", "minimum": 0},
                "counts": {
                    "type": "object",
                    "description": "corrections per digit given",
                    "additionalProperties": {"type": "integer"},
                },
                "confusion": {
                    "type": "array",
                    "description": "confusion[given][predicted]: corrections giving that digit for that prediction",
                    "minItems": 10,
                    "maxItems": 10,
                    "items": {"type": "array", "items": {"type": "integer"}, "minItems": 10, "maxItems": 10},
                },
                "by_model_version": {
                    "type": "object",
                    "description": "per model version predicted: {corrected, confirmed}",
                    "additionalProperties": {"type": "object", "additionalProperties": {"type": "integer"}},
                },
                "corrections": {"type": "array", "items": _ref("Correction"), "description": "newest first"},
            },
        },
        "TrainingRequest": training_request,
        "TrainingAccepted": {"allOf": [_ref("Job"), job_link]},
        "ModelCard": card,
        "ModelList": {
            "type": "object",
            "required": ["active_version", "models"],
            "properties": {"active_version": {"type": ["integer", "null"]}, "models": {"type": "array", "items": card}},
        },
        "Readiness": {
            "type": "object",
            "required": ["status", "redis", "workers", "queue_depth"],
            "properties": {
                "status": {"enum": ["ready", "no_workers"]},
                "redis": {"const": "ok"},
                "workers": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name", "model_version"],
                        "properties": {
                            "name": {"type": "string"},
                            "model_version": {"type": ["string", "null"]},
                            "problem": {"type": "string", "description": "why it does not serve the active version"},
                        },
                    },
                },
                "queue_depth": {"type": "object", "additionalProperties": {"type": "integer"}},
            },
        },
    }


def paths(max_images: int, max_wait: int) -> dict:
    wait = _wait_parameter(max_wait)
    job_id = _path_parameter("job_id", JOB_ID)
    version = _path_parameter("version", VERSION)
    images_json = {
        "type": "object",
        "required": ["images"],
        "properties": {
            "images": {
                "type": "array",
                "minItems": 1,
                "maxItems": max_images,
                "items": {"type": "string", "description": "base64, or a data:image/...;base64, URL"},
            },
            "read": READ,
        },
    }
    images_multipart = {
        "type": "object",
        "required": ["image"],
        "properties": {
            "image": {
                "type": "array",
                "items": {"type": "string", "format": "binary"},
                "minItems": 1,
                "maxItems": max_images,
            },
            "read": READ,
        },
    }
    read = {"name": "read", "in": "query", "required": False, "schema": READ}

    def cancel(operation_id: str) -> dict:
        return {
            "operationId": operation_id,
            "summary": "Cancel a queued job at once, or ask a running training job to stop",
            "security": TOKEN,
            "parameters": [job_id],
            "responses": {"202": _json(_ref("Job"), "the job after the request"), **_errors(401, 403, 404, 503)},
        }

    return {
        "/api/v1/predictions": {
            "post": {
                "operationId": "createPredictions",
                "summary": "Submit images: one prediction job each, in order; all are accepted or none",
                "description": (
                    "With ?wait=S the answer waits until every job has ended (200, as GET /batches/{batch_id} "
                    "answers) or S seconds have passed (202). read (a form field, JSON key or query parameter) "
                    "says what each image holds: one digit, or one handwritten number. A number with more digits "
                    "than the service's limit fails alone (error code too_many_digits)."
                ),
                "parameters": [wait, read],
                "requestBody": {
                    "required": True,
                    "content": {
                        "multipart/form-data": {"schema": images_multipart},
                        "application/json": {
                            "schema": images_json,
                            "example": {"images": [WHITE_PIXEL_PNG]},
                        },
                    },
                },
                "responses": {
                    "200": _json(_ref("Batch"), "with ?wait=: every job has ended; their records"),
                    **_accepted(
                        "PredictionsAccepted",
                        "jobs queued",
                        {
                            "firstJob": _link("getJob", job_id="$response.body#/jobs/0/job_id"),
                            "batch": _link("getBatch", batch_id="$response.body#/batch_id"),
                        },
                        (400, 413, 415, 429, 503),
                    ),
                },
            }
        },
        "/api/v1/batches/{batch_id}": {
            "get": {
                "operationId": "getBatch",
                "summary": "All jobs of one submission, in order",
                "parameters": [_path_parameter("batch_id", JOB_ID), wait],
                "responses": {"200": _json(_ref("Batch"), "the batch"), **_errors(400, 404, 503)},
            }
        },
        "/api/v1/jobs": {
            "get": {
                "operationId": "listJobs",
                "summary": "The most recent jobs still kept, newest first",
                "parameters": [
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50},
                    }
                ],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["jobs"],
                            "properties": {"jobs": {"type": "array", "items": _ref("Job")}},
                        },
                        "recent jobs",
                    ),
                    **_errors(400, 503),
                },
            }
        },
        "/api/v1/jobs/{job_id}": {
            "get": {
                "operationId": "getJob",
                "summary": "A job's record",
                "parameters": [job_id, wait],
                "responses": {"200": _json(_ref("Job"), "the job"), **_errors(400, 404, 503)},
            },
            "delete": cancel("cancelJob"),
        },
        "/api/v1/jobs/{job_id}/cancel": {"post": cancel("cancelJobByPost")},
        "/api/v1/jobs/{job_id}/feedback": {
            "post": {
                "operationId": "giveFeedback",
                "summary": "Say which digit a succeeded prediction should have been (again: replaces it)",
                "parameters": [job_id],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["label"],
                                "additionalProperties": False,
                                "properties": {"label": {"type": "integer", "minimum": 0, "maximum": 9}},
                            },
                            "example": {"label": 7},
                        }
                    },
                },
                "responses": {
                    "201": _json(_ref("Correction"), "kept"),
                    **_errors(400, 404, 409, 413, 503, 507),
                },
            }
        },
        "/api/v1/feedback": {
            "get": {
                "operationId": "listFeedback",
                "summary": "The corrections, newest first, with counts per digit and a confusion table over all",
                "parameters": [
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
                    }
                ],
                "responses": {"200": _json(_ref("FeedbackList"), "the corrections"), **_errors(400, 503)},
            },
            "delete": {
                "operationId": "deleteAllFeedback",
                "summary": "Delete every correction",
                "security": TOKEN,
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["deleted"],
                            "properties": {"deleted": {"type": "integer", "minimum": 0}},
                        },
                        "how many were deleted",
                    ),
                    **_errors(401, 403, 429, 503),
                },
            },
        },
        "/api/v1/feedback/export": {
            "get": {
                "operationId": "exportFeedback",
                "summary": "The corrections in MNIST's IDX format: a tar of gzip files, oldest first",
                "description": "feedback-images-idx3-ubyte.gz (N x 28 x 28), feedback-labels-idx1-ubyte.gz "
                "(the digits given) and feedback-predicted-idx1-ubyte.gz (the digits predicted), in the same order.",
                "parameters": [
                    {
                        "name": "split",
                        "in": "query",
                        "required": False,
                        "description": "all, what training may use (train), or what judges it (held_out)",
                        "schema": {"enum": ["all", "train", "held_out"], "default": "all"},
                    }
                ],
                "responses": {
                    "200": {
                        "description": "a tar archive",
                        "content": {"application/x-tar": {"schema": {"type": "string", "format": "binary"}}},
                    },
                    **_errors(400, 503),
                },
            }
        },
        "/api/v1/feedback/{job_id}": {
            "delete": {
                "operationId": "deleteFeedback",
                "summary": "Delete the correction of one job",
                "security": TOKEN,
                "parameters": [job_id],
                "responses": {"204": {"description": "deleted"}, **_errors(401, 403, 404, 429, 503)},
            }
        },
        "/api/v1/training-jobs": {
            "post": {
                "operationId": "createTrainingJob",
                "summary": "Queue a training job; the trained model is stored as a new version",
                "security": TOKEN,
                "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("TrainingRequest")}}},
                "responses": _accepted(
                    "TrainingAccepted",
                    "training job queued",
                    {
                        "job": _link("getJob", job_id="$response.body#/job_id"),
                        "cancel": _link("cancelJob", job_id="$response.body#/job_id"),
                    },
                    (400, 401, 403, 409, 413, 429, 503),
                ),
            }
        },
        "/api/v1/models": {
            "get": {
                "operationId": "listModels",
                "summary": "Every model version with its card, and the active one",
                "responses": {"200": _json(_ref("ModelList"), "the versions"), **_errors(503)},
            },
            "post": {
                "operationId": "uploadModel",
                "summary": "Upload a .keras or .skops model as a new version (not activated)",
                "security": TOKEN,
                "requestBody": {
                    "required": True,
                    "content": {
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "required": ["file"],
                                "properties": {
                                    "file": {"type": "string", "format": "binary"},
                                    "card": {"type": "string", "description": "a JSON object: notes kept on the card"},
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "201": _json(
                        _ref("ModelCard"),
                        "stored",
                        links={"card": _link("getModel", version="$response.body#/version")},
                    ),
                    **_errors(400, 401, 403, 409, 413, 415, 429, 503),
                },
            },
        },
        "/api/v1/models/{version}": {
            "get": {
                "operationId": "getModel",
                "summary": "One version's card",
                "parameters": [version],
                "responses": {
                    "200": _json(
                        {
                            "allOf": [
                                _ref("ModelCard"),
                                {
                                    "type": "object",
                                    "required": ["active"],
                                    "properties": {"active": {"type": "boolean"}},
                                },
                            ]
                        },
                        "the card, and whether it is the active version",
                    ),
                    **_errors(404, 503),
                },
            },
            "delete": {
                "operationId": "deleteModel",
                "summary": "Delete a version (not the active one)",
                "security": TOKEN,
                "parameters": [version],
                "responses": {"204": {"description": "deleted"}, **_errors(401, 403, 404, 409, 503)},
            },
        },
        "/api/v1/models/{version}/file": {
            "get": {
                "operationId": "getModelFile",
                "summary": "The model file",
                "parameters": [version],
                "responses": {
                    "200": {
                        "description": "the .keras or .skops file",
                        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
                    },
                    **_errors(404, 503),
                },
            }
        },
        "/api/v1/models/{version}/activate": {
            "post": {
                "operationId": "activateModel",
                "summary": "Make this version the one every worker serves (within seconds, no restart)",
                "security": TOKEN,
                "parameters": [version],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["active_version"],
                            "properties": {"active_version": {"type": "integer"}},
                        },
                        "activated",
                    ),
                    **_errors(401, 403, 404, 409, 429, 503),
                },
            }
        },
        "/api/v1/openapi.json": {
            "get": {
                "operationId": "getOpenApi",
                "summary": "This document",
                "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1")},
            }
        },
        "/healthz": {
            "get": {
                "operationId": "healthz",
                "summary": "Liveness: the web process answers (says nothing of Redis or workers)",
                "responses": {
                    "200": _json(
                        {"type": "object", "required": ["status"], "properties": {"status": {"const": "ok"}}}, "alive"
                    )
                },
            }
        },
        "/readyz": {
            "get": {
                "operationId": "readyz",
                "summary": "Readiness: Redis answers and a worker with a loaded model is alive",
                "responses": {
                    "200": _json(_ref("Readiness"), "ready"),
                    "503": _json(
                        {"anyOf": [_ref("Readiness"), _ref("Error")]},
                        "no live worker (Readiness), or Redis unreachable (Error)",
                    ),
                },
            }
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "summary": "Prometheus metrics: this web's requests, and the cluster's jobs, queues and workers",
                "responses": {
                    "200": {
                        "description": "Prometheus text format",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
    }


def protocol_paths(max_images: int) -> dict:
    """The Open Inference Protocol's REST paths (web/inference_protocol.py), for the one model."""
    error = {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}

    def fails(*statuses: int) -> dict:
        return {str(s): _json(error, ERROR_CODES[s]) for s in statuses}

    def health(operation_id: str, field: str, summary: str, parameters: list | None = None) -> dict:
        body = {"type": "object", "required": [field], "properties": {field: {"type": "boolean"}}}
        return {
            "get": {
                "operationId": operation_id,
                "summary": summary,
                "parameters": parameters or [],
                "responses": {"200": _json(body, "yes"), "400": _json(body, "no"), **fails(404)},
            }
        }

    version = _path_parameter("version", {"type": "string", "pattern": "^[0-9]+$"})
    model = _path_parameter("model", {"type": "string", "enum": ["digits"]})
    tensor = {
        "type": "object",
        "required": ["name", "datatype", "shape"],
        "properties": {
            "name": {"type": "string"},
            "datatype": {"type": "string"},
            "shape": {"type": "array", "items": {"type": "integer"}},
            "data": {"type": "array"},
            "parameters": {"type": "object"},
        },
    }
    request_body = {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": "string"},
            "inputs": {
                "type": "array",
                "minItems": 1,
                "maxItems": 1,
                "items": tensor,
                "description": f"one of: image (BYTES [N], files in base64 in JSON) or pixels (UINT8 [N, 28, 28]);"
                f" N at most {max_images}",
            },
            "outputs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"name": {"type": "string"}, "parameters": {"type": "object"}},
                },
                "description": "the outputs to send (all when absent); parameters: binary_data (true: raw bytes after"
                " the JSON), classification (1-10, probabilities only: each image's most likely digits as"
                ' BYTES [N, k] "<probability>:<digit>")',
            },
            "parameters": {"type": "object"},
        },
    }
    answer = {
        "type": "object",
        "required": ["model_name", "model_version", "outputs"],
        "properties": {
            "id": {"type": "string"},
            "model_name": {"type": "string"},
            "model_version": {"type": "string"},
            "outputs": {"type": "array", "items": tensor},
        },
    }
    binary = {"schema": {"type": "string", "format": "binary"}}
    header_length = {
        "name": "Inference-Header-Content-Length",
        "in": "header",
        "required": False,
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
        "description": "binary tensor data extension: the JSON header's length; the tensors' bytes follow it",
    }

    content_encoding = {
        "name": "Content-Encoding",
        "in": "header",
        "required": False,
        "schema": {"type": "string", "enum": ["gzip", "deflate"]},
        "description": "the body compressed (tritonclient's request_compression_algorithm); it may inflate to"
        " at most MAX_CONTENT_LENGTH bytes",
    }

    def infer(operation_id: str, parameters: list) -> dict:
        return {
            "post": {
                "operationId": operation_id,
                "summary": "probabilities (FP32 [N, 10]) and label (INT64 [N], -1: no digit) of each image",
                "parameters": [*parameters, header_length, content_encoding],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": request_body}, "application/octet-stream": binary},
                },
                "responses": {
                    "200": {
                        "description": "the outputs",
                        "content": {"application/json": {"schema": answer}, "application/octet-stream": binary},
                    },
                    **fails(400, 401, 404, 413, 415, 429, 503),
                },
            }
        }

    metadata = {"type": "object", "required": ["name", "versions", "inputs", "outputs"]}

    def config(operation_id: str, parameters: list) -> dict:
        body = {"type": "object", "required": ["name", "max_batch_size", "input", "output"]}
        return {
            "get": {
                "operationId": operation_id,
                "summary": "Triton's model configuration extension: the model as perf_analyzer reads it",
                "parameters": parameters,
                "responses": {"200": _json(body, "the configuration"), **fails(404)},
            }
        }

    return {
        "/v2": {
            "get": {
                "operationId": "protocolServerMetadata",
                "summary": "Open Inference Protocol: the server",
                "responses": {"200": _json({"type": "object", "required": ["name", "version", "extensions"]}, "it")},
            }
        },
        "/v2/health/live": health("protocolLive", "live", "Open Inference Protocol: live"),
        "/v2/health/ready": health("protocolReady", "ready", "Open Inference Protocol: a worker serves predictions"),
        "/v2/models/{model}": {
            "get": {
                "operationId": "protocolModelMetadata",
                "summary": "The model's inputs, outputs and versions",
                "parameters": [model],
                "responses": {"200": _json(metadata, "the model"), **fails(404)},
            }
        },
        "/v2/models/{model}/versions/{version}": {
            "get": {
                "operationId": "protocolModelVersionMetadata",
                "summary": "One version's inputs and outputs",
                "parameters": [model, version],
                "responses": {"200": _json(metadata, "the version"), **fails(404)},
            }
        },
        "/v2/models/{model}/config": config("protocolModelConfig", [model]),
        "/v2/models/{model}/versions/{version}/config": config("protocolModelVersionConfig", [model, version]),
        "/v2/models/{model}/ready": health("protocolModelReady", "ready", "The model can be served", [model]),
        "/v2/models/{model}/versions/{version}/ready": health(
            "protocolModelVersionReady", "ready", "The version can be served", [model, version]
        ),
        "/v2/models/{model}/infer": infer("protocolInfer", [model]),
        "/v2/models/{model}/versions/{version}/infer": infer("protocolInferVersion", [model, version]),
    }


def document(max_images: int, max_wait: int) -> dict:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Digits",
            "version": "1",
            "description": (
                "Handwritten digit recognition as a service. Errors are always JSON "
                '{"error": {"code", "message"}} (under /v2, the Open Inference Protocol\'s {"error": "..."}). '
                "Every response carries X-Request-ID (yours if you sent a "
                "plain one of up to 64 characters), which the service's log lines name."
            ),
        },
        "paths": paths(max_images, max_wait) | protocol_paths(max_images),
        "components": {
            "schemas": schemas(max_images),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "DIGITS_API_TOKEN"}},
        },
    }


@bp.get("/api/v1/openapi.json")
def openapi_document():
    config = settings()
    return jsonify(document(config.max_images_per_request, config.max_wait_seconds))
