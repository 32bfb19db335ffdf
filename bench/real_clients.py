"""Load from the clients people really use: the ``requests`` library with multipart uploads (as the
README's curl sends them), and NVIDIA's ``tritonclient`` speaking the Open Inference Protocol.
They cost the machine more than bench/load.py's lean client; the bench prints that cost apart."""

from __future__ import annotations

from urllib.parse import urlsplit

import numpy as np
import requests

from bench.load import Tally, clients_loop


def requests_multipart(base_url: str, pngs: list[bytes], clients: int, seconds: float, per_request: int) -> Tally:
    """Each client posts ``per_request`` PNG files as multipart with ``?wait=``, polling the batch
    only when the answer did not come within the wait."""

    def send(session: requests.Session, i: int) -> tuple[int, int]:
        start = (i * per_request) % len(pngs)
        chosen = [pngs[(start + n) % len(pngs)] for n in range(per_request)]
        files = [("image", (f"{n}.png", data, "image/png")) for n, data in enumerate(chosen)]
        answer = session.post(f"{base_url}/api/v1/predictions?wait=10", files=files, timeout=60)
        answer.raise_for_status()
        batch = answer.json()
        while not batch.get("done"):
            batch_id = batch.get("batch_id") or batch["id"]
            batch = session.get(f"{base_url}/api/v1/batches/{batch_id}?wait=10", timeout=60).json()
        succeeded = batch["counts"].get("succeeded", 0)
        return succeeded, per_request - succeeded

    return clients_loop(requests.Session, send, clients, seconds, per_request)


def triton_pixels(base_url: str, digits: np.ndarray, clients: int, seconds: float, per_request: int) -> Tally:
    """Each client sends ``per_request`` 28x28 digits per inference request through tritonclient,
    with its defaults (binary tensors both ways)."""
    import tritonclient.http as triton

    address = urlsplit(base_url).netloc
    chunks = [digits[n : n + per_request] for n in range(0, len(digits) - per_request + 1, per_request)]

    def send(client, i: int) -> tuple[int, int]:
        chunk = chunks[i % len(chunks)]
        tensor = triton.InferInput("pixels", list(chunk.shape), "UINT8")
        tensor.set_data_from_numpy(chunk)
        labels = client.infer("digits", [tensor]).as_numpy("label")
        return len(labels), per_request - len(labels)

    return clients_loop(
        lambda: triton.InferenceServerClient(address, network_timeout=60), send, clients, seconds, per_request
    )
