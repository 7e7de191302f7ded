"""The OpenAPI schema documents every endpoint with its bodies; the docs pages need no CDN."""

import re

import pytest
from django.contrib.staticfiles import finders

from tests.api.conftest import url

SPEC_ENDPOINTS = {
    "/api/v1/crm/leads/": {"get", "post"},
    "/api/v1/crm/leads/{id}/": {"get", "put", "patch", "delete"},
    "/api/v1/crm/leads/kanban/": {"get"},
    "/api/v1/crm/leads/{id}/move-stage/": {"post"},
    "/api/v1/crm/leads/{id}/convert/": {"post"},
    "/api/v1/crm/leads/{id}/mark-lost/": {"post"},
    "/api/v1/crm/opportunities/": {"get", "post"},
    "/api/v1/crm/opportunities/{id}/": {"get", "put", "patch", "delete"},
    "/api/v1/crm/opportunities/kanban/": {"get"},
    "/api/v1/crm/opportunities/{id}/move-stage/": {"post"},
    "/api/v1/crm/opportunities/{id}/mark-won/": {"post"},
    "/api/v1/crm/opportunities/{id}/mark-lost/": {"post"},
    "/api/v1/crm/opportunities/forecast/": {"get"},
    "/api/v1/crm/dashboard/": {"get"},
    **{
        f"/api/v1/crm/{resource}/{suffix}": methods
        for resource in ("contacts", "accounts", "activities", "pipelines", "stages")
        for suffix, methods in (("", {"get", "post"}), ("{id}/", {"get", "put", "patch", "delete"}))
    },
}


@pytest.fixture
def schema(client, db):
    # JSON: the same document as the default YAML, parsed in C rather than by PyYAML (seconds).
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.oai.openapi+json")
    return response.json()


def body_schema(schema, path, method, kind="requestBody"):
    operation = schema["paths"][path][method]
    if kind == "requestBody":
        ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    else:
        ref = operation["responses"][kind]["content"]["application/json"]["schema"]["$ref"]
    return schema["components"]["schemas"][ref.rsplit("/", 1)[1]]


def test_schema_documents_every_endpoint_of_the_spec(schema):
    assert schema["openapi"].startswith("3.")
    for path, methods in SPEC_ENDPOINTS.items():
        assert path in schema["paths"], path
        assert methods <= set(schema["paths"][path]), path


def test_schema_shows_the_action_bodies(schema):
    assert set(body_schema(schema, "/api/v1/crm/leads/{id}/move-stage/", "post")["properties"]) == {
        "stage_id"
    }
    assert set(body_schema(schema, "/api/v1/crm/leads/{id}/mark-lost/", "post")["properties"]) == {
        "lost_reason_id",
        "lost_note",
    }
    assert set(body_schema(schema, "/api/v1/crm/leads/{id}/convert/", "post")["properties"]) == {
        "account_id",
        "create_account",
        "contact_id",
        "create_contact",
        "create_opportunity",
        "opportunity_name",
        "amount",
        "close_date",
        "pipeline_id",
        "stage_id",
    }
    assert set(body_schema(schema, "/api/v1/crm/leads/{id}/convert/", "post", "200")["properties"]) == {
        "lead",
        "account",
        "contact",
        "opportunity",
    }
    assert "requestBody" not in schema["paths"]["/api/v1/crm/opportunities/{id}/mark-won/"]["post"]
    for path in ("/api/v1/crm/leads/{id}/move-stage/", "/api/v1/crm/opportunities/{id}/mark-won/"):
        assert {"200", "404", "409"} <= set(schema["paths"][path]["post"]["responses"])


def test_schema_shows_board_forecast_and_dashboard_shapes_and_parameters(schema):
    kanban = schema["paths"]["/api/v1/crm/leads/kanban/"]["get"]
    assert {"pipeline", "limit", "stage", "search", "ordering"} <= {p["name"] for p in kanban["parameters"]}
    assert set(body_schema(schema, "/api/v1/crm/leads/kanban/", "get", "200")["properties"]) == {
        "pipeline",
        "columns",
    }
    assert set(schema["components"]["schemas"]["LeadKanbanColumn"]["properties"]) == {
        "stage",
        "count",
        "total",
        "results",
    }

    forecast = schema["paths"]["/api/v1/crm/opportunities/forecast/"]["get"]
    assert {p["name"] for p in forecast["parameters"]} == {
        "pipeline",
        "owner",
        "date_from",
        "date_to",
        "group_by",
    }
    assert set(schema["components"]["schemas"]["ForecastGroup"]["properties"]) == {
        "key",
        "label",
        "count",
        "amount",
        "weighted_amount",
        "won_count",
        "won_amount",
        "target_amount",
    }
    dashboard = body_schema(schema, "/api/v1/crm/dashboard/", "get", "200")
    assert set(dashboard["properties"]) == {
        "currency",
        "conversion",
        "my_attainment",
        "total_leads",
        "open_opportunities",
        "won_opportunities",
        "conversion_rate",
        "pipeline_distribution",
    }


def test_schema_names_relations_with_id(schema):
    lead = schema["components"]["schemas"]["Lead"]["properties"]
    assert {
        "pipeline_id",
        "stage_id",
        "owner_id",
        "lost_reason_id",
        "tags",
        "stage_name",
        "owner_username",
    } <= set(lead)
    assert "stage" not in lead and "pipeline" not in lead
    assert lead["status"]["readOnly"] is True


def test_schema_as_json(client, db):
    response = client.get("/api/schema/?format=json")
    assert response.status_code == 200
    assert "/api/v1/crm/leads/" in response.json()["paths"]


@pytest.mark.parametrize("page", ["/api/docs/", "/api/redoc/"])
def test_docs_pages_answer_and_load_nothing_from_a_cdn(client, db, page):
    response = client.get(page)

    assert response.status_code == 200
    html = response.content.decode()
    assert "/api/schema/" in html
    sources = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
    assert sources
    for source in sources:
        assert not source.startswith(("http:", "https:", "//")), source
    assert "cdn" not in html.lower()
    for source in sources:
        if source.startswith("/static/"):
            assert finders.find(source.removeprefix("/static/")), source


@pytest.mark.django_db
def test_api_root_lists_the_resources(api):
    response = api.get(url(""))
    assert response.status_code == 200
    assert {
        "leads",
        "opportunities",
        "contacts",
        "accounts",
        "activities",
        "pipelines",
        "stages",
        "dashboard",
    } <= set(response.json())


def test_the_schema_is_generated_once_per_process_and_language(client, db, monkeypatch):
    """Generating it walks every view (seconds); the document depends on the code alone. Whether this
    process made it already or makes it now, the next requests are served without generating it."""
    from drf_spectacular.generators import SchemaGenerator

    generated = []
    real = SchemaGenerator.get_schema

    def counting(self, *args, **kwargs):
        generated.append(1)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(SchemaGenerator, "get_schema", counting)
    first = client.get("/api/schema/", {"format": "json"})
    assert len(generated) <= 1
    generated.clear()
    second = client.get("/api/schema/", {"format": "json"})
    yaml_page = client.get("/api/schema/")

    assert first.status_code == second.status_code == yaml_page.status_code == 200
    assert generated == []
    assert first.content == second.content
    assert "/api/v1/crm/leads/" in first.json()["paths"]
    # The default format is YAML, of the same document.
    assert yaml_page["Content-Type"].startswith("application/vnd.oai.openapi")
    assert yaml_page.content.startswith(b"openapi: ")
