"""Client input checked against its typed model (web/schemas.py), and pydantic's refusals turned
into the API's, in one place.

A refusal is an :class:`~web.errors.ApiError`: a 4xx with a stable code and a message that names
the field and says what was expected and what came (shortened: nothing a client sends is echoed
whole); web/errors.py gives it the job API's or the inference protocol's shape. Which status and
code a refusal gets is the model's :class:`Refusals` table.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from flask import request
from pydantic import BaseModel, TypeAdapter, ValidationError

from web.errors import ApiError

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
SHOWN_CHARS = 40  # of a refused value, in the message


@dataclass(frozen=True)
class Refusals:
    """The status and code of a refusal, by what it is about: ``"images"`` (the field), ``"images.*"``
    (any element of it), ``"images:too_long"`` (one kind of pydantic error on it, the most specific);
    ``""`` is the input as a whole. Anything else gets 400 and ``default``."""

    default: str
    by_field: Mapping[str, tuple[int, str] | str] = field(default_factory=dict)

    def status_and_code(self, loc: tuple, kind: str) -> tuple[int, str]:
        path = ".".join("*" if isinstance(part, int) else str(part) for part in loc)
        candidates = (f"{path}:{kind}", path, *(".".join(path.split(".")[:n]) for n in range(path.count("."), 0, -1)))
        for key in candidates:
            if key in self.by_field:
                rule = self.by_field[key]
                return rule if isinstance(rule, tuple) else (400, rule)
        return 400, self.default


def validated(
    model: type[T] | TypeAdapter[T],
    data: Any,
    refusals: Refusals | None = None,
    subject: str = "the body",
    json: bool = False,
) -> T:
    """``data`` (a Python object, or JSON bytes with ``json``) as ``model`` (a pydantic model, or a
    TypeAdapter of any other type); else :class:`ApiError` by ``refusals`` (default: the model's
    own ``refusals``). ``subject`` names the input as a whole in messages."""
    try:
        if isinstance(model, TypeAdapter):
            return model.validate_json(data) if json else model.validate_python(data)
        return model.model_validate_json(data) if json else model.model_validate(data)  # type: ignore[attr-defined]
    except ValidationError as exc:
        bounds = _bounds(model)
        raise refusal(exc, refusals or model.refusals, subject, bounds) from None  # type: ignore[union-attr]


def query(model: type[M], refusals: Refusals | None = None) -> M:
    """This request's query string as ``model`` (only the fields it has: others are ignored; a
    repeated one counts once, as its first value). A query model is frozen: one without any of
    its fields is answered with the model's defaults, made once (polls are a hot path)."""
    names, defaults = _QUERIES.get(model) or _QUERIES.setdefault(model, (tuple(model.model_fields), model()))
    args = request.args
    given = {name: args[name] for name in names if name in args}
    return validated(model, given, refusals, "the query") if given else defaults


_QUERIES: dict[type, tuple[tuple[str, ...], Any]] = {}


def refusal(
    exc: ValidationError, refusals: Refusals, subject: str = "the body", bounds: Mapping[str, tuple] | None = None
) -> ApiError:
    """The API's answer to the first of pydantic's ``exc``; ``bounds`` (field -> (lowest, highest))
    lets a number out of range be told both ends of it."""
    error = exc.errors(include_url=False)[0]
    loc, kind = tuple(error["loc"]), error["type"]
    status, code = refusals.status_and_code(loc, kind)
    if len(loc) == 1 and loc[0] in (bounds or {}) and kind != "missing":  # a number in a range: say the range
        low, high = bounds[loc[0]]
        what = "" if kind in _OUT_OF_RANGE else _phrase(error).partition(", not ")[0].removeprefix("must be ") + ", "
        return ApiError(status, code, f"{loc[0]} must be {what}from {low} to {high}, not {_shown(error['input'])}")
    return ApiError(status, code, f"{_where(loc, subject)} {_phrase(error)}")


_OUT_OF_RANGE = frozenset({"greater_than_equal", "less_than_equal", "greater_than", "less_than"})


def _bounds(model: Any) -> dict[str, tuple]:
    """The fields of a pydantic model that have both a lowest and a highest value."""
    found = {}
    for name, info in getattr(model, "model_fields", {}).items():
        low = next((m.ge for m in info.metadata if getattr(m, "ge", None) is not None), None)
        high = next((m.le for m in info.metadata if getattr(m, "le", None) is not None), None)
        if low is not None and high is not None:
            found[name] = (low, high)
    return found


def _where(loc: tuple, subject: str) -> str:
    where = ""
    for part in loc:
        where += f"[{part}]" if isinstance(part, int) else f".{part}" if where else str(part)
    return where or subject


def _phrase(error: dict) -> str:
    kind, message = error["type"], error["msg"]
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "is not a field this takes"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"must be a JSON object, not {_shown(error['input'])}"
    if kind == "json_invalid":
        return f"is not JSON ({message.removeprefix('Invalid JSON: ')})"
    if kind == "literal_error":  # the choices as a list people read: "one of digit, number"
        choices = ", ".join(re.findall(r"'([^']*)'", error.get("ctx", {}).get("expected", "")))
        return f"must be one of {choices}, not {_shown(error['input'])}"
    if message.startswith("Input should be "):
        message = "must be " + message.removeprefix("Input should be ")
    elif message[:1].isupper() and not message[1:2].isupper():
        message = message[0].lower() + message[1:]
    if kind in ("too_long", "too_short"):  # pydantic's message already says how many came
        return message.replace("list should have", "must have").replace(" after validation", "")
    return f"{message}, not {_shown(error['input'])}"


def _shown(value: Any) -> str:
    """A refused value, shortened: a string or number as written (up to SHOWN_CHARS), else its kind."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value) if len(value) <= SHOWN_CHARS else repr(value[:SHOWN_CHARS]) + "..."
    if isinstance(value, int | float):
        text = str(value) if not isinstance(value, int) or value.bit_length() < 128 else "a very large number"
        return text[:SHOWN_CHARS]
    return {dict: "an object", list: "a list"}.get(type(value), type(value).__name__)
