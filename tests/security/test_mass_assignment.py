"""Mass assignment: fields a client cannot set (id, status, timestamps, closing and conversion data,
aggregates, another person as owner) are ignored or refused, and the database keeps its values."""

import datetime

import pytest
from django.utils import timezone

from crm import services
from tests.api.conftest import url

LONG_AGO = "2000-01-01T00:00:00Z"
FORGED = {
    "id": 999999,
    "created_at": LONG_AGO,
    "updated_at": LONG_AGO,
    "converted_at": LONG_AGO,
    "closed_at": LONG_AGO,
    "lost_note": "forged",
    "converted_account_id": 1,
    "converted_opportunity_id": 1,
    "lead_id": 1,
    "lost_reason_id": 1,
    "weighted_amount": "99.00",
    "contact_count": 99,
    "open_value": "99.00",
}
STATUS = {"leads": "converted", "opportunities": "won"}
KIND = {"leads": "lead", "opportunities": "opportunity", "accounts": "account", "contacts": "contact"}
GUARDED = ("created_at", "status", "converted_at", "closed_at", "lost_note", "lead_id", "lost_reason_id")


def snapshot(record):
    record.refresh_from_db()
    return {name: getattr(record, name) for name in GUARDED if hasattr(record, name)}


@pytest.mark.django_db
@pytest.mark.parametrize("resource", ["leads", "opportunities"])
def test_create_ignores_read_only_fields(people, api_as, resource):
    body = {**FORGED, "name": "Fresh", "status": STATUS[resource]}

    response = api_as("owner").post(url(f"{resource}/"), body, format="json")

    assert response.status_code == 201, response.content
    data = response.json()
    assert data["id"] != 999999 and data["status"] == "open"
    model = type(getattr(people.records["owner"], KIND[resource]))
    record = model.objects.get(pk=data["id"])
    assert not model.objects.filter(pk=999999).exists()
    assert record.status == "open" and record.owner == people.users["owner"]
    assert timezone.now() - record.created_at < datetime.timedelta(minutes=5)
    assert getattr(record, "converted_at", None) is None and getattr(record, "closed_at", None) is None
    assert record.lost_note == ""


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["put", "patch"])
@pytest.mark.parametrize("resource", ["leads", "opportunities", "accounts", "contacts"])
def test_updates_leave_read_only_fields_unchanged(people, api_as, method, resource):
    record = getattr(people.records["owner"], KIND[resource])
    before = snapshot(record)
    body = {**FORGED, "status": STATUS.get(resource, "open")}
    if method == "put":
        body |= {"name": record.name} if resource != "contacts" else {"first_name": record.first_name}

    response = getattr(api_as("owner"), method)(url(f"{resource}/{record.pk}/"), body, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["id"] == record.pk
    assert snapshot(record) == before
    assert not type(record).objects.filter(pk=999999).exists()


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["post", "put", "patch"])
@pytest.mark.parametrize("resource", ["leads", "opportunities", "accounts", "contacts", "activities"])
def test_a_rep_cannot_give_a_record_to_someone_else(people, api_as, method, resource):
    kind = KIND.get(resource, "activity")
    record = getattr(people.records["owner"], kind)
    required = {"name": "x", "first_name": "x", "subject": "x", "activity_type": "call"}
    body = {**required, "owner_id": people.users["outsider"].pk}
    target = url(f"{resource}/") if method == "post" else url(f"{resource}/{record.pk}/")
    count = type(record).objects.count()

    response = getattr(api_as("owner"), method)(target, body, format="json")

    assert response.status_code == 400, response.content
    expected = services.OWNER_OUTSIDE_TEAM if method == "post" else services.OWNER_CHANGE_REFUSED
    assert response.json()["owner_id"] == [expected]
    record.refresh_from_db()
    assert record.owner == people.users["owner"]
    assert type(record).objects.count() == count
