"""Draining the web: SIGTERM makes /readyz say 503 ``draining`` at once, the process serves on for
DRAIN_SECONDS, then answers every open long poll with its record as it stands and exits within
gunicorn's graceful_timeout.

The test restarts the web under load as an orchestrator does (a rolling update: the new web
first, then SIGTERM to the old one's gunicorn master), with 200 long polls open on the old one
and submissions arriving steadily. The clients reach the webs through what a load balancer does
(each request goes to a web whose /readyz said 200 when last checked) and follow the documented
retry: a refused connection or a 503 is tried again, a long poll answered before its job ended is
polled again. Every request is answered, no connection is reset.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
import requests

from jobs import keys
from jobs import records as rec
from jobs.schemas import TERMINAL
from settings import Settings
from tests.conftest import OUTPUT, png_bytes
from tests.service.helpers import running_stack

DRAIN_SECONDS = 2.0
GRACEFUL_TIMEOUT = Settings(drain_seconds=DRAIN_SECONDS).web_graceful_timeout
LONG_POLLS = 200
CHECK_S = 0.1  # how often the balancer asks each web's /readyz
HELD = "held"  # a lane no worker serves: its jobs wait, and their long polls stay open, until moved


@pytest.fixture(scope="module")
def stack():
    with running_stack(OUTPUT / "test_drain", env={"DRAIN_SECONDS": str(DRAIN_SECONDS)}) as running:
        yield running


class Balancer:
    """What a load balancer does, from its clients' side: each request goes to a web whose /readyz
    last answered 200 (each asked every CHECK_S); a web leaves when its /readyz answers otherwise
    or refuses the connection, not when a check is merely slow (a busy machine)."""

    def __init__(self) -> None:
        self.ready: dict[str, bool] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._check, daemon=True)

    def add(self, url: str) -> None:
        self.ready.setdefault(url, False)

    def pick(self) -> str:
        while True:
            ready = [url for url, ok in list(self.ready.items()) if ok]
            if ready:
                return random.choice(ready)
            time.sleep(0.05)

    def start(self) -> Balancer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _check(self) -> None:
        while not self._stop.is_set():
            for url in list(self.ready):
                try:
                    status = requests.get(f"{url}/readyz", timeout=1, headers={"Connection": "close"}).status_code
                except requests.Timeout:
                    continue
                except requests.ConnectionError:
                    status = None
                self.ready[url] = status == 200
            time.sleep(CHECK_S)


@dataclass
class Tally:
    """What the clients saw, across threads."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    outcomes: Counter = field(default_factory=Counter)
    resets: list[str] = field(default_factory=list)
    served: Counter = field(default_factory=Counter)  # (web, what) -> answers

    def count(self, what: str) -> None:
        with self.lock:
            self.outcomes[what] += 1

    def answered(self, web: str, what: str) -> None:
        with self.lock:
            self.served[web, what] += 1

    def reset(self, what: str) -> None:
        with self.lock:
            self.resets.append(what)


def retrying(tally: Tally, balancer: Balancer, what: str, send, stop_at: float) -> tuple[str, requests.Response]:
    """``send(web)`` as the documentation tells a client to: a refused connection, or a 503, is
    tried again (after its Retry-After); a connection broken once the request was sent (a reset)
    is counted, and tried again."""
    while time.monotonic() < stop_at:
        web = balancer.pick()
        try:
            answer = send(web)
        except requests.ConnectionError as exc:
            if "refused" in str(exc).lower():
                tally.count("refused")
            else:
                tally.reset(f"{time.monotonic():.3f} {what} {web}: {exc!r}"[:300])
            time.sleep(0.2)
            continue
        if answer.status_code == 503:
            tally.count("503")
            time.sleep(float(answer.headers.get("Retry-After", "0.5")))
            continue
        tally.answered(web, what)
        return web, answer
    raise TimeoutError(f"{what}: no answer in time")


def long_poll(balancer: Balancer, job_id: str, tally: Tally, stop_at: float, ended: list) -> None:
    """Poll one job with ?wait=30 until it has ended; an answer before it ended is polled again."""
    session = requests.Session()

    def send(web: str) -> requests.Response:
        return session.get(f"{web}/api/v1/jobs/{job_id}?wait=30", timeout=45)

    while True:
        _, answer = retrying(tally, balancer, "poll", send, stop_at)
        assert answer.status_code == 200, answer.text
        if answer.json()["status"] in TERMINAL:
            ended.append(answer.json())
            return


def submit_steadily(balancer: Balancer, image: bytes, tally: Tally, stop: threading.Event, accepted: list) -> None:
    session = requests.Session()

    def send(web: str) -> requests.Response:
        return session.post(f"{web}/api/v1/predictions", files={"image": image}, timeout=30)

    while not stop.is_set():
        sent = time.monotonic()
        web, answer = retrying(tally, balancer, "submit", send, sent + 60)
        assert answer.status_code == 202, answer.text
        accepted.append((sent, web, answer.json()["jobs"][0]["job_id"]))
        time.sleep(0.05)


def watch_readiness(url: str, stop: threading.Event, seen: list) -> None:
    """/readyz on a fresh connection again and again: (sent, answered, status; None: no answer)."""
    while not stop.is_set():
        sent = time.monotonic()
        try:
            status = requests.get(f"{url}/readyz", timeout=2, headers={"Connection": "close"}).status_code
        except requests.ConnectionError:
            status = None
        seen.append((sent, time.monotonic(), status))
        time.sleep(0.02)


def watch_exits(pids: list[int], stop: threading.Event, exits: dict) -> None:
    """When each process ended (or became a zombie, not yet reaped)."""
    while not stop.is_set() and len(exits) < len(pids):
        for pid in pids:
            try:
                ended = "State:\tZ" in Path(f"/proc/{pid}/status").read_text()
            except FileNotFoundError:
                ended = True
            if ended and pid not in exits:
                exits[pid] = time.monotonic()
        time.sleep(0.01)


def children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


@pytest.mark.slow
def test_a_rolling_restart_under_load_answers_every_request_and_resets_none(stack, mnist):
    client = redis.Redis.from_url(stack.redis_url)
    records = rec.JobRecords(client)
    image = png_bytes(mnist.x_test[0])
    tally, ended, accepted, readiness, exits = Tally(), [], [], [], {}
    stop_submitting, stop_watching = threading.Event(), threading.Event()
    old, old_url = stack.processes["web"], stack.web_url
    balancer = Balancer()
    balancer.add(old_url)
    balancer.start()

    held = records.create("predict", LONG_POLLS, images=[image] * LONG_POLLS, lanes=rec.Lanes(HELD)).ids
    stop_at = time.monotonic() + 240
    pollers = [
        threading.Thread(target=long_poll, args=(balancer, job_id, tally, stop_at, ended), daemon=True)
        for job_id in held
    ]
    submitters = [
        threading.Thread(target=submit_steadily, args=(balancer, image, tally, stop_submitting, accepted), daemon=True)
        for _ in range(2)
    ]
    for thread in pollers + submitters:
        thread.start()
    time.sleep(3)  # every long poll sent, and waiting: their jobs are in a lane no worker serves
    assert not tally.served[old_url, "poll"], "a long poll ended before its job did"

    new_url = stack.start_web()  # the new web first, as a rolling update does
    balancer.add(new_url)
    while not balancer.ready[new_url]:
        time.sleep(0.05)
    watchers = [  # staggered: together they ask every few ms
        threading.Thread(target=watch_readiness, args=(old_url, stop_watching, readiness), daemon=True)
        for _ in range(4)
    ]
    for watcher in watchers:
        watcher.start()
        time.sleep(0.005)
    workers = children(old.pid)
    exit_watcher = threading.Thread(target=watch_exits, args=(workers, stop_watching, exits), daemon=True)
    exit_watcher.start()
    time.sleep(0.3)
    sigterm_at = time.monotonic()
    os.kill(old.pid, signal.SIGTERM)  # to the old gunicorn's master, as a container runtime sends it
    old.wait(timeout=GRACEFUL_TIMEOUT + 10)
    exited_at = time.monotonic()
    stop_watching.set()
    for watcher in [*watchers, exit_watcher]:
        watcher.join()
    polls_answered_by_old = tally.served[old_url, "poll"]

    client.rpush(keys.lane(keys.PREDICT_QUEUE), *held)  # the held jobs may now be read
    for thread in pollers:
        thread.join(timeout=max(1.0, stop_at - time.monotonic()))
    stop_submitting.set()
    for thread in submitters:
        thread.join(timeout=60)
    balancer.stop()

    readiness.sort()
    first_503 = min(answered for _, answered, status in readiness if answered > sigterm_at and status == 503)
    # Each gunicorn worker hears SIGTERM from the master: every /readyz sent after the last one
    # answered 200 was answered 503 (or, once the web had gone, not at all).
    all_503 = max([sigterm_at] + [sent for sent, _, status in readiness if sent > sigterm_at and status == 200])
    asked_later = [status for sent, _, status in readiness if sent > sigterm_at + 0.1]
    workers_exited = max(exits.values()) - sigterm_at
    after_sigterm = [(sent, web) for sent, web, _ in accepted if sent > sigterm_at]
    served_while_draining = sum(web == old_url for _, web in after_sigterm)
    print(
        f"\n/readyz: the first 503 came back {1000 * (first_503 - sigterm_at):.1f} ms after SIGTERM, and every"
        f" one asked from {1000 * (all_503 - sigterm_at):.1f} ms on was 503 ({len(asked_later)} asked later);"
        f" the old web's workers exited {workers_exited:.2f} s after it (DRAIN_SECONDS {DRAIN_SECONDS:g},"
        f" graceful_timeout {GRACEFUL_TIMEOUT}), its master {exited_at - sigterm_at:.2f} s;"
        f" {LONG_POLLS} long polls open on it, {polls_answered_by_old}"
        f" answered by it; {len(accepted)} submissions, {len(after_sigterm)} after SIGTERM"
        f" ({served_while_draining} served by the draining web); {dict(tally.outcomes)}; {len(tally.resets)} resets"
    )
    assert not tally.resets, tally.resets[:5]
    assert all_503 - sigterm_at < 0.1 and asked_later and set(asked_later) <= {503, None}
    assert DRAIN_SECONDS <= workers_exited < GRACEFUL_TIMEOUT, "the workers drained, and were not killed"
    assert polls_answered_by_old >= LONG_POLLS, "every long poll open on the old web was answered by it"
    assert len(ended) == LONG_POLLS and all(job["status"] == "succeeded" for job in ended)
    assert len(after_sigterm) > 0
    jobs = records.get_many([job_id for _, _, job_id in accepted])
    assert all(job is not None for job in jobs), "every submission answered 202 has its job"
