"""The web's hot paths in process: CPU per request of the Flask app alone, no gunicorn.

    python -m bench.web_paths            # about two minutes; run it on two checkouts back to back to compare

Flask's test client against a private redis-server, with a stand-in worker process that ends each
job at once (so /v2 infer and ?wait=, which wait for their answers, can be timed without a model):
POST /api/v1/predictions with 1 and 256 PNGs (multipart and JSON) and with one PNG and ?wait=, GET
/api/v1/jobs/<id> (with and without ?wait=, the job ended), GET /api/v1/batches/<id> of 256 ended
jobs, and /v2 infer of one ``pixels`` image as JSON and of 64 as JSON and as binary tensors. Each
figure is the process CPU per request (this process: the app and its waiter thread, not Redis or
the stand-in), the least of five rounds.
"""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
import time
from collections.abc import Callable

import numpy as np
import redis

from bench.load import png
from jobs import records as rec
from stack.redis_server import RedisServer
from web import create_app

ROUNDS = 5
# Ends every job it finds in the lanes at once, as a worker would with the same result each time.
STAND_IN_WORKER = """
import sys, redis
from jobs import keys, records as rec
from jobs.lanes import LaneReader
client = redis.Redis.from_url(sys.argv[1])
records, lanes = rec.JobRecords(client), LaneReader(client, [keys.PREDICT_QUEUE, keys.BULK_QUEUE])
result = {"label": 9, "confidence": 0.91, "probabilities": [0.01] * 9 + [0.91], "model_version": 1,
          "input_png": "iVBORw0KGgo=", "timings": {"preprocess_ms": 0.1, "predict_ms": 1.0, "batch_size": 64}}
def outcome(job):
    if job.tensor is None:
        return rec.Outcome(job.job_id, rec.SUCCEEDED, result=result)
    n = keys.images_of_lane_entry(entries[job.job_id])  # a tensor job: N images' outputs
    return rec.Outcome(job.job_id, rec.SUCCEEDED, result={
        "label": [9] * n, "probabilities": [result["probabilities"]] * n, "model_version": 1})
while True:
    entries = {keys.job_of_lane_entry(e): e for batch in lanes.take(256, 0.5) for e in batch}
    taken = [job for job in records.start(list(entries), "stand-in") if job.taken]
    records.finish([outcome(job) for job in taken], batch_size=len(taken))
"""


def cpu_per_request(request: Callable[[], None], count: int, before_round: Callable[[], None]) -> float:
    """Microseconds of this process's CPU per call of ``request``: the least of ROUNDS rounds of ``count``."""
    rounds = []
    for _ in range(ROUNDS):
        before_round()
        started = time.process_time()
        for _ in range(count):
            request()
        rounds.append((time.process_time() - started) / count * 1e6)
    return min(rounds)


def main() -> int:
    server = RedisServer().start()
    worker = None
    try:
        store = redis.Redis.from_url(server.url)
        unlimited = 10**12
        app = create_app(
            {
                "REDIS_URL": server.url,
                "RATE_LIMIT": "",
                "MAX_PENDING_PER_CLIENT": unlimited,
                "MAX_PENDING_BYTES_PER_CLIENT": unlimited,
                "MAX_QUEUED_BYTES": unlimited,
            }
        )
        client = app.test_client()
        rng = np.random.default_rng(0)
        images = [png((rng.random((28, 28)) > 0.8).astype(np.uint8) * 255) for _ in range(256)]

        def expect(status: int, response) -> None:
            assert response.status_code == status, response.get_data()[:300]

        def post_json(count: int, query: str = "", status: int = 202) -> Callable[[], None]:
            body = json.dumps({"images": [base64.b64encode(image).decode() for image in images[:count]]})
            url = f"/api/v1/predictions{query}"
            return lambda: expect(status, client.post(url, data=body, content_type="application/json"))

        def post_multipart(count: int) -> Callable[[], None]:
            def post() -> None:
                files = [(io.BytesIO(image), f"{i}.png", "image/png") for i, image in enumerate(images[:count])]
                form = {"image": files}
                expect(202, client.post("/api/v1/predictions", data=form, content_type="multipart/form-data"))

            return post

        # An ended batch of 256 jobs, to read.
        every_image = json.dumps({"images": [base64.b64encode(image).decode() for image in images]})
        accepted = client.post("/api/v1/predictions", data=every_image, content_type="application/json").json
        job_ids = [job["job_id"] for job in accepted["jobs"]]
        records = rec.JobRecords(store)
        records.start(job_ids, "bench")
        result = {"label": 3, "confidence": 0.9, "probabilities": [0.1] * 10, "model_version": 1}
        records.finish([rec.Outcome(job_id, rec.SUCCEEDED, result=result) for job_id in job_ids])
        job, batch = f"/api/v1/jobs/{job_ids[0]}", f"/api/v1/batches/{accepted['batch_id']}"

        pixels = rng.integers(0, 256, (64, 28, 28), dtype=np.uint8)
        tensor = {"name": "pixels", "datatype": "UINT8", "shape": [64, 28, 28]}
        as_json = json.dumps({"inputs": [{**tensor, "data": pixels.ravel().tolist()}]})
        one_json = json.dumps({"inputs": [{**tensor, "shape": [1, 28, 28], "data": pixels[0].ravel().tolist()}]})
        binary = {"binary_data": True}
        header = json.dumps(
            {
                "inputs": [{**tensor, "parameters": {"binary_data_size": pixels.size}}],
                "outputs": [{"name": "probabilities", "parameters": binary}, {"name": "label", "parameters": binary}],
            }
        ).encode()
        length = {"Inference-Header-Content-Length": str(len(header))}

        def infer(data, content_type: str, headers: dict) -> Callable[[], None]:
            url = "/v2/models/digits/infer"
            return lambda: expect(200, client.post(url, data=data, content_type=content_type, headers=headers))

        def nothing() -> None:
            pass

        def with_stand_in_worker() -> None:
            nonlocal worker
            if worker is None:
                worker = subprocess.Popen([sys.executable, "-c", STAND_IN_WORKER, server.url])

        # In this order: the reads of the ended batch before the submissions empty the store between rounds.
        cases = {
            "GET /api/v1/jobs/<id>": (lambda: expect(200, client.get(job)), 1000, nothing),
            "GET /api/v1/jobs/<id>?wait=5 (ended)": (lambda: expect(200, client.get(f"{job}?wait=5")), 1000, nothing),
            "GET /api/v1/batches/<id>?wait=5, 256 ended": (
                lambda: expect(200, client.get(f"{batch}?wait=5")),
                50,
                nothing,
            ),
            "POST /api/v1/predictions, 1 PNG, multipart": (post_multipart(1), 300, store.flushdb),
            "POST /api/v1/predictions, 1 PNG, JSON": (post_json(1), 300, store.flushdb),
            "POST /api/v1/predictions, 256 PNGs, multipart": (post_multipart(256), 20, store.flushdb),
            "POST /api/v1/predictions, 256 PNGs, JSON": (post_json(256), 20, store.flushdb),
            "POST /api/v1/predictions?wait=5, 1 PNG, JSON": (post_json(1, "?wait=5", 200), 300, with_stand_in_worker),
            "POST /v2 infer, 1 pixels image, JSON": (
                infer(one_json, "application/json", {}),
                200,
                with_stand_in_worker,
            ),
            "POST /v2 infer, 64 pixels, JSON": (infer(as_json, "application/json", {}), 20, with_stand_in_worker),
            "POST /v2 infer, 64 pixels, binary": (
                infer(header + pixels.tobytes(), "application/octet-stream", length),
                20,
                with_stand_in_worker,
            ),
        }
        for name, (request, count, before_round) in cases.items():
            print(f"{name:48s} {cpu_per_request(request, count, before_round):9.0f} us CPU per request", flush=True)
    finally:
        if worker is not None:
            worker.kill()
            worker.wait()
        server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
