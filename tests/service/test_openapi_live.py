"""schemathesis against the live service (gunicorn, no worker): no server error and no departure
from its own OpenAPI document under generated requests, positive and negative. The document itself
is checked in process in tests/fast/test_openapi.py."""

from __future__ import annotations

import re
import subprocess

import pytest

from jobs.model_store import ModelStore
from stack.processes import BIN
from tests.conftest import OUTPUT, ROOT, TOKEN
from tests.service.helpers import web_only

SCHEMATHESIS_EXAMPLES = 25  # per operation and phase: about a quarter of a minute on the CI machine


@pytest.fixture(scope="module")
def web():
    """The web alone (training jobs stay queued), with the shipped model in the store to find."""
    # Waits of at most a second: generated requests may wait on jobs that never end (no worker).
    with web_only("test_openapi", env={"RATE_LIMIT": "", "MAX_WAIT_SECONDS": "1"}) as (stack, client):
        store = ModelStore(client)
        store.set_check(store.ensure_seeded(), {"ok": True, "reason": "ok"})  # as a worker would have checked it
        yield stack


@pytest.mark.slow
def test_schemathesis_finds_no_server_error_and_no_departure_from_the_document(web):
    log = OUTPUT / "test_openapi" / "schemathesis.log"
    command = [
        str(BIN / "schemathesis"),
        "--config-file",
        str(ROOT / "tests" / "service" / "schemathesis.toml"),
        "--no-color",
        "run",
        f"{web.web_url}/api/v1/openapi.json",
        "--checks",
        "all",
        # Schemas cannot say which bytes are a real image or model, so a schema-valid upload may
        # rightly be refused; and DELETE /jobs/{id} cancels a job, whose record then shows it.
        "--exclude-checks",
        "positive_data_acceptance,use_after_free",
        # Its 503 (no worker here) is its answer, not a failure; it is tested with workers elsewhere.
        "--exclude-path",
        "/readyz",
        "--max-examples",
        str(SCHEMATHESIS_EXAMPLES),
        "--seed",
        "7",  # the same requests every run
        "--workers",
        "1",  # Python 3.11.7's ast.parse is not thread-safe, and hypothesis calls it
        "--request-timeout",
        "10",
        "--max-response-time",
        "5",  # ?wait= holds a request for up to MAX_WAIT_SECONDS (1 here) by design
        "-H",
        f"Authorization: Bearer {TOKEN}",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    log.write_text(result.stdout + result.stderr)
    summary = "\n".join(result.stdout.splitlines()[-40:])
    assert result.returncode == 0, f"schemathesis failed (full output in {log}):\n{summary}"
    assert re.search(r"\d+ generated, \d+ passed", result.stdout), summary
