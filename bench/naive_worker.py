"""The seed notebook's way, for comparison: one image at a time, ``model.predict()`` for each.

    python -m bench.naive_worker

It takes jobs from the same lanes, reads images the same way (model/recognise.py) and writes the
same job records as the real worker, so the web and the HTTP clients cannot tell the difference,
except in speed: each image is its own ``model.predict()`` call.
"""

from __future__ import annotations

import os
import sys

import numpy as np

from jobs import keys
from jobs import records as rec
from jobs.lanes import LaneReader
from jobs.queue import connect
from model.recognise import Bounds, recognise
from model.shipped import SHIPPED_MODEL
from settings import get_settings


class PredictPerCall:
    """The notebook's call: ``model.predict()``, which costs tens of milliseconds however small the batch."""

    version = None

    def __init__(self):
        from model.runtimes import keras_files

        self.network = keras_files.load(SHIPPED_MODEL)

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        return self.network.predict(images[..., None], verbose=0)


def main() -> int:
    settings = get_settings()
    bounds = Bounds(settings.max_image_pixels, settings.max_decoded_bytes, settings.max_digits_per_number)
    predictor = PredictPerCall()
    client = connect()
    records = rec.JobRecords(client, settings.job_ttl_seconds)
    reader = LaneReader(client, keys.PREDICT_QUEUES)
    name = f"naive:{os.getpid()}"
    while True:
        for job_id in (entry for batch in reader.take(1, 1.0) for entry in batch):
            (job,) = records.start([job_id], name)
            if not job.taken:
                continue
            (reading,) = recognise([job.image], predictor, bounds)
            status = rec.SUCCEEDED if reading.error is None else rec.FAILED
            records.finish(
                [rec.Outcome(job_id, status, reading.result, reading.error)],
                clients=[job.client],
                created_at=[job.created_at],
            )


if __name__ == "__main__":
    sys.exit(main())
