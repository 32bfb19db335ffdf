"""HTTP to the service: timeouts on every call, JSON errors as exceptions, and patient retries.

503 (the service has lost Redis) and 429 (rate limited) mean "not now": the request was not
accepted, so it is sent again after the server's ``Retry-After`` (or a growing pause without
one) until ``retry_for`` seconds have passed.
"""

from __future__ import annotations

import email.utils
import time
from typing import Any

import requests

from client.errors import RequestRefused, ServiceUnavailable, ServiceUnreachable

RETRYABLE_STATUSES = frozenset({429, 503})
CONNECT_TIMEOUT_S = 3.0  # a dead address must fail in seconds, not minutes
MAX_PAUSE_S = 30.0


class Transport:
    """One keep-alive session to ``base_url``; every method returns the decoded JSON body."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        timeout: float = 30.0,
        retry_for: float = 60.0,
        session: requests.Session | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.retry_for = retry_for
        self.session = session or requests.Session()
        self.reached = False  # once the service has answered, a lost connection is worth retrying

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict | None = None,
        json: Any = None,
        files: list | None = None,
        extra_read_s: float = 0.0,
        retry_connection: bool = False,
    ) -> Any:
        """Send one request, retrying 503/429 as the server asks; return the JSON body of the answer.

        Raises :class:`ServiceUnreachable` when nothing answers (with ``retry_connection``, for
        idempotent calls, retried first if the service answered before), :class:`ServiceUnavailable`
        when retries run out, and :class:`RequestRefused` for any other error status.
        ``extra_read_s`` lengthens the read timeout for long-polls.
        """
        url = f"{self.base_url}{path}"
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        started = time.monotonic()
        failures = 0
        while True:
            try:
                response = self.session.request(
                    method,
                    url,
                    params=params,
                    json=json,
                    files=files,
                    headers=headers,
                    timeout=(CONNECT_TIMEOUT_S, self.timeout + extra_read_s),
                )
            except requests.ConnectionError as exc:
                failures += 1
                pause = _backoff(failures)
                if retry_connection and self.reached and time.monotonic() - started + pause <= self.retry_for:
                    time.sleep(pause)
                    continue
                raise ServiceUnreachable(self.base_url, _reason(exc)) from None
            except requests.Timeout:
                waited = self.timeout + extra_read_s
                raise ServiceUnreachable(self.base_url, f"no answer within {waited:.0f} s") from None
            self.reached = True
            if response.status_code in RETRYABLE_STATUSES:
                failures += 1
                pause = retry_after(response) or _backoff(failures)
                waited = time.monotonic() - started
                if waited + pause > self.retry_for:
                    _, message = _error_of(response)
                    raise ServiceUnavailable(self.base_url, response.status_code, message, waited)
                time.sleep(pause)
                continue
            if response.status_code >= 400:
                code, message = _error_of(response)
                raise RequestRefused(response.status_code, code, message, _refused_images(response))
            try:
                return response.json()
            except ValueError:
                raise RequestRefused(
                    response.status_code, "not_json", f"{url} did not answer JSON: is it Digits?"
                ) from None


def retry_after(response: requests.Response) -> float | None:
    """Seconds the server asked us to wait (``Retry-After`` as seconds or an HTTP date), capped."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), MAX_PAUSE_S)


def _backoff(failures: int) -> float:
    return min(0.5 * 2 ** (failures - 1), 8.0)


def _error_of(response: requests.Response) -> tuple[str, str]:
    """The API's ``(code, message)``, or something readable when the body is not the API's JSON."""
    try:
        error = response.json()["error"]
        return str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        text = " ".join(response.text.split())[:200]
        return f"http_{response.status_code}", text or response.reason or "no message"


def _refused_images(response: requests.Response) -> list[dict]:
    """A refused submission's every bad image (``error.images``), as far as the answer names them."""
    try:
        images = response.json()["error"].get("images") or []
    except (ValueError, KeyError, TypeError, AttributeError):
        return []
    return [image for image in images if isinstance(image, dict) and isinstance(image.get("index"), int)]


def _reason(exc: requests.ConnectionError) -> str:
    text = str(exc)
    if isinstance(exc, requests.ConnectTimeout):
        return f"no answer within {CONNECT_TIMEOUT_S:.0f} s"
    if "refused" in text.lower():
        return "connection refused"
    if "name or service not known" in text.lower() or "nodename nor servname" in text.lower():
        return "unknown host"
    return "cannot connect"
