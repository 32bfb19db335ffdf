"""Private by default: a client reads the jobs whose ids it holds, and nothing of anyone else's.

The recent-jobs list, worker names and the admin's view of corrections need the admin token; a
kept upload is served to its submitter (and the admin) only; corrections need the predict token
when one is configured, always record their client, count against a per-client quota, and an
admin can delete one client's; the export is streamed; a model version other than the active
one is inferred with the admin token only. Real Redis, the real Flask app, real scripts.
"""

from __future__ import annotations

import base64
import functools
import io
import tarfile

import numpy as np
import pytest
from PIL import Image

from jobs import workers
from jobs.model_store import SHIPPED_MODEL, ModelStore
from jobs.records import SUCCEEDED, JobRecords, Outcome
from model.idx import read_idx

ADMIN_TOKEN, PREDICT_TOKEN = "admin-token-for-privacy-tests", "predict-token-for-privacy-tests"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
PREDICT = {"Authorization": f"Bearer {PREDICT_TOKEN}"}
ALICE, BOB = "198.51.100.7", "203.0.113.9"


@pytest.fixture
def make_app(make_app):
    """The fast tier's apps, with an admin token (what one client may read is judged against it)."""
    return functools.partial(make_app, DIGITS_ADMIN_TOKEN=ADMIN_TOKEN)


def png(value: int = 255) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (28, 28), value).save(buffer, format="PNG")
    return buffer.getvalue()


def succeeded(redis_client, client: str = ALICE, label: int = 3, keep_image: bool = False) -> str:
    """A prediction job of ``client``'s, taken by a worker and ended with a digit read (real scripts)."""
    records = JobRecords(redis_client)
    fields = {"keep_image": "1"} if keep_image else None
    (job_id,) = records.create("predict", client=client, images=[png(label * 20)], fields=fields).ids
    records.start([job_id], worker="predict1@secret-host:4242")
    result = {"label": label, "confidence": 0.9, "model_version": 1, "input_png": base64.b64encode(png()).decode()}
    records.finish([Outcome(job_id, SUCCEEDED, result=result)])
    return job_id


def as_client(address: str) -> dict:
    return {"environ_base": {"REMOTE_ADDR": address}}


# --- the recent jobs, worker names, uploads ---------------------------------------------------


def test_the_recent_jobs_list_needs_the_admin_token(make_app, redis_client):
    job_id = succeeded(redis_client)
    client = make_app().test_client()
    assert client.get("/api/v1/jobs").status_code == 401
    assert client.get("/api/v1/jobs", headers=PREDICT).status_code == 403
    listed = client.get("/api/v1/jobs", headers=ADMIN)
    assert listed.status_code == 200 and [job["id"] for job in listed.json["jobs"]] == [job_id]


def test_the_recent_jobs_page_lists_no_job_without_the_admin_token(make_app, redis_client):
    job_id = succeeded(redis_client)
    page = make_app().test_client().get("/jobs")
    assert page.status_code == 200
    assert job_id[:8] not in page.get_data(as_text=True)
    assert "admin token" in page.get_data(as_text=True)


def test_a_job_read_by_its_id_stays_open_and_names_its_worker_to_the_admin_only(make_app, redis_client):
    job_id = succeeded(redis_client)
    client = make_app().test_client()
    anonymous = client.get(f"/api/v1/jobs/{job_id}", **as_client(BOB))
    assert anonymous.status_code == 200 and anonymous.json["result"]["label"] == 3
    assert "worker" not in anonymous.json and "secret-host" not in anonymous.get_data(as_text=True)
    assert client.get(f"/api/v1/jobs/{job_id}", headers=ADMIN).json["worker"] == "predict1@secret-host:4242"


def test_a_batch_read_names_no_worker_without_the_admin_token(make_app, redis_client):
    records = JobRecords(redis_client)
    (job_id,) = records.create("predict", client=ALICE, images=[png()], batch_id="b" * 32, ids=["c" * 32]).ids
    records.start([job_id], worker="predict1@secret-host:4242")
    answer = make_app().test_client().get(f"/api/v1/batches/{'b' * 32}")
    assert answer.status_code == 200 and answer.json["jobs"][0]["status"] == "running"
    assert "secret-host" not in answer.get_data(as_text=True)


def test_readiness_names_the_workers_to_the_admin_only(make_app, redis_client):
    workers.beat(redis_client, "predict1@secret-host:4242", ["predict"], 1, "litert", 1, 4242)
    client = make_app().test_client()
    anonymous = client.get("/readyz")
    assert anonymous.status_code == 200 and anonymous.json["workers"] == [{"model_version": "1"}]
    assert client.get("/readyz", headers=ADMIN).json["workers"][0]["name"] == "predict1@secret-host:4242"


def test_a_kept_upload_is_served_to_its_submitter_and_the_admin_only(make_app, redis_client):
    job_id = succeeded(redis_client, client=ALICE, keep_image=True)
    client = make_app().test_client()
    assert client.get(f"/jobs/{job_id}/upload", **as_client(ALICE)).status_code == 200
    assert client.get(f"/jobs/{job_id}/upload", **as_client(BOB)).status_code == 404
    assert client.get(f"/jobs/{job_id}/upload", headers=ADMIN, **as_client(BOB)).status_code == 200


# --- corrections --------------------------------------------------------------------------------


def correct(client, job_id: str, label: int, address: str = ALICE, headers: dict | None = None):
    return client.post(f"/api/v1/jobs/{job_id}/feedback", json={"label": label}, headers=headers, **as_client(address))


def test_corrections_need_the_predict_token_when_one_is_configured(make_app, redis_client):
    job_id = succeeded(redis_client)
    client = make_app(DIGITS_PREDICT_TOKEN=PREDICT_TOKEN).test_client()  # predictions stay open
    assert client.post("/api/v1/predictions", data={"image": (io.BytesIO(png()), "a.png")}).status_code == 202
    assert correct(client, job_id, 5).status_code == 401
    assert correct(client, job_id, 5, headers=PREDICT).status_code == 201


def test_a_correction_records_its_client_which_the_admin_sees(make_app, redis_client):
    job_id = succeeded(redis_client)
    client = make_app().test_client()
    assert correct(client, job_id, 5, address=ALICE).status_code == 201
    assert "client" not in client.get("/api/v1/feedback").json["corrections"][0]
    assert client.get("/api/v1/feedback", headers=ADMIN).json["corrections"][0]["client"] == ALICE


def test_a_client_over_its_correction_quota_is_refused_and_others_are_not(make_app, redis_client):
    client = make_app(MAX_CORRECTIONS_PER_CLIENT=2).test_client()
    first, second, third = (succeeded(redis_client) for _ in range(3))
    assert correct(client, first, 5).status_code == 201
    assert correct(client, second, 5).status_code == 201
    refused = correct(client, third, 5)
    assert refused.status_code == 429 and refused.json["error"]["code"] == "correction_quota", refused.json
    assert refused.headers["Retry-After"]
    assert correct(client, first, 6).status_code == 201, "replacing one's own correction takes no more quota"
    assert correct(client, third, 5, address=BOB).status_code == 201, "another client has its own quota"
    assert client.get("/api/v1/feedback").json["total"] == 3


def test_an_admin_deletes_one_clients_corrections(make_app, redis_client):
    client = make_app().test_client()
    alices = [succeeded(redis_client) for _ in range(3)]
    bobs = succeeded(redis_client, client=BOB)
    for job_id in alices:
        assert correct(client, job_id, 1, address=ALICE).status_code == 201
    assert correct(client, bobs, 1, address=BOB).status_code == 201
    assert client.delete(f"/api/v1/feedback/clients/{ALICE}").status_code == 401
    deleted = client.delete(f"/api/v1/feedback/clients/{ALICE}", headers=ADMIN)
    assert deleted.status_code == 200 and deleted.json == {"deleted": 3}
    left = client.get("/api/v1/feedback").json
    assert left["total"] == 1 and [c["job_id"] for c in left["corrections"]] == [bobs]
    assert correct(client, alices[0], 1, address=ALICE).status_code == 201, "her quota was given back"


def test_the_export_is_streamed_and_holds_every_correction(make_app, redis_client, tmp_path):
    client = make_app().test_client()
    labels = [4, 1, 7]
    for label in labels:
        assert correct(client, succeeded(redis_client, label=label), label).status_code == 201
    answer = client.get("/api/v1/feedback/export")
    assert answer.status_code == 200 and "Content-Length" not in answer.headers, "built whole before it was sent"
    with tarfile.open(fileobj=io.BytesIO(answer.get_data())) as tar:
        tar.extractall(tmp_path, filter="data")
    assert read_idx(tmp_path / "feedback-labels-idx1-ubyte.gz").tolist() == labels
    assert read_idx(tmp_path / "feedback-predicted-idx1-ubyte.gz").tolist() == labels
    images = read_idx(tmp_path / "feedback-images-idx3-ubyte.gz")
    assert images.shape == (3, 28, 28) and np.all(images == 255)


# --- named model versions -----------------------------------------------------------------------


def test_a_version_other_than_the_active_one_needs_the_admin_token(make_app, redis_client):
    store = ModelStore(redis_client)
    shipped = SHIPPED_MODEL.read_bytes()
    active, other = store.add(shipped, {}), store.add(shipped, {})
    store.activate(active)
    store.set_check(other, {"ok": True})
    client = make_app(MAX_WAIT_SECONDS=1).test_client()
    pixels = {"inputs": [{"name": "pixels", "datatype": "UINT8", "shape": [1, 28, 28], "data": [0] * 784}]}
    refused = client.post(f"/v2/models/digits/versions/{other}/infer", json=pixels)
    assert refused.status_code == 401, refused.get_data(as_text=True)
    # The active version, and the admin's request for another, go on to be served (no worker here: 503).
    assert client.post(f"/v2/models/digits/versions/{active}/infer", json=pixels).status_code != 401
    assert client.post(f"/v2/models/digits/versions/{other}/infer", json=pixels, headers=ADMIN).status_code != 401


# --- the token lockout ----------------------------------------------------------------------------


def test_wrong_tokens_from_an_address_never_lock_out_the_right_one(make_app, redis_client):
    client = make_app(TOKEN_FAILURES_PER_MINUTE=3).test_client()
    guesses = [client.get("/api/v1/jobs", headers={"Authorization": "Bearer guess"}).status_code for _ in range(4)]
    assert guesses == [403, 403, 403, 429]
    assert 0 < redis_client.ttl("digits:token-failures:127.0.0.1") <= 60, "a failure count that never expires"
    assert client.get("/api/v1/jobs", headers=ADMIN).status_code == 200, "the admin was locked out by a guesser"
    assert client.get("/api/v1/jobs", headers={"Authorization": "Bearer guess"}).status_code == 429
