"""KEDA's scaling of the predict workers, run on this machine: does it scale out on a backlog, in
when it drains, and lose nothing when it stops a worker?

    python -m bench.autoscale            # make bench-autoscale; about two minutes

The rule is the one deploy/kubernetes/base/autoscaling.yaml gives KEDA (read from it, so it is
in one place): every ``pollingInterval`` seconds each trigger's key is counted as KEDA's redis
scaler counts it (LLEN for a lane, ZCARD for the jobs in hand), each asks for
ceil(value / target) workers, and the Horizontal Pod Autoscaler KEDA drives takes the largest,
within minReplicaCount..maxReplicaCount, through its ``behavior`` (stabilization windows and
rate policies; the scale-down window is the cooldown between more workers and fewer), with the
activation threshold and cooldownPeriod deciding scaling from and to zero. A worker is a real
Celery predict worker started by stack/processes.py's Stack and stopped with SIGTERM, then
SIGKILL after the Deployment's terminationGracePeriodSeconds, as Kubernetes stops a pod.

A load rises (clients submitting batches through the web as fast as it takes them), then stops.
Reported: seconds from the backlog (the first poll asking for more workers than run) to the new
workers being ready; from the drain (nothing waiting or in hand) to being back at the minimum;
jobs lost (accepted and never ended succeeded), answered twice (finished notices per job) and
run twice (started by more than one worker: the record's ``deliveries``). ``--speedup`` divides
every duration of the rule (polling, windows, policy periods, cooldown) to make a run short;
the test (tests/service/test_autoscale.py) runs it so.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import math
import signal
import sys
import tempfile
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path

import redis
import requests
import yaml

from bench.load import mnist_test_pngs
from bench.notices import FinishedNotices
from jobs import keys, workers
from stack.processes import PREDICT_QUEUES, Stack
from stack.redis_server import RedisServer

ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = ROOT / "deploy" / "kubernetes" / "base"
TOKEN = "bench-autoscale"
# The Horizontal Pod Autoscaler leaves the replicas alone while usage is within this of the
# target (kube-controller-manager's --horizontal-pod-autoscaler-tolerance default).
HPA_TOLERANCE = 0.1


@dataclass(frozen=True)
class Trigger:
    """One of the ScaledObject's redis triggers: the key it counts, the count per worker it aims
    at (``listLength``) and the count above which it is active (``activationListLength``)."""

    name: str
    key: str
    target: float
    activation: float


@dataclass(frozen=True)
class Policy:
    """An HPA scaling policy: at most ``value`` pods (``Pods``) or percent (``Percent``) per ``period_s``."""

    kind: str
    value: int
    period_s: float


@dataclass(frozen=True)
class Behavior:
    """One direction of the HPA's ``behavior``: its stabilization window and its policies."""

    window_s: float
    policies: tuple[Policy, ...]


@dataclass(frozen=True)
class KedaRule:
    """What the manifests tell KEDA and Kubernetes about scaling the predict workers."""

    triggers: tuple[Trigger, ...]
    min_replicas: int
    max_replicas: int
    polling_s: float
    cooldown_s: float
    up: Behavior
    down: Behavior
    grace_s: float  # the predict worker pod's terminationGracePeriodSeconds

    @classmethod
    def from_manifests(cls, directory: Path = MANIFESTS) -> KedaRule:
        scaled = _document(directory / "autoscaling.yaml", "ScaledObject")["spec"]
        worker = _document(directory / "predict-worker.yaml", "Deployment")["spec"]["template"]["spec"]
        behavior = scaled.get("advanced", {}).get("horizontalPodAutoscalerConfig", {}).get("behavior", {})

        def direction(name: str, default_window: float) -> Behavior:
            given = behavior.get(name, {})
            policies = tuple(
                Policy(p["type"], int(p["value"]), float(p["periodSeconds"])) for p in given.get("policies", [])
            )
            return Behavior(float(given.get("stabilizationWindowSeconds", default_window)), policies)

        return cls(
            triggers=tuple(
                Trigger(
                    t.get("name", t["metadata"]["listName"]),
                    t["metadata"]["listName"],
                    float(t["metadata"].get("listLength", 5)),  # KEDA's defaults
                    float(t["metadata"].get("activationListLength", 0)),
                )
                for t in scaled["triggers"]
                if t["type"] == "redis"
            ),
            min_replicas=int(scaled.get("minReplicaCount", 0)),
            max_replicas=int(scaled.get("maxReplicaCount", 100)),
            polling_s=float(scaled.get("pollingInterval", 30)),
            cooldown_s=float(scaled.get("cooldownPeriod", 300)),
            up=direction("scaleUp", 0),  # the HPA's defaults
            down=direction("scaleDown", 300),
            grace_s=float(worker.get("terminationGracePeriodSeconds", 30)),
        )

    def quickened(self, speedup: float) -> KedaRule:
        """The same rule with every duration divided by ``speedup`` (polling at least every second)."""

        def faster(behavior: Behavior) -> Behavior:
            policies = tuple(dataclasses.replace(p, period_s=p.period_s / speedup) for p in behavior.policies)
            return Behavior(behavior.window_s / speedup, policies)

        return dataclasses.replace(
            self,
            polling_s=max(1.0, self.polling_s / speedup),
            cooldown_s=self.cooldown_s / speedup,
            up=faster(self.up),
            down=faster(self.down),
        )


def _document(path: Path, kind: str) -> dict:
    return next(doc for doc in yaml.safe_load_all(path.read_text()) if doc and doc.get("kind") == kind)


def count(client: redis.Redis, key: str) -> int:
    """A key's length as KEDA's redis scaler reads it, by its type (0 when it does not exist)."""
    kind = client.type(key).decode()
    return {"list": client.llen, "zset": client.zcard, "set": client.scard, "hash": client.hlen}.get(
        kind, lambda _key: 0
    )(key)


class Hpa:
    """KEDA's activation and the Horizontal Pod Autoscaler's replica count for one ScaledObject,
    decision by decision (``now`` in seconds, any clock)."""

    def __init__(self, rule: KedaRule):
        self.rule = rule
        self._recommendations: deque[tuple[float, int]] = deque()
        self._changes: deque[tuple[float, int]] = deque()  # (when, replicas added or, < 0, removed)
        self._last_active = -math.inf

    def wanted(self, metrics: dict[str, int], current: int) -> int:
        """What the triggers ask for alone: the largest ceil(value / target), with the HPA's tolerance."""
        proposals = []
        for trigger in self.rule.triggers:
            value = metrics[trigger.name]
            usage = value / (trigger.target * current) if current else math.inf
            proposals.append(current if abs(usage - 1) <= HPA_TOLERANCE else math.ceil(value / trigger.target))
        return max(proposals)

    def decide(self, metrics: dict[str, int], current: int, now: float) -> int:
        rule = self.rule
        active = any(metrics[t.name] > t.activation for t in rule.triggers)
        if active:
            self._last_active = now
        if current == 0:  # KEDA, not the HPA, scales from zero: on activation
            return max(rule.min_replicas, 1) if active else 0
        if rule.min_replicas == 0 and now - self._last_active >= rule.cooldown_s:
            return 0  # KEDA scales to zero once every trigger was inactive for the cooldown
        wanted = min(max(self.wanted(metrics, current), rule.min_replicas, 1), rule.max_replicas)
        # Stabilization: up to the least recommended within the up window, down to the most within the down one.
        self._recommendations.append((now, wanted))
        longest = max(rule.up.window_s, rule.down.window_s)
        while self._recommendations and self._recommendations[0][0] < now - longest:
            self._recommendations.popleft()
        up_to = min([r for t, r in self._recommendations if t >= now - rule.up.window_s] + [wanted])
        down_to = max([r for t, r in self._recommendations if t >= now - rule.down.window_s] + [wanted])
        stable = up_to if current < up_to else down_to if current > down_to else current
        # Rate policies (selectPolicy Max: the policy allowing the largest change), counted from
        # the replicas at the start of each policy's period.
        if stable > current:
            limits = [self._limit(p, self._period_start(current, p, now, up=True), up=True) for p in rule.up.policies]
            decided = min(stable, max(limits)) if limits else stable
        elif stable < current:
            limits = [
                self._limit(p, self._period_start(current, p, now, up=False), up=False) for p in rule.down.policies
            ]
            decided = max(stable, min(limits)) if limits else stable
        else:
            decided = current
        decided = min(max(decided, rule.min_replicas), rule.max_replicas)
        if decided != current:
            self._changes.append((now, decided - current))
        return decided

    def _period_start(self, current: int, policy: Policy, now: float, up: bool) -> int:
        changed = sum(d for t, d in self._changes if t > now - policy.period_s and (d > 0) == up)
        return current - changed

    @staticmethod
    def _limit(policy: Policy, start: int, up: bool) -> int:
        """The most (``up``) or fewest replicas ``policy`` allows, from ``start`` at its period's start."""
        if policy.kind == "Pods":
            return start + policy.value if up else start - policy.value
        return math.ceil(start * (1 + policy.value / 100 if up else 1 - policy.value / 100))


@dataclass
class Sample:
    """One poll: when (seconds since the run began), what the triggers read, and the replicas after it."""

    at: float
    metrics: dict[str, int]
    wanted: int  # what the triggers alone asked for
    before: int  # the replicas the poll found
    replicas: int
    ready: int


class Autoscaler:
    """Polls Redis with the rule and starts or stops predict workers on ``stack`` to match."""

    def __init__(self, stack: Stack, rule: KedaRule, began: float):
        self.stack, self.rule, self.began = stack, rule, began
        self.hpa = Hpa(rule)
        self.client = redis.Redis.from_url(stack.redis_url)
        self.names: list[str] = []  # the Deployment's pods, oldest first
        self.samples: list[Sample] = []
        self.stopping: list[threading.Thread] = []
        # (worker, when its process was gone, jobs it held when told to stop)
        self.stopped: list[tuple[str, float, int]] = []
        self._numbers = itertools.count(1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="autoscaler")

    def start(self, replicas: int) -> Autoscaler:
        self.scale_to(replicas)
        self._thread.start()
        return self

    def ready(self) -> list[str]:
        live = {w.name.split("@")[0] for w in workers.live(self.client) if w.ready}
        return [name for name in self.names if name in live]

    def scale_to(self, replicas: int) -> None:
        while len(self.names) < replicas:
            name = f"predict-{next(self._numbers)}"
            self.stack.start_worker(name, queues=PREDICT_QUEUES)
            self.names.append(name)
        while len(self.names) > replicas:
            # A ReplicaSet removes pods not ready before ready ones, and newer before older.
            ready = set(self.ready())
            name = max(self.names, key=lambda n: (n not in ready, self.names.index(n)))
            self.names.remove(name)
            stopping = threading.Thread(target=self._stop_worker, args=(name,), daemon=True)
            stopping.start()
            self.stopping.append(stopping)

    def _stop_worker(self, name: str) -> None:
        """SIGTERM, then SIGKILL after the pod's grace period, as the kubelet stops a container."""
        in_hand = self._in_hand(name)
        self.stack.stop(name, signal.SIGTERM, self.rule.grace_s)
        self.stopped.append((name, time.monotonic() - self.began, in_hand))

    def _in_hand(self, name: str) -> int:
        """How many jobs the worker ``name`` has started and not ended."""
        running = self.client.zrange(keys.RUNNING_JOBS, 0, -1)
        with self.client.pipeline(transaction=False) as pipe:
            for job_id in running:
                pipe.hget(keys.job(job_id.decode()), "worker")
            owners = pipe.execute()
        return sum(1 for owner in owners if (owner or b"").decode().startswith(f"{name}@"))

    def _run(self) -> None:
        while not self._stop.wait(self.rule.polling_s):
            try:
                metrics = {t.name: count(self.client, t.key) for t in self.rule.triggers}
                current = len(self.names)
                wanted = self.hpa.wanted(metrics, current) if current else 0
                self.scale_to(self.hpa.decide(metrics, current, time.monotonic()))
                at = time.monotonic() - self.began
                self.samples.append(Sample(at, metrics, wanted, current, len(self.names), len(self.ready())))
            except redis.RedisError as exc:  # KEDA too keeps the replicas when it cannot read
                print(f"autoscaler: {exc}", file=sys.stderr)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        for stopping in self.stopping:
            stopping.join()


@dataclass
class Load:
    """Clients submitting batches of ``per_request`` images through the web until :meth:`stop`,
    each as fast as the web takes them, or one every ``every_s`` seconds."""

    url: str
    images: list[bytes]
    clients: int = 4
    per_request: int = 128
    every_s: float = 0.0
    accepted: list[str] = field(default_factory=list)
    refused: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, args=(n,), daemon=True) for n in range(self.clients)]

    def start(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def _client(self, number: int) -> None:
        session = requests.Session()
        for turn in itertools.count(number):
            if self._stop.wait(self.every_s if turn > number else 0):
                return
            first = (turn * self.per_request) % len(self.images)
            chosen = (self.images * 2)[first : first + self.per_request]
            files = [("image", (f"{n}.png", data, "image/png")) for n, data in enumerate(chosen)]
            try:
                response = session.post(f"{self.url}/api/v1/predictions", files=files, timeout=60)
            except requests.RequestException as exc:
                self.refused[type(exc).__name__] += 1
                continue
            if response.status_code == 202:
                self.accepted.extend(job["job_id"] for job in response.json()["jobs"])
            else:  # 429 beyond a client's pending limit, 503: not accepted, so not a loss; back off
                self.refused[str(response.status_code)] += 1
                time.sleep(0.5)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()


@dataclass
class Report:
    """What a run measured (seconds since the run began unless said otherwise)."""

    rule: KedaRule
    speedup: float
    samples: list[Sample]
    load_s: tuple[float, float]  # when the load began and stopped
    backlog_at: float | None  # the first poll asking for more workers than ran
    scaled_out_at: float | None  # when more workers than the minimum were ready
    peak_replicas: int
    drained_at: float | None  # the first poll after the load asking for no more than the minimum
    scaled_in_at: float | None  # back at the minimum, the stopped workers' processes gone
    stopped: list[tuple[str, float, int]]
    accepted: int
    refused: dict
    lost: list[str]
    answered_twice: list[str]
    # Taken over from a worker that went silent holding them, so possibly run by it too: the
    # worker that takes such a suspect over reads it alone and marks the record (``alone``).
    run_twice: list[str]
    # Started more than once (the record's ``deliveries``): taken over, or given back unrun (a
    # batch's left-overs when its time budget ran out) and started again: harmless.
    started_twice: list[str]
    statuses: dict

    @property
    def scale_out_s(self) -> float | None:
        return None if self.backlog_at is None or self.scaled_out_at is None else self.scaled_out_at - self.backlog_at

    @property
    def scale_in_s(self) -> float | None:
        return None if self.drained_at is None or self.scaled_in_at is None else self.scaled_in_at - self.drained_at

    def lines(self) -> list[str]:
        rule = self.rule
        triggers = ", ".join(f"{t.name} {t.key} target {t.target:g} activation {t.activation:g}" for t in rule.triggers)

        def seconds(value: float | None) -> str:
            return "never" if value is None else f"{value:.1f} s"

        return [
            f"rule (deploy/kubernetes): {triggers}; replicas {rule.min_replicas}..{rule.max_replicas}; "
            f"polling {rule.polling_s:g} s, scale-down window {rule.down.window_s:g} s, cooldown {rule.cooldown_s:g} s "
            f"(the manifest's durations / {self.speedup:g})",
            "   t s  " + "  ".join(f"{t.name:>9}" for t in rule.triggers) + "  wanted  replicas  ready",
            *(
                f"{s.at:6.1f}  "
                + "  ".join(f"{s.metrics[t.name]:9d}" for t in rule.triggers)
                + f"  {s.wanted:6d}  {s.replicas:8d}  {s.ready:5d}"
                for s in self.samples
            ),
            f"load from {self.load_s[0]:.1f} s to {self.load_s[1]:.1f} s, then a trickle: "
            f"{self.accepted} jobs accepted, refused {dict(self.refused) or 0}; peak {self.peak_replicas} workers",
            f"scale-out: {seconds(self.scale_out_s)} from the backlog to a worker more ready (goal <= 30 s)",
            f"scale-in: {seconds(self.scale_in_s)} from the drain to {rule.min_replicas} worker(s) "
            f"(scale-down window {rule.down.window_s:g} s); {len(self.stopped)} workers stopped (SIGTERM), "
            f"{sum(1 for *_, held in self.stopped if held)} of them holding jobs "
            f"({sum(held for *_, held in self.stopped)} in all)",
            f"jobs lost {len(self.lost)}, answered twice {len(self.answered_twice)}, "
            f"run twice {len(self.run_twice)} (goal 0 each; taken over from a worker gone silent holding them); "
            f"started twice {len(self.started_twice)} (given back unrun, then started again); "
            f"statuses {dict(self.statuses)}",
        ]


def run(
    log_dir: Path,
    speedup: float = 1.0,
    load_s: float = 40.0,
    clients: int = 4,
    settle_s: float = 5.0,
    give_up_s: float = 600.0,
) -> Report:
    """A private Redis and web, workers under the rule (durations divided by ``speedup``), a load
    for ``load_s`` seconds after ``settle_s``, then until back at the minimum (or ``give_up_s``)."""
    rule = KedaRule.from_manifests().quickened(speedup)
    images = mnist_test_pngs(512)
    server = RedisServer().start()
    # Every record is read at the end to judge the run, so none may be forgotten meanwhile (a run
    # ends well over the default 10,000 per client).
    kept = {"MAX_FINISHED_JOBS": "1000000", "MAX_FINISHED_PER_CLIENT": "1000000"}
    stack = Stack(server.url, log_dir, env={"DIGITS_API_TOKEN": TOKEN, "RATE_LIMIT": "", **kept})
    began = time.monotonic()
    scaler = Autoscaler(stack, rule, began)
    try:
        scaler.start(max(rule.min_replicas, 1))
        stack.start_web()
        stack.wait_for_workers(len(scaler.names))
        notices = FinishedNotices(server.url)
        time.sleep(settle_s)
        load = Load(stack.web_url, images, clients=clients).start()
        load_began = time.monotonic() - began
        time.sleep(load_s)
        load.stop()
        # The load falls rather than vanishes: a trickle goes on (160 images/s, well under one
        # worker's pace), so the workers stopped while scaling in may hold a batch (the case that
        # could lose a job or run it twice).
        tail = Load(stack.web_url, images, clients=1, per_request=32, every_s=0.2).start()
        load_ended = time.monotonic() - began
        deadline = time.monotonic() + give_up_s
        while time.monotonic() < deadline:
            after = [s for s in scaler.samples if s.at > load_ended]
            calm = any(s.wanted <= rule.min_replicas for s in after)
            if calm and after[-1].replicas == rule.min_replicas and len(scaler.names) == rule.min_replicas:
                break
            time.sleep(rule.polling_s)
        tail.stop()
        scaler.close()  # waits for the workers it stopped to exit
        at_minimum = len(scaler.names) == rule.min_replicas and scaler.stopped
        scaled_in_at = max(when for _, when, _ in scaler.stopped) if at_minimum else None
        client = redis.Redis.from_url(server.url)
        ids = load.accepted + tail.accepted
        fields = _ended(client, ids, time.monotonic() + 120)
        time.sleep(1)  # a last notice in flight
        notices.close()
        samples = scaler.samples
        backlog = next((s for s in samples if s.at > load_began and s.wanted > s.before), None)
        more = next((s for s in samples if s.ready > rule.min_replicas), None)
        drained = next((s for s in samples if s.at > load_ended and s.wanted <= rule.min_replicas), None)
        return Report(
            rule=rule,
            speedup=speedup,
            samples=samples,
            load_s=(load_began, load_ended),
            backlog_at=backlog.at if backlog else None,
            scaled_out_at=more.at if more else None,
            peak_replicas=max((s.replicas for s in samples), default=0),
            drained_at=drained.at if drained else None,
            scaled_in_at=scaled_in_at,
            stopped=list(scaler.stopped),
            accepted=len(ids),
            refused=dict(load.refused + tail.refused),
            lost=[i for i, (status, _, _) in zip(ids, fields, strict=True) if status != b"succeeded"],
            answered_twice=[i for i in ids if notices.counts[i] > 1],
            run_twice=[i for i, (_, _, alone) in zip(ids, fields, strict=True) if alone is not None],
            started_twice=[i for i, (_, deliveries, _) in zip(ids, fields, strict=True) if int(deliveries or 0) > 1],
            statuses=Counter((status or b"gone").decode() for status, _, _ in fields),
        )
    finally:
        stack.stop_all()
        server.close()


def _ended(client: redis.Redis, ids: list[str], deadline: float) -> list[list]:
    """(status, deliveries, alone) of each job, once none is queued or running (or at ``deadline``)."""
    while True:
        with client.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hmget(keys.job(job_id), "status", "deliveries", "alone")
            fields = pipe.execute()
        if time.monotonic() > deadline or not any(status in (b"queued", b"running") for status, _, _ in fields):
            return fields
        time.sleep(0.5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--speedup", type=float, default=6.0, help="divide the rule's durations by this")
    parser.add_argument("--load", type=float, default=40.0, help="seconds of load")
    parser.add_argument("--clients", type=int, default=4, help="clients submitting at once")
    parser.add_argument("--logs", type=Path, default=Path(tempfile.gettempdir()) / "digits-bench-autoscale")
    args = parser.parse_args(argv)
    report = run(args.logs, speedup=args.speedup, load_s=args.load, clients=args.clients)
    print("\n".join(report.lines()))
    ok = report.scale_out_s is not None and report.scale_in_s is not None
    return 0 if ok and not (report.lost or report.answered_twice or report.run_twice) else 1


if __name__ == "__main__":
    sys.exit(main())
