"""Small HTTP helpers the service tests share."""

from __future__ import annotations

import base64
import re
import time

import requests

from jobs.records import TERMINAL


def submit(base_url: str, images: list[bytes], as_json: bool = False) -> list[str]:
    """POST images to /api/v1/predictions; return the job ids in order."""
    url = f"{base_url}/api/v1/predictions"
    if as_json:
        response = requests.post(url, json={"images": [base64.b64encode(i).decode() for i in images]}, timeout=30)
    else:
        files = [("image", (f"{n}.png", data, "image/png")) for n, data in enumerate(images)]
        response = requests.post(url, files=files, timeout=30)
    assert response.status_code == 202, response.text
    jobs = response.json()["jobs"]
    assert len(jobs) == len(images)
    return [job["job_id"] for job in jobs]


def wait_for(base_url: str, job_id: str, timeout: float = 120) -> dict:
    """Long-poll a job until it ends; fail the test if it does not within ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = requests.get(f"{base_url}/api/v1/jobs/{job_id}", params={"wait": 10}, timeout=30)
        assert response.status_code == 200, response.text
        job = response.json()
        if job["status"] in TERMINAL:
            return job
    raise AssertionError(f"job {job_id} did not end within {timeout} s: {job}")


def form_session(base_url: str) -> tuple[requests.Session, str]:
    """A browser-like session that has loaded the upload form: its cookie and the form's CSRF token."""
    session = requests.Session()
    page = session.get(f"{base_url}/", timeout=10)
    assert page.status_code == 200, page.text
    return session, re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
