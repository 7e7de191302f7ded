"""The audit trail: every create, change and delete of leads, deals, accounts, contacts and activities
is recorded with who, when and the old and new values, whichever entry point made it."""

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from crm.importing import import_file
from crm.importing.writing import IMPORT_CHANGE_REASON
from crm.models import Lead
from tests.api.conftest import url
from tests.crm.importing_helpers import csv_bytes
from tests.factories import LeadFactory, OpportunityFactory


def history(client, resource, pk):
    response = client.get(url(f"{resource}/{pk}/history/"))
    assert response.status_code == 200, response.content
    return response.json()["results"]


def changes(entry):
    return {change["field"]: (change["old"], change["new"]) for change in entry["changes"]}


MODEL_OF = {
    "leads": "lead",
    "opportunities": "opportunity",
    "accounts": "account",
    "contacts": "contact",
    "activities": "activity",
}


@pytest.mark.django_db
@pytest.mark.parametrize(
    "resource,create,change",
    [
        ("leads", {"name": "Lead A"}, {"phone": "555-0100"}),
        ("opportunities", {"name": "Deal A", "amount": "10.00"}, {"amount": "25.00"}),
        ("accounts", {"name": "Acme"}, {"phone": "555-0100"}),
        ("contacts", {"first_name": "Ann"}, {"job_title": "Buyer"}),
        ("activities", {"subject": "Call", "activity_type": "call"}, {"description": "Went well"}),
    ],
)
def test_api_creates_changes_and_deletes_are_recorded_with_who_and_what(
    people, api_as, resource, create, change
):
    client = api_as("crm_admin")
    if resource == "activities":
        create = {**create, "lead_id": people.records["crm_admin"].lead.pk}
    pk = client.post(url(f"{resource}/"), create, format="json").json()["id"]
    assert client.patch(url(f"{resource}/{pk}/"), change, format="json").status_code == 200

    changed, created = history(client, resource, pk)

    admin = people.users["crm_admin"]
    assert (created["type"], created["user_id"], created["username"]) == ("created", admin.pk, "crm_admin")
    assert changed["type"] == "changed" and changed["user_id"] == admin.pk
    field, value = next(iter(change.items()))
    old, new = changes(changed)[field]
    assert new == value and old != value
    assert set(changes(changed)) == {field}
    assert changes(created)["id"] == (None, str(pk))

    # Nothing refers to the record just made, so the delete succeeds, and is itself recorded.
    assert client.delete(url(f"{resource}/{pk}/")).status_code == 204
    assert client.get(url(f"{resource}/{pk}/")).status_code == 404
    record = getattr(people.records["crm_admin"], MODEL_OF[resource])
    model = type(record)
    assert not model.objects.filter(pk=pk).exists()
    deleted = model.history.filter(id=pk).latest("history_date")
    assert (deleted.history_type, deleted.history_user) == ("-", admin)


@pytest.mark.django_db
def test_a_delete_is_recorded(people, api_as):
    activity = people.records["owner"].activity
    api_as("owner").delete(url(f"activities/{activity.pk}/"))
    deleted = type(activity).history.filter(id=activity.pk).latest("history_date")
    assert deleted.history_type == "-"
    assert deleted.history_user == people.users["owner"]


@pytest.mark.django_db
def test_transitions_are_recorded(people, api_as):
    lead = people.records["owner"].lead
    client = api_as("owner")
    client.post(
        url(f"leads/{lead.pk}/move-stage/"), {"stage_id": people.stages["Qualified"].pk}, format="json"
    )

    latest = history(client, "leads", lead.pk)[0]

    assert latest["username"] == "owner"
    assert changes(latest)["stage_id"] == (str(people.stages["New"].pk), str(people.stages["Qualified"].pk))
    assert changes(latest)["probability"] == ("10", "30")


@pytest.mark.django_db
def test_another_reps_history_is_not_found(people, api_as):
    lead = people.records["owner"].lead
    assert api_as("outsider").get(url(f"leads/{lead.pk}/history/")).status_code == 404
    assert APIClient().get(url(f"leads/{lead.pk}/history/")).status_code == 401


@pytest.mark.django_db
def test_admin_saves_and_bulk_actions_are_recorded_and_shown(admin_client, admin_user, stages):
    lead = LeadFactory(stage=stages["New"], name="Before")
    deals = [OpportunityFactory(stage=stages["New"]) for _ in range(2)]

    admin_client.post(
        reverse("admin:sales_opportunity_changelist"),
        {"action": "mark_won", "_selected_action": [deal.pk for deal in deals]},
    )
    # Marking leads lost in bulk asks for the reason first; "apply" submits that page.
    admin_client.post(
        reverse("admin:crm_lead_changelist"),
        {"action": "mark_lost", "_selected_action": [lead.pk], "apply": "1", "lost_note": ""},
    )

    for deal in deals:
        won = deal.history.latest("history_date")
        assert (won.history_type, won.status, won.history_user) == ("~", "won", admin_user)
    lost = lead.history.latest("history_date")
    assert (lost.status, lost.history_user) == ("lost", admin_user)
    page = admin_client.get(reverse("admin:crm_lead_history", args=[lead.pk]))
    assert page.status_code == 200
    assert "boss" in page.content.decode()


@pytest.mark.django_db
def test_the_admin_history_of_another_reps_record_is_absent(people, admin_as):
    lead = people.records["owner"].lead
    response = admin_as("outsider").get(reverse("admin:crm_lead_history", args=[lead.pk]))
    assert response.status_code == 302 and response.url == reverse("admin:index")
    assert admin_as("manager").get(reverse("admin:crm_lead_history", args=[lead.pk])).status_code == 200


@pytest.mark.django_db
def test_imports_record_every_row_they_write_in_bulk(people, api_as, stages):
    owner = people.users["crm_admin"]
    kept = LeadFactory(stage=stages["New"], name="Kept", email="kept@example.com")
    changed = LeadFactory(stage=stages["New"], name="Old name", email="changed@example.com")
    before = Lead.history.count()

    result = import_file(
        kind="leads",
        data=csv_bytes(
            [
                ["name", "email"],
                ["Kept", "kept@example.com"],
                ["New name", "changed@example.com"],
                ["Fresh", "fresh@example.com"],
            ]
        ),
        filename="leads.csv",
        default_owner=owner,
        user=owner,
    )

    assert result.committed, result.errors
    assert Lead.history.count() == before + 2  # the unchanged row has no new version
    fresh = Lead.objects.get(email="fresh@example.com")
    created = fresh.history.get()
    assert (created.history_type, created.history_user, created.history_change_reason) == (
        "+",
        owner,
        IMPORT_CHANGE_REASON,
    )
    latest = history(api_as("crm_admin"), "leads", changed.pk)[0]
    assert latest["reason"] == IMPORT_CHANGE_REASON and latest["username"] == "crm_admin"
    assert changes(latest)["name"] == ("Old name", "New name")
    assert kept.history.count() == 1


@pytest.mark.django_db
def test_tag_changes_are_recorded_from_the_api_the_admin_form_and_bulk_actions(
    admin_client, admin_user, stages
):
    """Tags are a many-to-many set the history does not keep as a field: each change of them makes a
    version whose reason says old → new, with who and when."""
    from crm.models import Tag

    hot, vip, partner = (Tag.objects.create(name=name) for name in ("Hot", "VIP", "Partner"))
    lead = LeadFactory(stage=stages["New"], name="Tagged")

    response = admin_client.patch(
        url(f"leads/{lead.pk}/"), {"tags": [hot.pk, vip.pk]}, content_type="application/json"
    )
    assert response.status_code == 200, response.content
    latest = history(admin_client, "leads", lead.pk)[0]
    assert latest["reason"] == "tags: (none) → Hot, VIP"
    assert (latest["type"], latest["username"]) == ("changed", "boss")

    # The same set again is no change of tags.
    admin_client.patch(url(f"leads/{lead.pk}/"), {"tags": [vip.pk, hot.pk]}, content_type="application/json")
    assert history(admin_client, "leads", lead.pk)[0]["reason"] in (None, "")

    data = {
        "name": "Tagged",
        "priority": lead.priority,
        "pipeline": lead.pipeline_id,
        "stage": lead.stage_id,
        "probability": lead.probability,
        "tags": [hot.pk, partner.pk],
        "activities-TOTAL_FORMS": "0",
        "activities-INITIAL_FORMS": "0",
        "consents-TOTAL_FORMS": "0",
        "consents-INITIAL_FORMS": "0",
        "channel_preferences-TOTAL_FORMS": "0",
        "channel_preferences-INITIAL_FORMS": "0",
    }
    response = admin_client.post(reverse("admin:crm_lead_change", args=[lead.pk]), data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    version = lead.history.latest("history_date")
    assert (version.history_change_reason, version.history_user) == (
        "tags: Hot, VIP → Hot, Partner",
        admin_user,
    )
    assert set(lead.tags.values_list("name", flat=True)) == {"Hot", "Partner"}

    admin_client.post(
        reverse("admin:crm_lead_changelist"),
        {"action": "remove_tags", "_selected_action": [lead.pk], "apply": "1", "tags": [hot.pk]},
    )
    assert set(lead.tags.values_list("name", flat=True)) == {"Partner"}
    assert lead.history.latest("history_date").history_change_reason == "tags: Hot, Partner → Partner"
    assert (
        "tags: Hot, Partner → Partner"
        in admin_client.get(reverse("admin:crm_lead_history", args=[lead.pk])).content.decode()
    )
