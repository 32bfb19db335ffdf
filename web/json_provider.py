"""Flask's JSON, written by orjson (responses carry many job records: a tenth of the cost of the
standard library's encoder), and a document nested too deep to parse is malformed input (a 400),
not a crash. Requests are still parsed by the standard library, which takes any JSON number."""

from __future__ import annotations

from typing import Any

import orjson
from flask import Response
from flask.json.provider import DefaultJSONProvider

_OPTIONS = orjson.OPT_NON_STR_KEYS


class JSONProvider(DefaultJSONProvider):
    sort_keys = False

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        return orjson.dumps(obj, default=self.default, option=_OPTIONS).decode()

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        try:
            return super().loads(s, **kwargs)
        except RecursionError:
            raise ValueError("JSON nested too deeply") from None

    def response(self, *args: Any, **kwargs: Any) -> Response:
        """A JSON response of ``args`` or ``kwargs``, as :func:`flask.jsonify` promises."""
        body = orjson.dumps(self._prepare_response_obj(args, kwargs), default=self.default, option=_OPTIONS)
        return self._app.response_class(body + b"\n", mimetype=self.mimetype)
