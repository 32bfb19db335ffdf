"""What can go wrong when talking to the service, as exceptions a caller can tell apart."""

from __future__ import annotations


class DigitsError(Exception):
    """Base of every error the client raises on purpose."""


class ServiceUnreachable(DigitsError):
    """Nothing answered at the service's address (refused, unresolvable, or no answer in time)."""

    def __init__(self, url: str, reason: str):
        super().__init__(f"no Digits service at {url} ({reason})")
        self.url, self.reason = url, reason


class ServiceUnavailable(DigitsError):
    """The service kept answering 503 or 429 for longer than the client was allowed to retry."""

    def __init__(self, url: str, status: int, message: str, waited_s: float):
        super().__init__(f"{url} is unavailable ({status}: {message}); gave up after {waited_s:.0f} s of retries")
        self.url, self.status, self.message, self.waited_s = url, status, message, waited_s


class RequestRefused(DigitsError):
    """The service refused a request: its HTTP status and the ``{"error": {"code", "message"}}`` it sent;
    ``images``, for a submission, each refused image's ``{index, name, status, code, message}``."""

    def __init__(self, status: int, code: str, message: str, images: list[dict] | None = None):
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message
        self.images = images or []


class Interrupted(KeyboardInterrupt):
    """Ctrl-C while waiting: ``job_ids`` were submitted and are left running on the server."""

    def __init__(self, job_ids: list[str]):
        super().__init__(f"interrupted; {len(job_ids)} job(s) left running")
        self.job_ids = job_ids
