"""GET /api/v1/openapi.json stays true: it covers every route, is valid OpenAPI, and the live
service keeps to it under schemathesis' generated requests (positive and negative)."""

from __future__ import annotations

import re
import subprocess

import pytest
import requests
from jsonschema import ValidationError
from openapi_spec_validator import validate

from jobs.model_store import ModelStore
from stack.processes import BIN
from tests.conftest import OUTPUT, ROOT, TOKEN
from tests.helpers import openapi_validator, web_only
from web import create_app
from web.openapi import document

AUTH = {"Authorization": f"Bearer {TOKEN}"}
SCHEMATHESIS_EXAMPLES = 25  # per operation and phase: about a quarter of a minute on the CI machine


@pytest.fixture(scope="module")
def web():
    """The web alone (training jobs stay queued), with the shipped model in the store to find."""
    # Waits of at most a second: generated requests may wait on jobs that never end (no worker).
    with web_only("test_openapi", env={"RATE_LIMIT": "", "MAX_WAIT_SECONDS": "1"}) as (stack, client):
        store = ModelStore(client)
        store.set_check(store.ensure_seeded(), {"ok": True, "reason": "ok"})  # as a worker would have checked it
        yield stack


def flask_paths() -> set[tuple[str, str]]:
    """(path, method) of every route of the JSON API and the operations endpoints, as OpenAPI spells paths."""
    app = create_app()
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(("/api/", "/v2")) or rule.rule in ("/healthz", "/readyz", "/metrics"):
            path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
            routes |= {(path, method.lower()) for method in rule.methods - {"HEAD", "OPTIONS"}}
    return routes


def test_every_route_is_documented_and_every_documented_operation_exists():
    documented = {(path, method) for path, operations in document(10, 30)["paths"].items() for method in operations}
    routes = flask_paths()
    assert routes - documented == set(), "routes missing from web/openapi.py"
    assert documented - routes == set(), "documented operations the app does not have"
    assert any(path.startswith("/api/v1/") for path, _ in routes) and len(routes) >= 15


def test_the_served_document_is_valid_openapi_with_the_running_limits(web):
    served = requests.get(f"{web.web_url}/api/v1/openapi.json", timeout=10).json()
    validate(served)
    images = served["paths"]["/api/v1/predictions"]["post"]["requestBody"]["content"]["application/json"]
    assert images["schema"]["properties"]["images"]["maxItems"] == 1000  # MAX_IMAGES_PER_REQUEST


def test_the_training_parameters_documented_are_those_accepted(web):
    from model.training.config import RECIPES, request_parameters

    served = requests.get(f"{web.web_url}/api/v1/openapi.json", timeout=10).json()
    documented = served["components"]["schemas"]["TrainingRequest"]["properties"]
    accepted = request_parameters() | {"activate"}
    assert set(documented) == accepted
    assert documented["recipe"]["enum"] == list(RECIPES)


def test_responses_of_a_training_submission_match_the_document(web):
    served = requests.get(f"{web.web_url}/api/v1/openapi.json", timeout=10).json()
    accepted = requests.post(
        f"{web.web_url}/api/v1/training-jobs", json={"arch": "logreg", "epochs": 1}, headers=AUTH, timeout=10
    )
    assert accepted.status_code == 202
    openapi_validator(served, "TrainingAccepted").validate(accepted.json())
    job = requests.get(f"{web.web_url}/api/v1/jobs/{accepted.json()['job_id']}", timeout=10).json()
    openapi_validator(served, "Job").validate(job)
    cancelled = requests.delete(f"{web.web_url}/api/v1/jobs/{job['id']}", headers=AUTH, timeout=10)
    openapi_validator(served, "Job").validate(cancelled.json())
    assert cancelled.json()["status"] == "cancelled"
    models = requests.get(f"{web.web_url}/api/v1/models", timeout=10).json()
    openapi_validator(served, "ModelList").validate(models)
    with pytest.raises(ValidationError):
        openapi_validator(served, "Job").validate({**job, "status": "lost"})  # the check can fail


@pytest.mark.slow
def test_schemathesis_finds_no_server_error_and_no_departure_from_the_document(web):
    log = OUTPUT / "test_openapi" / "schemathesis.log"
    command = [
        str(BIN / "schemathesis"),
        "--config-file",
        str(ROOT / "tests" / "schemathesis.toml"),
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
