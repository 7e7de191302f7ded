"""Errors answered outside the views (no route, a request Django refuses) are JSON under /api/, and
the schema documents the errors every operation can give, with the bodies the API really sends."""

import json

import jsonschema
import pytest

from tests.api.conftest import url
from tests.factories import LeadFactory


@pytest.fixture
def schema(client, db):
    return client.get("/api/schema/", {"format": "json"}).json()


def body_schema(schema, path: str, method: str, code: int) -> dict:
    """The documented body of one response, with the components it refers to resolvable."""
    response = schema["paths"][path][method]["responses"][str(code)]
    return {**response["content"]["application/json"]["schema"], "components": schema["components"]}


@pytest.mark.django_db
def test_an_api_url_that_no_route_matches_answers_json_404(api):
    response = api.get(url("no-such-resource/"))
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "Not found."}


@pytest.mark.django_db
def test_pages_outside_the_api_keep_django_error_pages(admin_client):
    response = admin_client.get("/no-such-page/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


@pytest.mark.django_db
def test_a_body_over_the_limit_answers_json_400(settings, api, stages):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = json.dumps({"name": "x" * 2000})
    response = api.post(url("leads/"), body, content_type="application/json")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert set(response.json()) == {"detail"}


@pytest.mark.django_db
def test_a_host_not_allowed_answers_json_400(api):
    response = api.get(url("leads/"), HTTP_HOST="evil.example")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"


def test_every_operation_documents_the_standard_errors(schema):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            codes = set(operation["responses"])
            assert {"400", "404", "429"} <= codes, (method, path)
            # The token endpoint and the BCC door (its secret header is the credential) take no login.
            if path not in ("/api/v1/auth/token/", "/api/v1/crm/mailboxes/inbound/"):
                assert {"401", "403"} <= codes, (method, path)
            if method in ("post", "put", "patch", "delete"):
                assert "409" in codes, (method, path)
            if "requestBody" in operation:
                assert "415" in codes, (method, path)


@pytest.mark.django_db
def test_real_error_bodies_match_their_documented_schemas(schema, api, anon, stages):
    lead = LeadFactory(stage=stages["New"])
    cases = [
        # per field, a list item's errors nested under the list's name, a parse error
        ("/api/v1/crm/leads/", "post", api.post(url("leads/"), {"name": "", "tags": ["x"]}), 400),
        ("/api/v1/crm/leads/merge/", "post", api.post(url("leads/merge/"), {"ids": ["a"]}), 400),
        ("/api/v1/crm/leads/", "post", api.post(url("leads/"), "{", content_type="application/json"), 400),
        ("/api/v1/crm/leads/", "get", api.get(url("leads/?owner=999999")), 400),
        ("/api/v1/crm/leads/export/", "get", api.get(url("leads/export/?format=pdf")), 400),
        ("/api/v1/crm/leads/import/", "post", api.post(url("leads/import/"), {}, format="multipart"), 400),
        ("/api/v1/crm/leads/", "get", anon.get(url("leads/")), 401),
        ("/api/v1/crm/leads/{id}/", "get", api.get(url("leads/999999/")), 404),
        ("/api/v1/crm/leads/", "post", api.post(url("leads/"), "<x/>", content_type="application/xml"), 415),
        (
            "/api/v1/crm/leads/{id}/mark-lost/",
            "post",
            api.post(url(f"leads/{lead.pk}/convert/")) and api.post(url(f"leads/{lead.pk}/mark-lost/")),
            409,
        ),
    ]
    for path, method, response, code in cases:
        assert response.status_code == code, (path, method, response.content)
        jsonschema.validate(response.json(), body_schema(schema, path, method, code))
