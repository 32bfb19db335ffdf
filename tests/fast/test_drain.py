"""Draining a web process (web/draining.py), in this process: /readyz and /v2/health/ready say no
the moment the drain begins, waiting requests go on until it closes and are then answered with
what there is, and nothing waits afterwards. A real restart under load:
tests/service/test_drain_stack.py.
"""

from __future__ import annotations

import threading
import time


def test_a_draining_process_says_not_ready_at_once_and_answers_its_waits_when_it_closes(redis_client):
    from web import create_app

    url = redis_client.connection_pool.connection_kwargs
    app = create_app({"REDIS_URL": f"redis://127.0.0.1:{url['port']}/1"})
    svc = app.extensions["digits"]
    (job_id,) = svc.records.create("predict").ids
    answers = []
    with app.test_request_context():
        waiting = threading.Thread(
            target=lambda: answers.append(svc.waiter.wait(job_id, 30, lambda: svc.records.get(job_id), "a")),
            daemon=True,
        )
        waiting.start()
        time.sleep(0.3)
        svc.drain.begin()
        client = app.test_client()
        assert client.get("/readyz").get_json() == {"status": "draining"} and client.get("/readyz").status_code == 503
        assert client.get("/v2/health/ready").status_code == 400
        assert not answers, "the wait goes on while the process serves on"
        closed = time.monotonic()
        svc.drain.close()
        waiting.join(timeout=5)
        assert answers and answers[0]["status"] == "queued" and time.monotonic() - closed < 1
        started = time.monotonic()
        assert svc.waiter.wait(job_id, 30, lambda: svc.records.get(job_id), "a")["status"] == "queued"
        assert time.monotonic() - started < 1, "once closed, nothing waits"
