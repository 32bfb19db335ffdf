"""``GET /api/v1/openapi.json``: the OpenAPI 3.1 description of the HTTP API, generated.

Nothing here is a schema. Every body is a type of web/schemas.py, jobs/schemas.py, model/ or
the inference protocol's generated types, and pydantic writes its JSON Schema; every operation
is what its view declares with :func:`documented`, beside its route; the paths are the app's own
routes, and who needs which token follows from the views' decorators (web/auth.py), so the
document cannot leave a route out or name a token the code does not ask for. apispec assembles
the document; tests/fast/test_openapi.py checks it against the routes and schemathesis checks the live
service against it. Limits (images per request, the longest wait) come from the running settings.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from apispec import APISpec, BasePlugin
from flask import Blueprint, Flask, current_app, jsonify
from pydantic import BaseModel, TypeAdapter
from werkzeug.routing import Rule

from settings import Settings
from web.schemas import ERROR_HEADERS, PATH_PARAMETERS, ErrorBody, ProtocolError

bp = Blueprint("openapi", __name__)

TITLE, VERSION = "Digits", "1"
DESCRIPTION = (
    "Handwritten digit recognition as a service. Errors are always JSON "
    '{"error": {"code", "message"}} (under /v2, the Open Inference Protocol\'s {"error": "..."}). '
    "Every response carries X-Request-ID (yours if you sent a plain one of up to 64 characters), "
    "which the service's log lines name."
)
REF = "#/components/schemas/{model}"
# What each error status means, wherever it is answered.
ERRORS = {
    400: "malformed request: missing, empty or undecodable image, bad JSON, bad parameter",
    401: "no token (Authorization: Bearer <token>)",
    403: "wrong token, a token of the wrong role, or the server has no such token configured",
    404: "no such job, batch or model version (never issued, or expired)",
    408: "the request did not arrive in time (REQUEST_READ_TIMEOUT)",
    409: "conflict: the active version cannot be deleted, a model failed its check (model_refused), "
    "the model store is full (model_store_full), or feedback on a job that is not a succeeded "
    "prediction with a digit (not_a_prediction, job_not_succeeded, no_digit_read, not_a_digit)",
    413: "too large: bytes per image, pixels, bytes once decoded, images per request, request body or multipart parts",
    415: "not an image, an unsupported image format or encoding, or the wrong content type",
    429: "over the submission rate limit (rate_limited), too many pending jobs or bytes (too_many_pending, "
    "too_many_pending_bytes), too many training jobs, or too many wrong tokens",
    503: "Redis is unreachable or full, the queue is full (queue_full), no worker checked a model in time, "
    "or the images were not read in time; retry after the given seconds",
    507: "the corrections take MAX_FEEDBACK_BYTES already (feedback_store_full)",
}
SECURITY_SCHEMES = {
    "admin": "DIGITS_ADMIN_TOKEN: training, cancelling, model management",
    "predict": "DIGITS_PREDICT_TOKEN (or the admin token): predictions, polling and reads, with PREDICTIONS_NEED_TOKEN",
}


@dataclass(frozen=True)
class Raw:
    """A body that is not JSON: its media type, what it is, and its type (bytes, or str for text)."""

    media_type: str
    description: str
    type: type = bytes


@dataclass(frozen=True)
class Answer:
    """A JSON answer's type and what it means (the status's name, when not given)."""

    type: Any
    description: str = ""


def link(operation_id: str, **from_body: str) -> tuple[str, dict[str, str]]:
    """A response's link to ``operation_id``, each parameter taken from the response body at a
    JSON pointer: ``link("getJob", job_id="jobs/0/job_id")``."""
    return operation_id, {name: f"$response.body#/{pointer}" for name, pointer in from_body.items()}


@dataclass(frozen=True)
class Operation:
    """What a view documents of itself: see :func:`documented`."""

    operation_id: str | Mapping[str, str]
    summary: str
    responses: Mapping[int, Any]
    errors: tuple[int, ...] = ()
    query: Any = None
    headers: Any = None
    body: Mapping[str, Any] = field(default_factory=dict)
    links: Mapping[int, Mapping[str, tuple[str, dict[str, str]]]] = field(default_factory=dict)
    description: str = ""
    path: Mapping[str, Any] = field(default_factory=dict)


def documented(
    operation_id: str | Mapping[str, str],
    responses: Mapping[int, Any],
    errors: tuple[int, ...] = (),
    *,
    query: Any = None,
    headers: Any = None,
    body: Mapping[str, Any] | None = None,
    links: Mapping[int, Mapping[str, tuple[str, dict[str, str]]]] | None = None,
    path: Mapping[str, Any] | None = None,
    summary: str = "",
) -> Callable:
    """Declare, beside its route, what a view takes and answers. ``responses`` maps statuses to a
    type (or :class:`Answer`, or :class:`Raw`); ``errors`` are the error statuses it may answer
    (401 and 403 follow from its token decorator); ``query`` and ``headers`` are pydantic models of
    the query string and request headers; ``body`` maps media types to types; ``links`` say where
    a response's ids lead (status -> name -> :func:`link`); ``path`` gives the type of
    a path parameter other than web/schemas.py's PATH_PARAMETERS say. A type may be a function
    of the settings (a limit of the running configuration). A view on several routes names an
    operation for each: ``operation_id`` maps a method or an OpenAPI path to it. The summary is
    the docstring's first line unless given; the rest of the docstring is the description."""

    def mark(view: Callable) -> Callable:
        doc = inspect.getdoc(view) or ""
        first, _, rest = doc.partition("\n\n")
        view.__openapi__ = Operation(  # type: ignore[attr-defined]
            operation_id,
            summary or " ".join(first.split()),
            responses,
            errors,
            query,
            headers,
            body or {},
            links or {},
            " ".join(rest.split()),
            path or {},
        )
        return view

    return mark


@bp.get("/api/v1/openapi.json")
@documented("getOpenApi", {200: Answer(dict[str, Any], "OpenAPI 3.1")})
def openapi_document():
    """This document."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if "openapi" not in app.extensions:  # built once per app: its routes and settings are fixed
        app.extensions["openapi"] = document(app, app.extensions["digits"].settings)
    return jsonify(app.extensions["openapi"])


def document(app: Flask, settings: Settings) -> dict:
    """The OpenAPI document of ``app``'s documented routes, with the limits of ``settings``."""
    spec = APISpec(TITLE, VERSION, "3.1.0", plugins=[FlaskRoutes()], info={"description": DESCRIPTION})
    for name, description in SECURITY_SCHEMES.items():
        spec.components.security_scheme(name, {"type": "http", "scheme": "bearer", "description": description})
    routes = [(rule, app.view_functions[rule.endpoint]) for rule in app.url_map.iter_rules()]
    routes = [(rule, view) for rule, view in routes if hasattr(view, "__openapi__")]
    types = _Types(settings)
    for rule, view in routes:
        types.operation(rule, view)
    schemas, definitions = types.schemas()
    for name, schema in definitions.items():
        spec.components.schema(name, component=schema)
    for rule, view in routes:
        path = _path(rule)
        operations = {
            method.lower(): _operation(rule, view, method, path, schemas, settings)
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"})
        }
        spec.path(rule=rule, operations=operations)
    return spec.to_dict()


class FlaskRoutes(BasePlugin):
    """apispec's path helper for a Flask route: its OpenAPI path, ``/jobs/{job_id}``."""

    def path_helper(self, path: str | None = None, operations: dict | None = None, **kwargs: Any) -> str | None:
        rule = kwargs.get("rule")
        return _path(rule) if rule is not None else path


def _path(rule: Rule) -> str:
    return re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)


class _Types:
    """Every type the operations name, made into JSON Schema at once (shared definitions become components)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.wanted: dict[tuple[Any, str], TypeAdapter] = {}

    def resolve(self, kind: Any) -> Any:
        """A type, with a limit of the settings applied where it is a function of them."""
        if inspect.isfunction(kind):
            return kind(self.settings)
        return kind

    def add(self, kind: Any, mode: str) -> None:
        kind = self.resolve(kind)
        if kind is not None and not isinstance(kind, Raw) and (kind, mode) not in self.wanted:
            self.wanted[kind, mode] = TypeAdapter(kind)

    def operation(self, rule: Rule, view: Callable) -> None:
        operation: Operation = view.__openapi__  # type: ignore[attr-defined]
        for answers in operation.responses.values():
            for answer in answers if isinstance(answers, list) else [answers]:
                self.add(answer.type if isinstance(answer, Answer) else answer, "serialization")
        for body in operation.body.values():
            self.add(body, "validation")
        self.add(ProtocolError if rule.rule.startswith("/v2") else ErrorBody, "serialization")

    def schemas(self) -> tuple[dict, dict]:
        keyed = [(key, mode, adapter) for (key, mode), adapter in self.wanted.items()]
        schemas, definitions = TypeAdapter.json_schemas(keyed, ref_template=REF)  # type: ignore[arg-type]
        return schemas, definitions.get("$defs", {})


def _schema(schemas: dict, kind: Any, mode: str, settings: Settings) -> dict:
    return schemas[kind(settings) if inspect.isfunction(kind) else kind, mode]


def _operation(rule: Rule, view: Callable, method: str, path: str, schemas: dict, settings: Settings) -> dict:
    operation: Operation = view.__openapi__  # type: ignore[attr-defined]
    ids = operation.operation_id
    operation_id = ids if isinstance(ids, str) else ids.get(method) or ids[path]
    token = _token(view, settings)
    answer: dict[str, Any] = {"operationId": operation_id, "summary": operation.summary}
    if operation.description:
        answer["description"] = operation.description
    parameters = [_path_parameter(name, operation.path.get(name)) for name in sorted(rule.arguments, key=path.find)]
    for model, where in ((operation.query, "query"), (operation.headers, "header")):
        if model is not None:
            parameters += _parameters(model(settings) if inspect.isfunction(model) else model, where)
    if parameters:
        answer["parameters"] = parameters
    if operation.body:
        content = {media: _content(schemas, body, "validation", settings) for media, body in operation.body.items()}
        answer["requestBody"] = {"required": True, "content": content}
    if token:
        answer["security"] = [{"admin": []}] if token == "admin" else [{"predict": []}, {"admin": []}]
    error = ProtocolError if rule.rule.startswith("/v2") else ErrorBody
    errors = set(operation.errors) | ({401, 403, 429} if token else set())
    answer["responses"] = {
        **{str(status): _response(schemas, status, kind, settings) for status, kind in operation.responses.items()},
        **{str(status): _error(schemas, status, error, settings) for status in sorted(errors)},
    }
    for status, links in operation.links.items():
        answer["responses"][str(status)]["links"] = {
            name: {"operationId": target, "parameters": parameters} for name, (target, parameters) in links.items()
        }
    return answer


def _token(view: Callable, settings: Settings) -> str | None:
    """Which token the view asks for now (web/auth.py marks its decorators), if any."""
    token = getattr(view, "__token__", None)
    if token == "predict" and not settings.predictions_need_token:
        return None
    return token


def _content(schemas: dict, kind: Any, mode: str, settings: Settings) -> dict:
    if isinstance(kind, Raw):
        return {"schema": TypeAdapter(kind.type).json_schema(mode="serialization")}
    return {"schema": _schema(schemas, kind, mode, settings)}


def _response(schemas: dict, status: int, kind: Any, settings: Settings) -> dict:
    if isinstance(kind, list):  # one answer in several media types
        responses = [_response(schemas, status, one, settings) for one in kind]
        content = {media: body for response in responses for media, body in response["content"].items()}
        return {"description": responses[0]["description"], "content": content}
    if isinstance(kind, Raw):
        return {"description": kind.description, "content": {kind.media_type: _content(schemas, kind, "", settings)}}
    if kind is None:
        return {"description": HTTPStatus(status).phrase}
    answer = kind if isinstance(kind, Answer) else Answer(kind)
    response: dict[str, Any] = {
        "description": answer.description or HTTPStatus(status).phrase,
        "content": {"application/json": _content(schemas, answer.type, "serialization", settings)},
    }
    return response


def _error(schemas: dict, status: int, body: Any, settings: Settings) -> dict:
    """An error answer: the API's (or the protocol's) error body, and the headers that status carries."""
    response = _response(schemas, status, Answer(body, ERRORS[status]), settings)
    if status in ERROR_HEADERS:
        response["headers"] = {name: _header(kind) for name, kind in ERROR_HEADERS[status].items()}
    return response


def _header(kind: Any) -> dict:
    schema = TypeAdapter(kind).json_schema()
    description = schema.pop("description", None)
    return {"required": True, "schema": schema} | ({"description": description} if description else {})


def _path_parameter(name: str, kind: Any) -> dict:
    kind = kind or PATH_PARAMETERS.get(name, str)
    schema = TypeAdapter(kind).json_schema()
    description = schema.pop("description", None)
    parameter = {"name": name, "in": "path", "required": True, "schema": schema}
    return parameter | ({"description": description} if description else {})


def _parameters(model: type[BaseModel], where: str) -> list[dict]:
    """A pydantic model's fields as query or header parameters (a header by its alias)."""
    schema = model.model_json_schema(by_alias=True)
    required = set(schema.get("required", ()))
    parameters = []
    for name, prop in schema.get("properties", {}).items():
        prop = dict(prop)
        prop.pop("title", None)
        description = prop.pop("description", None)
        if "anyOf" in prop:  # optional: a parameter that is absent is what null would say
            options = [option for option in prop.pop("anyOf") if option.get("type") != "null"]
            description = description or next((o.pop("description", None) for o in options), None)
            prop.update(options[0] if len(options) == 1 else {"anyOf": options})
            if prop.get("default", 0) is None:
                del prop["default"]
        parameter = {"name": name, "in": where, "required": name in required, "schema": prop}
        parameters.append(parameter | ({"description": description} if description else {}))
    return parameters
