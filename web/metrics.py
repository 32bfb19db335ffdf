"""``GET /metrics`` in Prometheus text format: this web's HTTP requests, and the cluster's jobs.

gunicorn runs several web processes and a scrape reaches one of them, so the request metrics
use prometheus_client's multiprocess mode: each process writes its counts to files in
``PROMETHEUS_MULTIPROC_DIR`` and a scrape sums them all. prometheus_client chooses the mode
when it is first imported, so the variable must be set before the processes start: the
gunicorn configuration (``stack/gunicorn_conf.py``) sets it and empties the directory; without it
(``flask run``, one process) the counts are simply this process's.

Job metrics are cluster-wide and live in Redis (web/cluster_metrics.py), read at scrape time.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

from flask import Blueprint, Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.core import Metric

from settings import get_settings
from web.cluster_metrics import ClusterCollector
from web.openapi import Raw, documented
from web.services import services

MULTIPROC_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
# Anything else a client sends as a method is counted as "other" (labels must stay few).
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "<unmatched>"  # the endpoint label of requests no route matched (404s)

REQUESTS = Counter(
    "digits_http_requests", "HTTP requests answered, by method, route and status", ["method", "endpoint", "status"]
)
DURATION = Histogram(
    "digits_http_request_duration_seconds",
    "Time to answer an HTTP request, by method and route",
    ["method", "endpoint"],
)

bp = Blueprint("metrics", __name__)


def multiprocess_dir() -> str | None:
    """The shared directory if this process writes its metrics there, else None."""
    if values.ValueClass is values.MutexValue:  # chosen at import, when the variable was unset
        return None
    return get_settings().prometheus_multiproc_dir or None


def init_app(app: Flask) -> None:
    directory = multiprocess_dir()
    if directory:
        os.makedirs(directory, exist_ok=True)
    elif get_settings().prometheus_multiproc_dir:
        app.logger.warning(
            "%s was set after prometheus_client was imported; /metrics counts this process only",
            MULTIPROC_DIR_VARIABLE,
        )

    @app.before_request
    def _start_timer() -> None:
        g.metrics_started = time.perf_counter()

    # Each (method, route, status)'s counter and timer, looked up once: labels() costs more than
    # the count. Few: methods, routes and statuses are each a short, fixed list.
    series: dict[tuple[str, str, int], tuple] = {}

    @app.after_request
    def _count(response: Response) -> Response:
        method = request.method if request.method in METHODS else "other"
        endpoint = request.url_rule.rule if request.url_rule else UNMATCHED
        key = (method, endpoint, response.status_code)
        counter, timer = series.get(key) or series.setdefault(
            key, (REQUESTS.labels(method, endpoint, str(response.status_code)), DURATION.labels(method, endpoint))
        )
        counter.inc()
        started = g.get("metrics_started")
        if started is not None:
            timer.observe(time.perf_counter() - started)
        return response

    app.register_blueprint(bp)


class _ThisProcess:
    """The default registry's metrics (requests, and process figures), for one-process mode."""

    def collect(self) -> Iterator[Metric]:
        return REGISTRY.collect()


@bp.get("/metrics")
@documented("metrics", {200: Raw("text/plain", "Prometheus text format", str)})
def metrics():
    """Prometheus metrics: this web's requests, and the cluster's jobs, queues and workers.

    The classic text format (0.0.4), which every Prometheus version reads.
    """
    registry = CollectorRegistry()
    if multiprocess_dir():
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_ThisProcess())
    registry.register(ClusterCollector(services().redis))
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_PLAIN_0_0_4)
