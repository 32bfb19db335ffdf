"""HTTP load generators: keep-alive connections and pre-encoded bodies, so the client costs the
machine as little as possible (it shares the cores with the service it measures)."""

from __future__ import annotations

import base64
import http.client
import io
import json
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import numpy as np
from PIL import Image

from jobs.schemas import SUCCEEDED, TERMINAL, Batch, JobRecord
from model.mnist import load_mnist
from settings import get_settings


@dataclass
class Tally:
    """What one load run measured."""

    images: int = 0
    failed: int = 0
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)

    def error(self, exc: Exception) -> None:
        reason = f"{type(exc).__name__}: {exc}"[:120]
        self.errors[reason] = self.errors.get(reason, 0) + 1

    def summary(self) -> dict:
        lat = np.array(self.latencies_ms) if self.latencies_ms else np.array([np.nan])
        return {
            "images": self.images,
            "failed": self.failed,
            "seconds": round(self.seconds, 2),
            "images_per_s": round(self.images / self.seconds, 1) if self.seconds else 0.0,
            "latency_ms": {f"p{q}": round(float(np.percentile(lat, q)), 1) for q in (50, 90, 99)},
            "errors": self.errors,
        }


class HttpError(RuntimeError):
    """A 4xx/5xx answer; ``retry_after`` is the server's Retry-After in seconds, if it sent one."""

    def __init__(self, message: str, status: int, retry_after: float | None):
        super().__init__(message)
        self.status, self.retry_after = status, retry_after


class Client:
    """One keep-alive connection to the web."""

    def __init__(self, base_url: str):
        parts = urlsplit(base_url)
        self.connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)

    def request(self, method: str, path: str, body: bytes | None = None) -> dict:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        try:
            self.connection.request(method, path, body=body, headers=headers)
            response = self.connection.getresponse()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            # The server closed an idle keep-alive connection: reconnect once, as browsers do.
            self.connection.close()
            self.connection.request(method, path, body=body, headers=headers)
            response = self.connection.getresponse()
        data = response.read()
        if response.status >= 400:
            retry_after = response.getheader("Retry-After")
            raise HttpError(
                f"{method} {path}: {response.status} {data[:200]!r}",
                response.status,
                float(retry_after) if retry_after else None,
            )
        return json.loads(data)

    def submit(self, body: bytes, wait: float = 0) -> dict:
        return self.request("POST", "/api/v1/predictions" + (f"?wait={wait:g}" if wait else ""), body)

    def predict(self, body: bytes, per_request: int, wait: float) -> tuple[int, int]:
        """Submit one request and follow it to its end: (images succeeded, images not). With
        ``wait`` the answer comes in the same request when it can; else submit, then poll."""
        submitted = self.submit(body, wait)
        if submitted.get("done"):
            counts = submitted["counts"]
        elif per_request == 1:
            counts = {self.wait_job(submitted["jobs"][0]["job_id"])["status"]: 1}
        else:
            counts = self.wait_batch(submitted["batch_id"])["counts"]
        return counts.get(SUCCEEDED, 0), per_request - counts.get(SUCCEEDED, 0)

    def wait_job(self, job_id: str) -> JobRecord:
        while True:
            job = self.request("GET", f"/api/v1/jobs/{job_id}?wait=10")
            if job["status"] in TERMINAL:
                return job

    def wait_batch(self, batch_id: str) -> Batch:
        while True:
            batch = self.request("GET", f"/api/v1/batches/{batch_id}?wait=10")
            if batch["done"]:
                return batch


def png(pixels: np.ndarray) -> bytes:
    """A 2-D uint8 array as a PNG file's bytes."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def mnist_test_pngs(count: int) -> list[bytes]:
    """The first ``count`` MNIST test digits as PNG files: what the benches send."""
    return [png(pixels) for pixels in load_mnist(get_settings().mnist_dir).x_test[:count]]


def encode_bodies(pngs: list[bytes], per_request: int) -> list[bytes]:
    """JSON request bodies carrying ``per_request`` base64 images each, cycling through ``pngs``."""
    encoded = [base64.b64encode(png).decode() for png in pngs]
    bodies = []
    for start in range(0, len(encoded), per_request):
        chunk = encoded[start : start + per_request]
        if len(chunk) == per_request:
            bodies.append(json.dumps({"images": chunk}).encode())
    return bodies


def closed_loop(
    base_url: str, bodies: list[bytes], clients: int, seconds: float, per_request: int, wait: float = 0
) -> Tally:
    """``clients`` lean clients (http.client, JSON), each sending a request and following it to its
    end (in the same request with ``wait``, else submit then poll), again and again."""
    return clients_loop(
        lambda: Client(base_url),
        lambda client, i: client.predict(bodies[i % len(bodies)], per_request, wait),
        clients,
        seconds,
        per_request,
    )


def clients_loop(connect, send, clients: int, seconds: float, per_request: int) -> Tally:
    """``clients`` threads, each with its own ``connect()``-ed client calling ``send(client, i)``
    (-> images succeeded, images not) again and again for ``seconds``; a failing client reconnects."""
    tally, lock = Tally(), threading.Lock()
    stop_at = time.perf_counter() + seconds

    def run(offset: int) -> None:
        client = connect()
        i = offset
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            try:
                done, bad = send(client, i)
            except Exception as exc:
                done, bad = 0, per_request
                client = connect()
                with lock:
                    tally.error(exc)
            latency = (time.perf_counter() - started) * 1000
            with lock:
                tally.images += done
                tally.failed += bad
                tally.latencies_ms.append(latency)
            i += clients

    began = time.perf_counter()
    threads = [threading.Thread(target=run, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    tally.seconds = time.perf_counter() - began
    return tally


def open_loop(base_url: str, bodies: list[bytes], rate: float, seconds: float, wait: float = 0) -> Tally:
    """Single-image jobs arriving at ``rate`` per second regardless of answers (light load)."""
    tally, lock = Tally(), threading.Lock()
    pool: list[Client] = []

    def one(body: bytes) -> None:
        with lock:
            client = pool.pop() if pool else Client(base_url)
        started = time.perf_counter()
        try:
            ok = client.predict(body, 1, wait) == (1, 0)
        except Exception as exc:
            ok, client = False, Client(base_url)
            with lock:
                tally.error(exc)
        latency = (time.perf_counter() - started) * 1000
        with lock:
            pool.append(client)
            tally.images += ok
            tally.failed += not ok
            tally.latencies_ms.append(latency)

    began = time.perf_counter()
    threads = []
    for n in range(int(rate * seconds)):
        time.sleep(max(0.0, began + n / rate - time.perf_counter()))
        thread = threading.Thread(target=one, args=(bodies[n % len(bodies)],))
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join()
    tally.seconds = time.perf_counter() - began
    return tally
