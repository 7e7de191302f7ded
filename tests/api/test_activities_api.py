"""/activities/: CRUD, the related-record rule, completion times, filters, search, ordering."""

import datetime

import pytest
from django.utils import timezone

from activities.models import Activity
from tests.api.conftest import url
from tests.factories import AccountFactory, ActivityFactory, ContactFactory, LeadFactory, OpportunityFactory


def subjects(response) -> list[str]:
    assert response.status_code == 200, response.json()
    return [row["subject"] for row in response.json()["results"]]


@pytest.mark.django_db
def test_create_activity_on_a_lead(api, crm_admin, stages):
    lead = LeadFactory()

    response = api.post(
        url("activities/"),
        {
            "subject": "Intro call",
            "activity_type": "call",
            "lead_id": lead.pk,
            "due_date": "2026-12-01T10:00:00Z",
        },
    )

    assert response.status_code == 201, response.json()
    body = response.json()
    assert set(body) == {
        "id",
        "subject",
        "activity_type",
        "description",
        "due_date",
        "completed_at",
        "status",
        "priority",
        "lead_id",
        "opportunity_id",
        "contact_id",
        "account_id",
        "owner_id",
        "owner_username",
        "is_overdue",
        "remind_at",
        "reminded_at",
        "duration_minutes",
        "recurrence",
        "template_id",
        "created_at",
        "updated_at",
    }
    assert (body["lead_id"], body["status"], body["owner_username"], body["completed_at"]) == (
        lead.pk,
        "scheduled",
        "crm_admin",
        None,
    )
    assert Activity.objects.get().lead == lead


@pytest.mark.django_db
def test_an_activity_must_be_linked_to_a_record(api, db):
    response = api.post(url("activities/"), {"subject": "Orphan", "activity_type": "task"})
    assert response.status_code == 400
    assert response.json() == {
        "non_field_errors": ["Link the activity to at least one lead, opportunity, contact or account."]
    }


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"subject": "x", "account_id": None}, "activity_type"),
        ({"subject": "x", "activity_type": "fax"}, "activity_type"),
        ({"subject": "x", "activity_type": "call", "status": "done"}, "status"),
        ({"subject": "x", "activity_type": "call", "due_date": "next week"}, "due_date"),
        ({"subject": "x", "activity_type": "call", "opportunity_id": 999999}, "opportunity_id"),
    ],
)
def test_create_activity_bad_input(api, db, payload, field):
    response = api.post(url("activities/"), payload)
    assert response.status_code == 400
    assert field in response.json()


@pytest.mark.django_db
def test_completing_an_activity_records_when_and_reopening_clears_it(api, db):
    activity = ActivityFactory(account=AccountFactory())

    response = api.patch(url(f"activities/{activity.pk}/"), {"status": "completed"})
    assert response.status_code == 200
    assert response.json()["completed_at"] is not None

    response = api.patch(url(f"activities/{activity.pk}/"), {"status": "scheduled"})
    assert response.json()["completed_at"] is None
    assert Activity.objects.get().completed_at is None


@pytest.mark.django_db
def test_retrieve_put_delete_activity(api, db):
    activity = ActivityFactory(contact=ContactFactory(), subject="Old")
    assert api.get(url(f"activities/{activity.pk}/")).json()["subject"] == "Old"
    response = api.put(
        url(f"activities/{activity.pk}/"),
        {"subject": "New", "activity_type": "meeting", "contact_id": activity.contact_id},
    )
    assert response.status_code == 200
    assert Activity.objects.get().activity_type == "meeting"
    assert api.delete(url(f"activities/{activity.pk}/")).status_code == 204
    assert api.get(url(f"activities/{activity.pk}/")).status_code == 404


@pytest.mark.django_db
def test_activity_filters_search_ordering(api, stages):
    now = timezone.now()
    lead, opportunity = LeadFactory(), OpportunityFactory()
    contact, account = ContactFactory(), AccountFactory()
    ActivityFactory(
        subject="call lead", activity_type="call", lead=lead, due_date=now - datetime.timedelta(days=2)
    )
    ActivityFactory(
        subject="meet deal",
        activity_type="meeting",
        opportunity=opportunity,
        due_date=now + datetime.timedelta(days=10),
        description="quarterly review",
    )
    ActivityFactory(
        subject="email contact",
        activity_type="email",
        contact=contact,
        status="completed",
        completed_at=now,
        due_date=now - datetime.timedelta(days=5),
    )
    ActivityFactory(subject="note account", activity_type="note", account=account, status="cancelled")

    assert subjects(api.get(url("activities/"), {"type": "meeting"})) == ["meet deal"]
    assert subjects(api.get(url("activities/"), {"activity_type": "email"})) == ["email contact"]
    assert subjects(api.get(url("activities/"), {"status": "cancelled"})) == ["note account"]
    assert subjects(api.get(url("activities/"), {"lead": lead.pk})) == ["call lead"]
    assert subjects(api.get(url("activities/"), {"opportunity": opportunity.pk})) == ["meet deal"]
    assert subjects(api.get(url("activities/"), {"contact": contact.pk})) == ["email contact"]
    assert subjects(api.get(url("activities/"), {"account": account.pk})) == ["note account"]
    today = timezone.localdate()
    after = (today - datetime.timedelta(days=3)).isoformat()
    assert subjects(api.get(url("activities/"), {"due_date_after": after, "ordering": "due_date"})) == [
        "call lead",
        "meet deal",
    ]
    before = (today - datetime.timedelta(days=3)).isoformat()
    assert subjects(api.get(url("activities/"), {"due_date_before": before})) == ["email contact"]
    assert subjects(api.get(url("activities/"), {"overdue": "true"})) == ["call lead"]
    assert subjects(api.get(url("activities/"), {"search": "quarterly"})) == ["meet deal"]
    assert subjects(api.get(url("activities/"), {"ordering": "subject"})) == [
        "call lead",
        "email contact",
        "meet deal",
        "note account",
    ]
    overdue = api.get(url("activities/"), {"lead": lead.pk}).json()["results"][0]["is_overdue"]
    assert overdue is True
    assert api.get(url("activities/"), {"type": "fax"}).status_code == 400
    assert api.get(url("activities/"), {"due_date_after": "soon"}).status_code == 400
