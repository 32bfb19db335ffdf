"""GET /api/v1/openapi.json stays true: it is generated from the routes and their types, covers
every route, is valid OpenAPI whose examples fit their schemas, and the live service keeps to it
under schemathesis' generated requests (positive and negative)."""

from __future__ import annotations

import re
import subprocess

import pytest
import requests
from jsonschema import Draft202012Validator, ValidationError
from openapi_spec_validator import validate

from jobs.model_store import ModelStore
from stack.processes import BIN
from tests.conftest import OUTPUT, ROOT, TOKEN, openapi_validator
from tests.service.helpers import web_only
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


def app_and_document(**config) -> tuple:
    app = create_app({"REDIS_URL": "redis://127.0.0.1:1/0", **config})  # connects to nothing until asked
    return app, document(app, app.extensions["digits"].settings)


def flask_paths(app) -> set[tuple[str, str]]:
    """(path, method) of every route of the JSON API and the operations endpoints, as OpenAPI spells paths."""
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(("/api/", "/v2")) or rule.rule in ("/healthz", "/readyz", "/metrics"):
            path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
            routes |= {(path, method.lower()) for method in rule.methods - {"HEAD", "OPTIONS"}}
    return routes


def operations(doc: dict) -> list[tuple[str, str, dict]]:
    return [(path, method, operation) for path, item in doc["paths"].items() for method, operation in item.items()]


def test_every_route_is_documented_and_every_documented_operation_exists():
    app, doc = app_and_document()
    documented = {(path, method) for path, method, _ in operations(doc)}
    routes = flask_paths(app)
    assert routes - documented == set(), "routes without @documented (web/openapi.py)"
    assert documented - routes == set(), "documented operations the app does not have"
    assert any(path.startswith("/api/v1/") for path, _ in routes) and len(routes) >= 30
    ids = [operation["operationId"] for _, _, operation in operations(doc)]
    assert len(ids) == len(set(ids)), "operationIds must be unique"


def test_the_document_is_valid_openapi_31_and_holds_the_limits_and_tokens_configured():
    _, doc = app_and_document(MAX_IMAGES_PER_REQUEST=7, MAX_WAIT_SECONDS=12)
    validate(doc)
    assert doc["openapi"] == "3.1.0"
    schemas = doc["components"]["schemas"]
    assert schemas["PredictionsJson"]["properties"]["images"]["maxItems"] == 7
    wait = {p["name"]: p for p in doc["paths"]["/api/v1/jobs/{job_id}"]["get"]["parameters"]}["wait"]
    assert wait["schema"]["maximum"] == 12 and wait["in"] == "query"
    schemes = doc["components"]["securitySchemes"]
    assert "DIGITS_ADMIN_TOKEN" in schemes["admin"]["description"]
    assert "DIGITS_API_TOKEN" not in str(doc), "the deprecated name of the admin token"
    training = doc["paths"]["/api/v1/training-jobs"]["post"]
    assert training["security"] == [{"admin": []}] and {"401", "403"} <= set(training["responses"])
    assert "security" not in doc["paths"]["/api/v1/predictions"]["post"]  # open by default


def test_predictions_are_documented_as_needing_a_token_when_they_do():
    _, doc = app_and_document(PREDICTIONS_NEED_TOKEN=True, DIGITS_ADMIN_TOKEN="x")
    predictions = doc["paths"]["/api/v1/predictions"]["post"]
    assert predictions["security"] == [{"predict": []}, {"admin": []}] and "401" in predictions["responses"]
    assert "security" not in doc["paths"]["/healthz"]["get"]


def examples(node, where: str = "#"):
    """(where, schema, example) of every example the document gives with its schema."""
    if isinstance(node, dict):
        if isinstance(node.get("schema"), dict) and "example" in node:
            yield where, node["schema"], node["example"]
        for example in node.get("examples", []) if "type" in node or "properties" in node else []:
            yield where, node, example
        for key, value in node.items():
            yield from examples(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from examples(value, f"{where}/{i}")


def test_every_example_in_the_document_fits_its_schema():
    _, doc = app_and_document()
    found = list(examples(doc))
    assert {"PredictionsJson", "FeedbackBody", "TrainingRequest"} <= {w.rsplit("/", 1)[-1] for w, _, _ in found}
    for _, schema, example in found:
        Draft202012Validator({**doc, **schema}, format_checker=Draft202012Validator.FORMAT_CHECKER).validate(example)
    with pytest.raises(ValidationError):  # the check can fail
        Draft202012Validator({**doc, **doc["components"]["schemas"]["FeedbackBody"]}).validate({"label": 12})


def test_the_served_document_is_the_generated_one_with_the_running_limits(web):
    served = requests.get(f"{web.web_url}/api/v1/openapi.json", timeout=10).json()
    validate(served)
    assert served["components"]["schemas"]["PredictionsJson"]["properties"]["images"]["maxItems"] == 1000


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
    openapi_validator(served, "JobRecord").validate(job)
    cancelled = requests.delete(f"{web.web_url}/api/v1/jobs/{job['id']}", headers=AUTH, timeout=10)
    openapi_validator(served, "JobRecord").validate(cancelled.json())
    assert cancelled.json()["status"] == "cancelled"
    models = requests.get(f"{web.web_url}/api/v1/models", timeout=10).json()
    openapi_validator(served, "ModelList").validate(models)
    with pytest.raises(ValidationError):
        openapi_validator(served, "JobRecord").validate({**job, "status": "lost"})  # the check can fail


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
