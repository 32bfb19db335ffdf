"""Write deploy/grafana/digits-dashboard.json, the Grafana dashboard of the service's /metrics,
or with ``--check`` say whether the committed file is what this script writes.

    python deploy/grafana/generate.py [--check]

The panels are listed below as (title, unit, queries); the layout, ids and Grafana's boilerplate
follow from the list, so a panel is one line to add. Import the JSON in Grafana (Dashboards ->
New -> Import) and pick a Prometheus data source that scrapes every web process's /metrics.

Every web process reports the same cluster-wide figures (jobs, lanes, workers, Redis: read from
Redis at scrape time), so those queries take ``max`` across the scraped processes, not ``sum``,
which would count them once per web process; only ``digits_http_*`` are per process and summed.
tests/service/test_dashboard.py checks that every metric these queries name is in a live scrape.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

TARGET = Path(__file__).resolve().parent / "digits-dashboard.json"
WIDTH, HEIGHT, PER_ROW = 12, 8, 2  # Grafana's grid is 24 wide


def quantiles(histogram: str, by: str = "") -> list[tuple[str, str]]:
    """p50, p95 and p99 of a cluster-wide histogram (``by`` a label kept, such as lane)."""
    keep = f"le, {by}" if by else "le"
    legend = f"p{{q}} {{{{{by}}}}}" if by else "p{q}"
    return [
        (f"histogram_quantile({q / 100}, max by ({keep}) (rate({histogram}_bucket[5m])))", legend.format(q=q))
        for q in (50, 95, 99)
    ]


PANELS: list[tuple[str, str, list[tuple[str, str]]]] = [
    (
        "Throughput: predictions ended per second, by outcome",
        "ops",
        [('max by (outcome) (rate(digits_jobs_total{type="predict"}[1m]))', "{{outcome}}")],
    ),
    ("Latency: submission to result", "s", quantiles("digits_job_latency_seconds")),
    (
        "Queue wait per lane: submission until a worker took the job",
        "s",
        quantiles("digits_job_queue_wait_seconds", "lane"),
    ),
    ("Service time per lane: taken until ended", "s", quantiles("digits_job_service_seconds", "lane")),
    (
        "Jobs in flight and waiting, per lane",
        "short",
        [
            ("max by (lane) (digits_jobs_in_flight)", "in flight {{lane}}"),
            ("max by (queue) (digits_queue_depth)", "waiting {{queue}}"),
        ],
    ),
    ("Oldest queued job's age, per lane", "s", [("max by (lane) (digits_queue_oldest_age_seconds)", "{{lane}}")]),
    (
        "Failures by reason, and expiries",
        "ops",
        [
            ("max by (type, reason) (rate(digits_job_failures_total[5m]))", "{{type}} {{reason}}"),
            ("max by (lane) (rate(digits_jobs_expired_total[5m]))", "expired {{lane}}"),
        ],
    ),
    (
        "Workers: live, and serving each lane",
        "short",
        [
            ("max(digits_workers_live)", "live"),
            ("max by (lane) (digits_lane_workers)", "serving {{lane}}"),
        ],
    ),
    (
        "Redis memory",
        "bytes",
        [
            ("max(digits_redis_memory_used_bytes)", "used"),
            ("max(digits_redis_memory_max_bytes) > 0", "maxmemory"),
        ],
    ),
    (
        "Images per model call (mean) and model calls per second",
        "short",
        [
            ("max(rate(digits_batch_size_sum[5m])) / max(rate(digits_batch_size_count[5m]))", "images per call"),
            ("max(rate(digits_batch_size_count[5m]))", "calls per second"),
        ],
    ),
    (
        "HTTP requests per second, by status",
        "reqps",
        [("sum by (status) (rate(digits_http_requests_total[1m]))", "{{status}}")],
    ),
    (
        "Redis answering scrapes, and the active model version",
        "short",
        [("min(digits_redis_up)", "redis up"), ("max(digits_active_model_version)", "active version")],
    ),
]


def dashboard() -> dict:
    source = {"type": "prometheus", "uid": "${datasource}"}
    panels = []
    for index, (title, unit, queries) in enumerate(PANELS):
        panels.append(
            {
                "id": index + 1,
                "type": "timeseries",
                "title": title,
                "datasource": source,
                "gridPos": {"h": HEIGHT, "w": WIDTH, "x": (index % PER_ROW) * WIDTH, "y": (index // PER_ROW) * HEIGHT},
                "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
                "options": {"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi"}},
                "targets": [
                    {"refId": chr(ord("A") + n), "datasource": source, "expr": expr, "legendFormat": legend}
                    for n, (expr, legend) in enumerate(queries)
                ],
            }
        )
    return {
        "title": "Digits: handwritten digit recognition",
        "uid": "digits-service",
        "tags": ["digits"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {
            "list": [{"name": "datasource", "label": "Prometheus", "type": "datasource", "query": "prometheus"}]
        },
        "annotations": {"list": []},
        "panels": panels,
    }


def text() -> str:
    return json.dumps(dashboard(), indent=2) + "\n"


def main(argv: list[str]) -> int:
    if "--check" in argv:
        if TARGET.read_text() != text():
            print(f"{TARGET} is not what {Path(__file__).name} writes: run it", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
