"""The seed notebook's way, as a Celery worker, for comparison: one task per image, ``model.predict()`` inside.

    celery -A bench.naive_worker worker -Q predict -c 1

It consumes the same ``predict`` queue and writes the same job records as the real worker, so the
web and the HTTP clients cannot tell the difference, except in speed.
"""

from __future__ import annotations

import base64
import os

import numpy as np
from celery import signals

from jobs import records as rec
from jobs.queue import PREDICT_TASK, connect, create_celery, job_ttl_seconds
from model.preprocess import preprocess
from model.store import SHIPPED_MODEL

app = create_celery()
app.conf.worker_prefetch_multiplier = 1
state: dict = {}


@signals.worker_process_init.connect
def _load(**_) -> None:
    import keras

    state["model"] = keras.models.load_model(SHIPPED_MODEL, compile=False)
    state["records"] = rec.JobRecords(connect(), job_ttl_seconds())


@app.task(name=PREDICT_TASK, acks_late=True)
def predict(items: list) -> None:
    records, model = state["records"], state["model"]
    for job_id, encoded in items:
        records.start([job_id], f"naive:{os.getpid()}")
        pixels = preprocess(base64.b64decode(encoded))
        probabilities = model.predict(pixels[None, ..., None], verbose=0)[0]
        label = int(np.argmax(probabilities))
        result = {"label": label, "probabilities": probabilities.tolist(), "model_version": None}
        records.finish([rec.Outcome(job_id, rec.SUCCEEDED, result=result)])
