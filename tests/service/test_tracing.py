"""Tracing: with OTEL_EXPORTER_OTLP_ENDPOINT set, one image's trace goes from the caller's
traceparent through the web to the worker that read it, received by an OTLP/HTTP receiver in
the test; off by default; log lines carry the trace ids."""

from __future__ import annotations

import json
import secrets

import pytest
import redis
import requests

from jobs import keys
from tests.conftest import OUTPUT, png_bytes
from tests.service.helpers import running_stack
from tests.service.otlp_receiver import OtlpReceiver

pytestmark = pytest.mark.slow

SERVER, CONSUMER_OR_INTERNAL = 2, (1, 5)  # OTLP's SpanKind numbers: SERVER; INTERNAL, CONSUMER


def traceparent() -> tuple[str, str, str]:
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return f"00-{trace_id}-{span_id}-01", trace_id, span_id


def log_lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


def test_one_images_trace_spans_web_and_worker_and_the_logs_name_it(mnist):
    with OtlpReceiver() as receiver:
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_BSP_SCHEDULE_DELAY": "100"}
        with running_stack(OUTPUT / "test_tracing", env=env) as stack:
            header, trace_id, caller_span = traceparent()
            image = {"image": ("seven.png", png_bytes(mnist.x_test[0]), "image/png")}
            answer = requests.post(
                f"{stack.web_url}/api/v1/predictions?wait=20", files=image, headers={"traceparent": header}, timeout=30
            )
            assert answer.status_code == 200 and answer.json()["jobs"][0]["status"] == "succeeded"
            job_id = answer.json()["jobs"][0]["id"]

            def ours(spans):
                web = [s for s in spans if s.trace_id == trace_id and s.service == "digits-web" and s.kind == SERVER]
                job = [s for s in spans if s.trace_id == trace_id and s.service == "digits-worker"]
                return (web, job) if web and job else None

            (web_span,), (job_span,) = receiver.wait_for(ours)
            batch = receiver.wait_for(lambda spans: [s for s in spans if s.name == "predict batch" and s.links])

            header2, trace2, _ = traceparent()
            broken = {"image": ("broken.png", png_bytes(mnist.x_test[1])[:60], "image/png")}
            failed = requests.post(
                f"{stack.web_url}/api/v1/predictions?wait=20",
                files=broken,
                headers={"traceparent": header2},
                timeout=30,
            )
            assert failed.json()["jobs"][0]["status"] == "failed"
            receiver.wait_for(lambda spans: [s for s in spans if s.trace_id == trace2 and s.service == "digits-worker"])
            web_log, worker_log = log_lines(stack.log_dir / "web.log"), log_lines(stack.log_dir / "w1.log")

    # The web continues the caller's trace; the worker's span of the job is the web span's child.
    assert web_span.parent_span_id == caller_span
    assert job_span.name == "predict job" and job_span.parent_span_id == web_span.span_id
    assert job_span.attributes["digits.job_id"] == job_id and job_span.attributes["digits.status"] == "succeeded"
    # The batch is a span of its own, linked to every job's span; the job's span links back to it.
    (served_by,) = [s for s in batch if (trace_id, web_span.span_id) in s.links]
    assert served_by.service == "digits-worker" and job_span.links == ((served_by.trace_id, served_by.span_id),)
    # Redis commands made for the request are in its trace; the worker's idle waits are in none.
    assert any(s.trace_id == trace_id and s.service == "digits-web" and s.parent_span_id for s in receiver.spans)
    assert not any(s.name == "BLPOP" and not s.parent_span_id for s in receiver.spans)

    # Log lines carry the trace: the web's access line names the caller's trace, the worker's
    # line about the failed image names its batch, whose span links to that request.
    (access,) = [line for line in web_log if line["logger"] == "web.access" and line.get("trace_id") == trace_id]
    assert access["span_id"] == web_span.span_id
    (failure,) = [line for line in worker_log if "job_id" in line and line.get("trace_id") and line["level"] == "INFO"]
    batch_of_failure = [s for s in receiver.spans if s.trace_id == failure["trace_id"] and s.name == "predict batch"]
    assert batch_of_failure and any(link[0] == trace2 for link in batch_of_failure[0].links)


def test_tracing_is_off_by_default_and_records_carry_no_context(stack, mnist):
    answer = requests.post(
        f"{stack.web_url}/api/v1/predictions?wait=20",
        files={"image": ("seven.png", png_bytes(mnist.x_test[0]), "image/png")},
        headers={"traceparent": traceparent()[0]},
        timeout=30,
    )
    job_id = answer.json()["jobs"][0]["id"]
    fields = redis.Redis.from_url(stack.redis_url).hgetall(keys.job(job_id))
    assert b"traceparent" not in fields and b"status" in fields
    assert all("trace_id" not in line for line in log_lines(stack.log_dir / "web.log"))
