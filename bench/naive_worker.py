"""The seed notebook's way, as a Celery worker, for comparison: one task per image, ``model.predict()`` inside.

    celery -A bench.naive_worker worker -Q predict,predict_bulk -c 1

It consumes the same ``predict`` queue, reads images the same way (model/recognise.py) and writes
the same job records as the real worker, so the web and the HTTP clients cannot tell the
difference, except in speed: each image is its own task and its own ``model.predict()`` call.
"""

from __future__ import annotations

import os

import numpy as np
from celery import signals

from jobs import records as rec
from jobs.queue import PREDICT_TASK, connect, create_celery
from model.recognise import Bounds, recognise
from model.store import SHIPPED_MODEL
from settings import get_settings

app = create_celery()
BOUNDS = Bounds(get_settings().max_image_pixels, get_settings().max_decoded_bytes)
app.conf.worker_prefetch_multiplier = 1
state: dict = {}


class PredictPerCall:
    """The notebook's call: ``model.predict()``, which costs tens of milliseconds however small the batch."""

    version = None

    def __init__(self):
        from model import keras_files

        self.network = keras_files.load(SHIPPED_MODEL)

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        return self.network.predict(images[..., None], verbose=0)


@signals.worker_process_init.connect
def _load(**_) -> None:
    state["predictor"] = PredictPerCall()
    state["records"] = rec.JobRecords(connect(), get_settings().job_ttl_seconds)


@app.task(name=PREDICT_TASK, acks_late=True)
def predict(job_ids: list) -> None:
    records, predictor = state["records"], state["predictor"]
    for job_id in job_ids:
        (job,) = records.start([job_id], f"naive:{os.getpid()}")
        if not job.taken:
            continue
        (reading,) = recognise([job.image], predictor, BOUNDS)
        status = rec.SUCCEEDED if reading.error is None else rec.FAILED
        records.finish([rec.Outcome(job_id, status, reading.result, reading.error)], clients=[job.client])
