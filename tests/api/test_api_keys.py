"""API keys: scoped per resource (read or write), acting as their user (never beyond), expiring,
revocable, stored hashed, throttled per key, and documented as a security scheme."""

import datetime

import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from crm.models import ApiKey

KEYS = "/api/v1/crm/api-keys/"


def make_key(api, **body) -> tuple[dict, APIClient]:
    response = api.post(KEYS, {"name": "integration", **body}, format="json")
    assert response.status_code == 201, response.content
    data = response.json()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {data['key']}")
    return data, client


@pytest.mark.django_db
def test_a_read_key_reads_but_cannot_write(api_as, people):
    _, key = make_key(api_as("owner"), scopes={"leads": "read"})
    lead = people.records["owner"].lead

    assert key.get("/api/v1/crm/leads/").status_code == 200
    assert key.get(f"/api/v1/crm/leads/{lead.pk}/").status_code == 200
    response = key.patch(f"/api/v1/crm/leads/{lead.pk}/", {"name": "changed"}, format="json")
    assert response.status_code == 403
    lead.refresh_from_db()
    assert lead.name != "changed"
    assert key.post("/api/v1/crm/leads/", {"name": "new"}, format="json").status_code == 403


@pytest.mark.django_db
def test_a_key_for_one_resource_cannot_touch_another(api_as, people):
    _, key = make_key(api_as("owner"), scopes={"activities": "write"})
    assert key.get("/api/v1/crm/activities/").status_code == 200
    assert key.get("/api/v1/crm/leads/").status_code == 403
    assert key.get(f"/api/v1/crm/opportunities/{people.records['owner'].opportunity.pk}/").status_code == 403
    created = key.post(
        "/api/v1/crm/activities/",
        {"subject": "By key", "activity_type": "call", "lead_id": people.records["owner"].lead.pk},
        format="json",
    )
    assert created.status_code == 201


@pytest.mark.django_db
def test_a_key_acts_as_its_user_and_never_beyond(api_as, people):
    _, key = make_key(api_as("owner"), scopes={"*": "write"})
    outsider_lead = people.records["outsider"].lead
    assert key.get(f"/api/v1/crm/leads/{outsider_lead.pk}/").status_code == 404
    names = [row["name"] for row in key.get("/api/v1/crm/leads/").json()["results"]]
    assert "owner lead" in names and "outsider_rep lead" not in names
    # A rep may not delete leads: the key cannot either, whatever its scope.
    assert key.delete(f"/api/v1/crm/leads/{people.records['owner'].lead.pk}/").status_code == 403
    # A key never makes or revokes keys.
    assert key.get(KEYS).status_code == 403


@pytest.mark.django_db
def test_an_expired_or_revoked_or_wrong_key_is_401(api_as):
    api = api_as("owner")
    data, key = make_key(api, scopes={"leads": "read"})
    assert key.get("/api/v1/crm/leads/").status_code == 200

    ApiKey.objects.filter(pk=data["id"]).update(expires_at=timezone.now() - datetime.timedelta(seconds=1))
    assert key.get("/api/v1/crm/leads/").status_code == 401

    data2, key2 = make_key(api, scopes={"leads": "read"})
    assert api.delete(f"{KEYS}{data2['id']}/").status_code == 204
    assert key2.get("/api/v1/crm/leads/").status_code == 401
    assert ApiKey.objects.get(pk=data2["id"]).revoked_at is not None

    wrong = APIClient()
    wrong.credentials(HTTP_AUTHORIZATION=f"Api-Key {data2['prefix']}.not-the-secret")
    assert wrong.get("/api/v1/crm/leads/").status_code == 401


@pytest.mark.django_db
def test_a_key_is_stored_hashed_and_shown_once_and_records_its_last_use(api_as):
    api = api_as("owner")
    data, key = make_key(api, scopes={"leads": "read"}, expires_at="2099-01-01T00:00:00Z")
    stored = ApiKey.objects.get(pk=data["id"])
    assert data["key"].startswith(stored.prefix + ".")
    assert data["key"] not in (stored.key_hash, stored.prefix) and len(stored.key_hash) == 64
    assert "key" not in api.get(f"{KEYS}{data['id']}/").json()
    assert stored.last_used_at is None
    key.get("/api/v1/crm/leads/")
    stored.refresh_from_db()
    assert stored.last_used_at is not None


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body, field",
    [
        ({"scopes": {"leads": "admin"}}, "scopes"),
        ({"scopes": {}}, "scopes"),
        ({"scopes": {"leads": "read"}, "expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
        ({"scopes": {"leads": "read"}, "rate": "lots"}, "rate"),
    ],
)
def test_bad_key_settings_are_a_400(api_as, body, field):
    response = api_as("owner").post(KEYS, {"name": "x", **body}, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert not ApiKey.objects.exists()


@pytest.mark.django_db
def test_keys_are_throttled_per_key(api_as):
    api = api_as("owner")
    _, first = make_key(api, scopes={"leads": "read"}, rate="3/minute")
    _, second = make_key(api, scopes={"leads": "read"}, rate="3/minute")
    codes = [first.get("/api/v1/crm/leads/").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    assert second.get("/api/v1/crm/leads/").status_code == 200  # its own budget


@pytest.mark.django_db
def test_one_sees_and_revokes_only_ones_own_keys(api_as):
    data, _ = make_key(api_as("owner"), scopes={"leads": "read"})
    outsider = api_as("outsider")
    assert outsider.get(KEYS).json()["count"] == 0
    assert outsider.delete(f"{KEYS}{data['id']}/").status_code == 404
    assert api_as("crm_admin").post(f"{KEYS}{data['id']}/revoke/").status_code == 200


@pytest.mark.django_db
def test_the_admin_makes_a_key_shows_it_once_and_revokes_it(admin_as):
    admin = admin_as("owner")
    response = admin.post(
        reverse("admin:crm_apikey_add"),
        {
            "name": "Zapier",
            "scopes": '{"contacts": "read"}',
            "expires_at_0": "",
            "expires_at_1": "",
            "rate": "",
        },
        follow=True,
    )
    assert b"not shown again" in response.content, response.content[:3000]
    key = ApiKey.objects.get()
    assert key.user.username == "owner"
    response = admin.post(
        reverse("admin:crm_apikey_changelist"), {"action": "revoke_selected", "_selected_action": [key.pk]}
    )
    key.refresh_from_db()
    assert key.revoked_at is not None


def test_the_schema_documents_the_api_key_scheme(client, db):
    schema = client.get("/api/schema/", {"format": "json"}).json()
    scheme = schema["components"]["securitySchemes"]["ApiKeyAuth"]
    assert scheme == {**scheme, "type": "apiKey", "in": "header", "name": "Authorization"}
    assert {"ApiKeyAuth": []} in schema["paths"]["/api/v1/crm/leads/"]["get"]["security"]
