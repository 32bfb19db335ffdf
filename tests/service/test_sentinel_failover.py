"""Redis fails over under load: a primary, a replica and three sentinels on loopback, the service
(gunicorn and one predict worker) on the Sentinel URL, a client submitting steadily, and the
primary SIGKILLed. The service answers again within 15 s, and every job it answered 202 ends."""

from __future__ import annotations

import base64
import threading
import time
from dataclasses import dataclass, field

import pytest
import requests

from jobs.records import TERMINAL
from stack.processes import PREDICT_QUEUES, Stack
from stack.redis_server import ReplicatedRedis
from tests.conftest import OUTPUT, TOKEN, png_bytes

pytestmark = pytest.mark.slow

RECOVERY_GOAL_S = 15
DOWN_AFTER_MS = 1000  # Sentinel's own detection; its election adds about a second or two
SUBMIT_EVERY_S = 0.05
STEADY_AFTER_S = 5  # answered 202 throughout this long after the kill: the failover is over


@dataclass
class Load:
    """What a client submitting one image every SUBMIT_EVERY_S saw: per submission, when it was
    sent and answered, and the job ids of those accepted (202)."""

    sent: list[float] = field(default_factory=list)
    answered: list[float] = field(default_factory=list)
    accepted: list[str | None] = field(default_factory=list)  # the job id, or None when refused
    refusals: list[str] = field(default_factory=list)

    def run(self, url: str, body: dict, stop: threading.Event) -> None:
        session = requests.Session()
        while not stop.is_set():
            started = time.monotonic()
            job_id = None
            try:
                answer = session.post(f"{url}/api/v1/predictions", json=body, timeout=10)
                if answer.status_code == 202:
                    job_id = answer.json()["jobs"][0]["job_id"]
                else:
                    self.refusals.append(f"{answer.status_code} {answer.text[:120]}")
            except requests.RequestException as exc:
                self.refusals.append(repr(exc)[:120])
            self.sent.append(started)
            self.answered.append(time.monotonic())
            self.accepted.append(job_id)
            stop.wait(max(0.0, SUBMIT_EVERY_S - (time.monotonic() - started)))


def steady(load: Load, killed_at: float) -> bool:
    """Whether every submission sent in the last STEADY_AFTER_S (all of them after the kill) was accepted."""
    now = time.monotonic()
    if now - killed_at < STEADY_AFTER_S + DOWN_AFTER_MS / 1000:
        return False
    # The client thread appends to both as this reads them: sent first, so it may hold one more.
    recent = [job_id for sent, job_id in zip(load.sent, load.accepted, strict=False) if sent >= now - STEADY_AFTER_S]
    return len(recent) >= STEADY_AFTER_S / SUBMIT_EVERY_S / 2 and all(recent)


def ended(url: str, job_id: str, deadline: float) -> dict | None:
    """The job's record once it has ended; None if it is unknown (lost) or has not ended by ``deadline``."""
    while time.monotonic() < deadline:
        answer = requests.get(f"{url}/api/v1/jobs/{job_id}", params={"wait": 5}, timeout=30)
        if answer.status_code == 404:
            return None
        if answer.status_code == 200 and answer.json()["status"] in TERMINAL:
            return answer.json()
    return None


def test_the_service_survives_a_primary_failover_without_losing_an_accepted_job(mnist):
    log_dir = OUTPUT / "sentinel-failover"
    servers = ReplicatedRedis(down_after_ms=DOWN_AFTER_MS).start()
    stack = Stack(servers.url, log_dir, env={"DIGITS_API_TOKEN": TOKEN})
    load, stop = Load(), threading.Event()
    body = {"images": [base64.b64encode(png_bytes(mnist.x_test[0])).decode()]}
    try:
        stack.start_worker("w1", queues=PREDICT_QUEUES, pool="solo")
        url = stack.start_web()
        stack.wait_for_workers(1)
        client = threading.Thread(target=load.run, args=(url, body, stop), daemon=True)
        client.start()
        time.sleep(3)  # steady before
        killed_at = time.monotonic()
        servers.primary.kill()
        # And after: until every submission of the last STEADY_AFTER_S was accepted (at least that long
        # after the primary's successor could have taken over), or RECOVERY_GOAL_S + 5 s have passed.
        while time.monotonic() - killed_at < RECOVERY_GOAL_S + 5 and not steady(load, killed_at):
            time.sleep(0.2)
        stop.set()
        client.join(15)

        after = [i for i, sent in enumerate(load.sent) if sent >= killed_at]
        refused = [i for i in after if load.accepted[i] is None]
        # Recovered: answered 202 again and never refused after that.
        back = next((i for i in after if all(load.accepted[j] for j in after if j >= i)), None)
        assert back is not None, f"still refusing at the end: {load.refusals[-3:]}"
        recovery_s = load.answered[back] - killed_at
        accepted = [job_id for job_id in load.accepted if job_id]
        deadline = time.monotonic() + 90  # a job whose lane entry was lost is sent again after 16 s
        records = {job_id: ended(url, job_id, deadline) for job_id in accepted}
        lost = [job_id for job_id, record in records.items() if record is None]
        failed = [r for r in records.values() if r and r["status"] != "succeeded"]
        print(
            f"\nfailover: service answering again {recovery_s:.1f} s after the primary was killed "
            f"(goal <= {RECOVERY_GOAL_S} s); submissions {len(load.sent)} ({len(after)} after the kill), "
            f"refused during the failover {len(refused)}, accepted {len(accepted)}, lost {len(lost)}, "
            f"failed {len(failed)}; reasons refused: {sorted(set(r[:60] for r in load.refusals))}"
        )
        assert recovery_s <= RECOVERY_GOAL_S
        assert not lost, f"accepted jobs that never ended: {lost[:5]}"
        assert all(r["error"] and r["error"]["message"] for r in failed), "a failed job must say why"
    finally:
        stop.set()
        stack.stop_all()
        servers.close()
