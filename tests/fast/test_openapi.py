"""GET /api/v1/openapi.json stays true: it is generated from the routes and their types, covers
every route, is valid OpenAPI whose examples fit their schemas, and the app serves it and answers
as it says (Flask's test client, a Redis of its own). schemathesis runs it against the live service
in tests/service/test_openapi_live.py."""

from __future__ import annotations

import re

import pytest
import redis
from jsonschema import Draft202012Validator, ValidationError
from openapi_spec_validator import validate

from jobs.model_store import ModelStore
from tests.conftest import TOKEN, openapi_validator, private_redis
from web import create_app
from web.openapi import document

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def web():
    """The app's test client (training jobs stay queued: no worker), with the shipped model in the store to find."""
    with private_redis() as server:
        store = ModelStore(redis.Redis.from_url(server.url))
        store.set_check(store.ensure_seeded(), {"ok": True, "reason": "ok"})  # as a worker would have checked it
        yield create_app({"REDIS_URL": server.url, "DIGITS_ADMIN_TOKEN": TOKEN, "RATE_LIMIT": ""}).test_client()


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
    served = web.get("/api/v1/openapi.json").json
    validate(served)
    assert served["components"]["schemas"]["PredictionsJson"]["properties"]["images"]["maxItems"] == 1000


def test_the_training_parameters_documented_are_those_accepted(web):
    from model.training.config import RECIPES, request_parameters

    served = web.get("/api/v1/openapi.json").json
    documented = served["components"]["schemas"]["TrainingRequest"]["properties"]
    accepted = request_parameters() | {"activate"}
    assert set(documented) == accepted
    assert documented["recipe"]["enum"] == list(RECIPES)


def test_responses_of_a_training_submission_match_the_document(web):
    served = web.get("/api/v1/openapi.json").json
    accepted = web.post("/api/v1/training-jobs", json={"arch": "logreg", "epochs": 1}, headers=AUTH)
    assert accepted.status_code == 202
    openapi_validator(served, "TrainingAccepted").validate(accepted.json)
    job = web.get(f"/api/v1/jobs/{accepted.json['job_id']}").json
    openapi_validator(served, "JobRecord").validate(job)
    cancelled = web.delete(f"/api/v1/jobs/{job['id']}", headers=AUTH)
    openapi_validator(served, "JobRecord").validate(cancelled.json)
    assert cancelled.json["status"] == "cancelled"
    models = web.get("/api/v1/models").json
    openapi_validator(served, "ModelList").validate(models)
    with pytest.raises(ValidationError):
        openapi_validator(served, "JobRecord").validate({**job, "status": "lost"})  # the check can fail
