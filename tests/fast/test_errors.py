"""One error answer for the whole web: a page for people at the pages, JSON for programs and the API."""

from __future__ import annotations

import pytest

from web import create_app

BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
PROGRAM = {"Accept": "*/*"}


@pytest.fixture
def client(redis_client):
    url = redis_client.connection_pool.connection_kwargs
    return create_app(
        {"REDIS_URL": f"redis://127.0.0.1:{url['port']}/{url['db']}", "SECRET_KEY": "k" * 40}
    ).test_client()


def is_page(response) -> bool:
    return response.mimetype == "text/html" and "<main" in response.get_data(as_text=True)


def test_an_unknown_job_page_is_a_404_page_for_a_browser(client):
    response = client.get(f"/jobs/{'0' * 32}", headers=BROWSER)
    assert response.status_code == 404 and is_page(response)
    assert "no job" in response.get_data(as_text=True)


def test_the_api_answers_json_whatever_the_client_accepts(client):
    response = client.get(f"/api/v1/jobs/{'0' * 32}", headers=BROWSER)
    assert response.status_code == 404 and response.json["error"]["code"] == "not_found"


@pytest.mark.parametrize(("headers", "page"), [(BROWSER, True), (PROGRAM, False)])
def test_a_path_no_route_knows_is_a_page_only_for_a_browser(client, headers, page):
    response = client.get("/no/such/page", headers=headers)
    assert response.status_code == 404 and is_page(response) is page
    if not page:
        assert response.json["error"]["code"] == "not_found"


def test_a_page_that_needs_the_token_says_so_as_a_page(redis_client):
    url = redis_client.connection_pool.connection_kwargs
    app = create_app(
        {"REDIS_URL": f"redis://127.0.0.1:{url['port']}/{url['db']}", "SECRET_KEY": "k" * 40,
         "PREDICTIONS_NEED_TOKEN": True, "DIGITS_API_TOKEN": "t"}
    )  # fmt: skip
    page = app.test_client().get(f"/jobs/{'0' * 32}", headers=BROWSER)
    assert page.status_code == 401 and is_page(page) and "token" in page.get_data(as_text=True)
    api = app.test_client().get(f"/api/v1/jobs/{'0' * 32}", headers=BROWSER)
    assert api.status_code == 401 and api.json["error"]["code"] == "unauthorized"


def test_a_refused_form_post_shows_the_form_again_with_the_reason(client):
    client.get("/", headers=BROWSER)
    response = client.post("/predict", data={}, headers=BROWSER)  # no CSRF token
    assert response.status_code == 400 and is_page(response)
    text = response.get_data(as_text=True)
    assert "Reload the page" in text and 'name="image"' in text
