"""Every setting of the service, each written once: its name, type, default and meaning.

Web, workers, the launcher and the model code read their settings from here and nowhere else,
from the environment (variable = field name in capitals), once per process:

    from settings import get_settings
    get_settings().max_image_bytes

A value that does not parse fails at start-up with a message naming the variable. The table in
docs/configuration.md is checked against this class by tests/fast/test_settings.py.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

MiB = 1024 * 1024


class SettingError(ValueError):
    """A setting's value cannot be used; the message names the variable and what it accepts."""


def setting(default: Any, meaning: str, choices: tuple[str, ...] = ()) -> Any:
    """A field of :class:`Settings`: its default and the one-line meaning docs/configuration.md repeats."""
    return field(default=default, metadata={"meaning": meaning, "choices": choices})


@dataclass(frozen=True)
class Settings:
    # Where the shared state lives
    redis_url: str = setting("redis://127.0.0.1:6379/0", "broker, job records and model store")
    job_ttl_seconds: int = setting(86400, "how long job records (and kept uploads) live")
    replica_ack: str = setting(
        "auto", "new jobs are answered once a replica has them (auto: when the primary has one)", ("auto", "on", "off")
    )
    replica_ack_timeout_ms: int = setting(500, "how long a replica may take to acknowledge new jobs; then 503")
    # Who may do what
    digits_admin_token: str = setting("", "bearer token for training, cancelling and model management")
    digits_api_token: str = setting("", "the admin token's old name, used when DIGITS_ADMIN_TOKEN is unset")
    digits_predict_token: str = setting("", "with PREDICTIONS_NEED_TOKEN: the token for predictions and reads")
    predictions_need_token: bool = setting(False, "true: predictions, polling and model reads need a token")
    token_failures_per_minute: int = setting(10, "wrong or missing tokens a client may send a minute; then 429")
    secret_key: str = setting("", "signs the pages' session cookie (CSRF); unset: one is shared through Redis")
    rate_limit: str = setting(
        "100 per second", "submissions per client address with jobs still pending (the limits library's syntax)"
    )
    # Limits on what a request may carry
    max_image_bytes: int = setting(10 * MiB, "largest image file")
    max_image_pixels: int = setting(40_000_000, "largest image by pixel count (checked by web and worker)")
    max_decoded_bytes: int = setting(64 * MiB, "largest image once decoded, in bytes (checked by web and worker)")
    preprocess_budget_ms: float = setting(1000.0, "time reading one image may take; beyond, it fails too_costly")
    max_digits_per_number: int = setting(32, "digits one image read as a number may hold; more fails its job")
    max_images_per_request: int = setting(1000, "images in one request")
    max_content_length: int = setting(20 * MiB, "largest request body, in bytes")
    max_wait_seconds: int = setting(30, "longest ?wait=")
    default_timeout_ms: int = setting(0, "a prediction's deadline when its request gives none, in ms (0: none)")
    max_timeout_ms: int = setting(0, "the longest deadline a prediction may have, in ms (0: no maximum)")
    max_pending_per_client: int = setting(5000, "prediction jobs one client address may have waiting")
    max_pending_bytes_per_client: int = setting(64 * MiB, "image bytes one client address may have waiting")
    max_queued_bytes: int = setting(256 * MiB, "image bytes all clients together may have waiting")
    max_finished_jobs: int = setting(40_000, "ended jobs whose records are kept; beyond, the oldest are forgotten")
    max_finished_per_client: int = setting(
        10_000, "ended jobs one client address keeps; beyond, its oldest are forgotten"
    )
    redis_high_water: float = setting(
        0.85, "share of Redis's maxmemory beyond which new work is refused (503); the caps must fit under it"
    )
    keep_uploads: bool = setting(False, "keep form uploads for their job page after the job ends")
    # Corrections (the feedback dataset)
    feedback_retention_seconds: int = setting(0, "how long corrections are kept (0: for ever; they outlive their jobs)")
    max_feedback_bytes: int = setting(64 * MiB, "bytes all corrections may take in Redis; beyond, new ones get 507")
    max_corrections_per_client: int = setting(1000, "corrections one client address may keep; beyond, 429")
    # The web's connections
    web_connections: int = setting(4000, "connections one web process holds at once")
    max_waits_per_process: int = setting(3000, "requests one web process holds waiting (?wait=) at once")
    max_waits_per_client: int = setting(1000, "requests one client address may hold waiting in one web process")
    grpc_threads: int = setting(64, "gRPC calls the gRPC server works on at once (a waiting one holds a thread)")
    request_read_timeout: float = setting(20.0, "seconds a client may take to send a request (plus 1 per 64 KB)")
    proxies: int = setting(0, "proxies in front of the web whose X-Forwarded-For and -Proto are trusted")
    drain_seconds: float = setting(
        5.0, "after SIGTERM, how long a web (or gRPC) process serves on while saying not ready (/readyz 503)"
    )
    # Queues and batching
    interactive_pending: int = setting(16, "a client with at most this many jobs pending submits to the fast lane")
    predict_batch_images: int = setting(256, "a worker takes at most this many images for one batch")
    predict_batch_budget_ms: float = setting(250.0, "a batch takes no new image after this long; the rest wait")
    worker_memory_mb: int = setting(3072, "a predict worker holding more after a batch exits (70) to start afresh")
    broker_visibility_timeout: int = setting(8, "seconds before training and check messages a worker took come back")
    training_stale_seconds: float = setting(60.0, "a training job whose worker is silent this long is failed")
    training_time_limit: float = setting(7200.0, "seconds a training job may run; then it is stopped and fails")
    max_queued_training: int = setting(4, "training jobs that may be queued or running at once")
    training_threads: int = setting(1, "threads the forest's training may use (predict workers share the cores)")
    max_model_versions: int = setting(20, "model versions the store keeps; beyond, uploads and training are refused")
    max_model_bytes: int = setting(8 * MiB, "largest model file stored")
    check_min_accuracy: float = setting(0.9, "a model must read this share of 500 MNIST test digits right to be served")
    check_max_ms_per_image: float = setting(2.0, "... and cost at most this many ms per image on a batch of 256")
    check_memory_mb: int = setting(3072, "memory (address space) the check of a model may use")
    check_seconds: float = setting(120.0, "time the check of a model may take")
    # How workers run the model
    model_backend: str = setting("litert", "what runs Keras models in workers", ("litert", "tensorflow"))
    tf_intra_op_threads: int = setting(0, "TensorFlow threads within an operation, per process (0: TF decides)")
    tf_inter_op_threads: int = setting(0, "TensorFlow threads across operations, per process (0: TF decides)")
    tf_cpp_min_log_level: str = setting("2", "TensorFlow's own log level: 0 shows its start-up notes, 2 hides them")
    mnist_dir: str = setting("", "folder with MNIST's IDX files or mnist.npz; unset: download through Keras")
    # Logs, metrics, the launcher
    log_format: str = setting("json", "log lines: one JSON object each, or text for a terminal", ("json", "text"))
    log_level: str = setting("INFO", "the lowest level logged", ("DEBUG", "INFO", "WARNING", "ERROR"))
    prometheus_multiproc_dir: str = setting("", "where gunicorn's processes keep request metrics for /metrics")
    otel_exporter_otlp_endpoint: str = setting("", "an OTLP/HTTP collector to send traces to; unset: no tracing")
    trace_sample_ratio: float = setting(1.0, "share of requests traced when the caller did not decide (0 to 1)")
    port: int = setting(8000, "where `make run` serves the web")
    grpc_port: int = setting(8001, "where `make run` serves the Open Inference Protocol over gRPC")
    redis_maxmemory: str = setting("1gb", "the memory `make run`'s embedded Redis may use (it refuses writes beyond)")

    @property
    def admin_token(self) -> str:
        """The token for training and model management (DIGITS_ADMIN_TOKEN, else its old name)."""
        return self.digits_admin_token or self.digits_api_token

    @property
    def web_graceful_timeout(self) -> int:
        """gunicorn's ``graceful_timeout`` for the web (stack/gunicorn_conf.py): the drain, then 10 s
        for what is in hand when it closes (long polls are answered at once; gunicorn's worker
        loop notices each step within a second)."""
        return math.ceil(self.drain_seconds + 10)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Every setting from ``environ`` (default: this process's environment) where set, else its default."""
        environ = os.environ if environ is None else environ
        values = {
            f.name: _parse(f, environ[f.name.upper()]) for f in dataclasses.fields(cls) if f.name.upper() in environ
        }
        return cls(**values)

    def overridden(self, overrides: Mapping[str, Any]) -> Settings:
        """A copy with ``overrides`` (by variable name, e.g. ``{"RATE_LIMIT": ""}``, values already typed)."""
        names = {f.name.upper(): f.name for f in dataclasses.fields(self)}
        return dataclasses.replace(self, **{names[key]: value for key, value in overrides.items() if key in names})

    @classmethod
    def variables(cls) -> dict[str, dataclasses.Field]:
        """Variable name -> field, in the order of the class."""
        return {f.name.upper(): f for f in dataclasses.fields(cls)}


@functools.cache
def get_settings() -> Settings:
    """This process's settings, read from the environment on first use and never again."""
    return Settings.from_environ()


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")


def _parse(f: dataclasses.Field, text: str) -> Any:
    name, kind, choices = f.name.upper(), f.type, f.metadata["choices"]
    text = text.strip()
    try:
        if kind == "bool":
            if text.lower() not in _TRUE + _FALSE:
                raise ValueError
            return text.lower() in _TRUE
        value = int(text) if kind == "int" else float(text) if kind == "float" else text
    except ValueError:
        wanted = {"bool": "true or false", "int": "a whole number", "float": "a number"}[kind]
        raise SettingError(f"{name} must be {wanted}, not {text!r}") from None
    if kind in ("int", "float") and value < 0:
        raise SettingError(f"{name} must not be negative, not {text!r}")
    if choices:
        normal = value.upper() if choices[0].isupper() else value.lower()
        if normal not in choices:
            raise SettingError(f"{name} must be one of {', '.join(choices)}, not {text!r}")
        return normal
    return value
