"""Tracing with OpenTelemetry: off unless ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set, then one trace
per request from the web, through the job records, to the worker that reads the images.

The web's span continues the caller's ``traceparent`` (Flask's instrumentation), and each job it
records carries the request's trace context in its record (the ``traceparent`` field, W3C text),
since jobs reach workers through Redis lists, not through a messaging library OpenTelemetry
knows. A worker's batch is one span linked to the span of every job in it (a batch serves many
requests), and each job gets a span in its request's trace, from when the worker took it to its
end, linked back to the batch. Redis commands and Celery tasks (training, model checks) are
traced by their instrumentations; a Redis command outside any traced work (heartbeats, a worker
waiting on its lanes) is housekeeping and is not sampled. Log lines carry ``trace_id`` and
``span_id`` while a span is current.

Spans leave in the background (the SDK's batch processor, a thread), so an exporter that cannot
be reached costs a request nothing: spans queue, then are dropped. Nothing of OpenTelemetry is
imported while tracing is off.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Sequence
from typing import Any

from settings import get_settings

TRACE_FIELD = "traceparent"  # the job record's field holding its request's trace context
_tracer: Any = None  # this process's tracer once set up; None: tracing off


def enabled() -> bool:
    return _tracer is not None


def set_up(service: str, celery: bool = False) -> bool:
    """Start tracing in this process as ``service`` if an endpoint is set; say whether it did.
    ``celery``: trace the Celery tasks this process runs and sends."""
    global _tracer
    endpoint = get_settings().otel_exporter_otlp_endpoint
    if not endpoint or _tracer is not None:
        return _tracer is not None
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased

    # The generic endpoint names the collector; traces go to its /v1/traces (OTLP's rule).
    exporter = OTLPSpanExporter(endpoint=f"{endpoint.rstrip('/')}/v1/traces")
    sampler = ParentBased(_work_only(get_settings().trace_sample_ratio))  # a caller's decision is followed
    provider = TracerProvider(resource=Resource.create({"service.name": service}), sampler=sampler)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    RedisInstrumentor().instrument(tracer_provider=provider)
    if celery:
        from opentelemetry.instrumentation.celery import CeleryInstrumentor

        CeleryInstrumentor().instrument(tracer_provider=provider)
    _tracer = trace.get_tracer("digits")
    _install_log_fields()
    # With the collector away the SDK warns once per span it drops (a log line each, the most
    # costly thing tracing would then do): said once a minute instead.
    logging.getLogger("opentelemetry.sdk._shared_internal").addFilter(_OncePerMinute())
    logging.getLogger(__name__).info("tracing to %s as %s", endpoint, service)
    return True


def instrument_flask(app: Any) -> None:
    """Trace every request of ``app`` (continuing the caller's traceparent), when tracing is on."""
    if enabled():
        from opentelemetry.instrumentation.flask import FlaskInstrumentor

        FlaskInstrumentor().instrument_app(app, excluded_urls="healthz,readyz,metrics")


def current_context() -> str:
    """The current span's trace context as W3C ``traceparent`` text, for a job record ('' if none)."""
    if _tracer is None:
        return ""
    from opentelemetry.propagate import inject

    carrier: dict[str, str] = {}
    inject(carrier)
    return carrier.get("traceparent", "")


@contextlib.contextmanager
def batch_span(name: str, contexts: Sequence[str], attributes: dict) -> Iterator[Any]:
    """A span around a worker's batch, linked to the span of each job (their ``traceparent``s)."""
    if _tracer is None:
        yield None
        return
    from opentelemetry.trace import Link

    # The jobs of one request share its context: each is linked once.
    found = (_span_context(text) for text in dict.fromkeys(contexts) if text)
    links = [Link(context) for context in found if context]
    with _tracer.start_as_current_span(name, links=links, attributes=attributes) as span:
        yield span


def job_spans(name: str, jobs: Sequence[tuple[str, float | None, dict]], end: float, batch: Any) -> None:
    """One span per job in its request's trace (``traceparent``, epoch start, attributes), from
    when the worker took it to ``end``, linked to the ``batch`` span that served it."""
    if _tracer is None:
        return
    from opentelemetry import trace
    from opentelemetry.trace import Link

    links = [Link(batch.get_span_context())] if batch is not None else []
    for text, started, attributes in jobs:
        parent = _span_context(text) if text else None
        if parent is None or started is None:
            continue
        context = trace.set_span_in_context(trace.NonRecordingSpan(parent))
        span = _tracer.start_span(
            name, context=context, links=links, attributes=attributes, start_time=int(started * 1e9)
        )
        span.end(end_time=int(end * 1e9))


def _span_context(text: str) -> Any:
    from opentelemetry.trace import get_current_span
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    context = get_current_span(TraceContextTextMapPropagator().extract({"traceparent": text})).get_span_context()
    return context if context.is_valid else None


def _work_only(ratio: float) -> Any:
    """A sampler for root spans: ``ratio`` of them (by trace id), except a client call's (a Redis
    command) made outside any traced request or batch: that is housekeeping (heartbeats, a worker
    blocked on its lanes), a one-command trace each second per process that says nothing."""
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, Sampler, TraceIdRatioBased
    from opentelemetry.trace import SpanKind

    share = TraceIdRatioBased(min(1.0, ratio))

    class WorkOnly(Sampler):
        def should_sample(
            self, parent_context, trace_id, name, kind=None, attributes=None, links=None, trace_state=None
        ):
            chosen = ALWAYS_OFF if kind == SpanKind.CLIENT else share
            return chosen.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)

        def get_description(self) -> str:
            return f"WorkOnly({share.get_description()})"

    return WorkOnly()


class _OncePerMinute(logging.Filter):
    """Lets each message through at most once a minute (with how many were held back)."""

    def __init__(self) -> None:
        super().__init__()
        self._last: dict[str, tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        now = time.monotonic()
        last, held = self._last.get(record.msg, (-60.0, 0))
        if now - last < 60:
            self._last[record.msg] = (last, held + 1)
            return False
        self._last[record.msg] = (now, 0)
        if held:
            record.msg = f"{record.msg} ({held} more like it in the last minute)"
        return True


def _install_log_fields() -> None:
    """Every log record made while a span is current names its trace_id and span_id (hex)."""
    from opentelemetry.trace import get_current_span

    make_record = logging.getLogRecordFactory()

    def with_trace(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        context = get_current_span().get_span_context()
        if context.is_valid:
            record.trace_id = f"{context.trace_id:032x}"
            record.span_id = f"{context.span_id:016x}"
        return record

    logging.setLogRecordFactory(with_trace)
