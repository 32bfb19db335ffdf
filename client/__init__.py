"""A client of the Digits service: the ``DigitsClient`` Python API and the ``digits`` command.

    from client import DigitsClient

    digits = DigitsClient("http://127.0.0.1:8000")
    for p in digits.predict(["seven.png", "three.jpg"]):
        print(p.source, p.label, p.confidence, p.error)

Needs ``requests`` and ``pydantic`` (the job record's types, jobs/schemas.py, shared with the
service), and Pillow, if installed, to catch non-images before sending them; ``digits predict
--local`` also needs the service's ``model`` package and TensorFlow.
"""

from client.errors import DigitsError, Interrupted, RequestRefused, ServiceUnavailable, ServiceUnreachable
from client.predictions import Prediction
from client.service import DigitsClient

__all__ = [
    "RequestRefused",
    "DigitsClient",
    "DigitsError",
    "Interrupted",
    "Prediction",
    "ServiceUnavailable",
    "ServiceUnreachable",
]
