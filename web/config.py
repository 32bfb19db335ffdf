"""The web's settings: defaults, overridden by environment variables of the same name."""

from __future__ import annotations

import os

from jobs.queue import job_ttl_seconds, redis_url


def _flag(text: str) -> bool:
    return text.strip().lower() in ("1", "true", "yes", "on")


# name -> (default, parser); every one can be set in the environment.
SETTINGS = {
    "MAX_IMAGE_BYTES": (10 * 1024 * 1024, int),
    "MAX_IMAGE_PIXELS": (40_000_000, int),
    "MAX_IMAGES_PER_REQUEST": (1000, int),
    "MAX_CONTENT_LENGTH": (20 * 1024 * 1024, int),  # whole request body, in bytes
    "MAX_WAIT_SECONDS": (30, int),
    "MAX_PENDING_PER_CLIENT": (5000, int),  # queued or running prediction jobs per client address
    "PREDICT_MESSAGE_IMAGES": (64, int),  # images per queue message of a batch submission
    "DIGITS_API_TOKEN": ("", str),
    # Predictions and job polling are open to anyone by default; true makes them need the token too.
    "PREDICTIONS_NEED_TOKEN": (False, _flag),
    "SECRET_KEY": ("", str),  # signs session cookies (CSRF); unset: one shared through Redis, see web/security.py
    # Submissions (POST predictions, training jobs, the upload form) per client address, shared by
    # all three; flask-limiter syntax, ";" between limits. Empty disables it (benchmarks).
    "RATE_LIMIT": ("50 per second;2000 per minute", str),
    "LOG_FORMAT": ("json", str),  # json (one object per line) or text
    "LOG_LEVEL": ("INFO", str),
}
# Multipart parts beyond the images (e.g. a model upload's card), so a request with
# MAX_IMAGES_PER_REQUEST images passes werkzeug's part limit and one with thousands fails fast.
EXTRA_FORM_PARTS = 16


def from_environment() -> dict:
    """Every setting, from the environment where set, else its default."""
    config = {
        name: parse(os.environ[name]) if name in os.environ else default for name, (default, parse) in SETTINGS.items()
    }
    config["REDIS_URL"] = redis_url()
    config["JOB_TTL_SECONDS"] = job_ttl_seconds()
    return config


def derive(config: dict) -> None:
    """Settings that follow from others (called after any overrides)."""
    config["MAX_FORM_PARTS"] = config["MAX_IMAGES_PER_REQUEST"] + EXTRA_FORM_PARTS
