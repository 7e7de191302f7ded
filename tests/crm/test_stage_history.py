"""Stage history: every stage change is recorded, from every entry point, and times derive from it."""

import datetime

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from crm import selectors, services
from crm.actors import SYSTEM
from crm.importing import import_file
from crm.models import Lead, LeadStageChange
from sales import services as sales_services
from sales.models import Opportunity, OpportunityStageChange
from tests.crm.importing_helpers import csv_bytes
from tests.factories import LeadFactory, OpportunityFactory, UserFactory

pytestmark = pytest.mark.django_db


def moves(record) -> list[tuple[str, str, str | None]]:
    """(from, to, by) of the record's history, oldest first."""
    return [
        (c.from_stage_name, c.to_stage_name, c.changed_by.username if c.changed_by else None)
        for c in record.stage_changes.select_related("changed_by").order_by("changed_at", "id")
    ]


def lead_change_form(lead, **overrides):
    data = {
        "name": lead.name,
        "priority": lead.priority,
        "pipeline": lead.pipeline_id,
        "stage": lead.stage_id,
        "probability": lead.probability,
        "activities-TOTAL_FORMS": "0",
        "activities-INITIAL_FORMS": "0",
        "consents-TOTAL_FORMS": "0",
        "consents-INITIAL_FORMS": "0",
        "channel_preferences-TOTAL_FORMS": "0",
        "channel_preferences-INITIAL_FORMS": "0",
    }
    return data | overrides


# --- services -------------------------------------------------------------------------------------


def test_creating_a_lead_records_the_stage_it_starts_in(stages):
    rep = UserFactory(username="rep")
    lead = services.lead_create(user=rep, data={"name": "Inbound"})
    assert moves(lead) == [("", "New", "rep")]
    change = lead.stage_changes.get()
    assert (change.from_stage, change.to_stage) == (None, stages["New"])


def test_moves_updates_and_losing_are_recorded_in_order(stages):
    rep = UserFactory(username="rep")
    lead = services.lead_create(user=rep, data={"name": "Inbound"})
    lead = services.lead_move_stage(lead=lead, stage=stages["Qualified"], user=rep)
    lead = services.lead_update(lead=lead, user=SYSTEM, data={"stage": stages["Proposal"]})
    lead = services.lead_update(lead=lead, user=rep, data={"description": "no stage change"})
    services.lead_mark_lost(lead=lead, user=rep)
    assert moves(lead) == [
        ("", "New", "rep"),
        ("New", "Qualified", "rep"),
        ("Qualified", "Proposal", None),
        ("Proposal", "Lost", "rep"),
    ]


def test_converting_records_the_lead_won_and_the_new_opportunity_entering_its_stage(stages):
    rep = UserFactory(username="rep")
    lead = services.lead_create(user=rep, data={"name": "Inbound", "company_name": "Acme"})
    conversion = sales_services.lead_convert(lead=lead, user=rep)
    assert moves(conversion.lead) == [("", "New", "rep"), ("New", "Won", "rep")]
    assert moves(conversion.opportunity) == [("", "New", "rep")]


def test_a_lead_moved_into_the_won_stage_is_recorded_once(stages):
    lead = services.lead_create(user=SYSTEM, data={"name": "Inbound", "company_name": "Acme"})
    lead = services.lead_move_stage(lead=lead, stage=stages["Won"], user=SYSTEM)
    assert moves(lead) == [("", "New", None), ("New", "Won", None)]


def test_opportunity_moves_win_and_loss_are_recorded(stages):
    rep = UserFactory(username="rep")
    won = sales_services.opportunity_create(user=rep, data={"name": "Deal", "amount": 10})
    won = sales_services.opportunity_move_stage(opportunity=won, stage=stages["Proposal"], user=rep)
    sales_services.opportunity_mark_won(opportunity=won, user=rep)
    lost = sales_services.opportunity_create(user=rep, data={"name": "Other", "amount": 10})
    lost = sales_services.opportunity_update(opportunity=lost, user=rep, data={"stage": stages["Lost"]})
    assert moves(won) == [("", "New", "rep"), ("New", "Proposal", "rep"), ("Proposal", "Won", "rep")]
    assert moves(lost) == [("", "New", "rep"), ("New", "Lost", "rep")]
    assert Opportunity.objects.get(pk=lost.pk).status == "lost"


def test_an_opportunity_created_closed_records_its_closed_stage_once(stages):
    opportunity = sales_services.opportunity_create(
        user=SYSTEM, data={"name": "Closed elsewhere", "amount": 10, "stage": stages["Won"]}
    )
    assert moves(opportunity) == [("", "Won", None)]


def test_a_refused_move_records_nothing(stages):
    lead = services.lead_create(user=SYSTEM, data={"name": "Inbound"})
    services.lead_mark_lost(lead=lead, user=SYSTEM)
    with pytest.raises(ValidationError):
        services.lead_move_stage(lead=lead, stage=stages["Qualified"], user=SYSTEM)
    assert moves(lead) == [("", "New", None), ("New", "Lost", None)]


def test_history_keeps_the_names_of_a_deleted_stage(pipeline, stages):
    extra = services.stage_create(
        data={"pipeline": pipeline, "name": "Demo", "sequence": 9, "probability": 50}, user=SYSTEM
    )
    lead = services.lead_create(user=SYSTEM, data={"name": "Inbound"})
    lead = services.lead_move_stage(lead=lead, stage=extra, user=SYSTEM)
    lead = services.lead_move_stage(lead=lead, stage=stages["Qualified"], user=SYSTEM)
    services.record_delete(instance=extra, user=SYSTEM)
    change = lead.stage_changes.get(from_stage_name="Demo")
    assert (change.from_stage, change.to_stage_name) == (None, "Qualified")


# --- derived times --------------------------------------------------------------------------------


def test_time_in_stage_and_days_open_derive_from_the_history(stages):
    start = timezone.now() - datetime.timedelta(days=10)
    lead = services.lead_create(user=SYSTEM, data={"name": "Inbound"})
    lead = services.lead_move_stage(lead=lead, stage=stages["Qualified"], user=SYSTEM)
    entered, moved = lead.stage_changes.order_by("id")
    LeadStageChange.objects.filter(pk=entered.pk).update(changed_at=start)
    LeadStageChange.objects.filter(pk=moved.pk).update(changed_at=start + datetime.timedelta(days=4))
    now = start + datetime.timedelta(days=10, hours=1)

    history = selectors.stage_history(user=None, record=lead, now=now)

    assert [e.duration for e in history.entries] == [
        datetime.timedelta(days=4),
        datetime.timedelta(days=6, hours=1),
    ]
    assert history.entered_stage_at == start + datetime.timedelta(days=4)
    assert history.time_in_stage == datetime.timedelta(days=6, hours=1)
    assert history.days_open == 10


def test_a_closed_record_stops_counting_days_open_when_it_closed(stages):
    start = timezone.now() - datetime.timedelta(days=30)
    opportunity = sales_services.opportunity_create(user=SYSTEM, data={"name": "Deal", "amount": 1})
    opportunity = sales_services.opportunity_mark_won(opportunity=opportunity, user=SYSTEM)
    opportunity.stage_changes.filter(from_stage__isnull=True).update(changed_at=start)
    opportunity.stage_changes.filter(from_stage__isnull=False).update(
        changed_at=start + datetime.timedelta(days=7)
    )
    Opportunity.objects.filter(pk=opportunity.pk).update(closed_at=start + datetime.timedelta(days=7))
    opportunity.refresh_from_db()

    history = selectors.stage_history(user=None, record=opportunity)

    assert history.days_open == 7
    assert [e.duration for e in history.entries] == [datetime.timedelta(days=7), None]


def test_a_record_without_history_counts_from_its_creation(stages):
    lead = LeadFactory()  # written without the services, e.g. by an older version or a fixture
    history = selectors.stage_history(user=None, record=lead)
    assert (history.entries, history.entered_stage_at, history.days_open) == ([], lead.created_at, 0)


# --- API ------------------------------------------------------------------------------------------


def test_api_moves_and_updates_are_recorded_with_the_requesting_user(admin_client, admin_user, stages):
    lead = services.lead_create(user=SYSTEM, data={"name": "Inbound"})
    response = admin_client.post(
        f"/api/v1/crm/leads/{lead.pk}/move-stage/",
        {"stage_id": stages["Qualified"].pk},
        content_type="application/json",
    )
    assert response.status_code == 200
    response = admin_client.patch(
        f"/api/v1/crm/leads/{lead.pk}/", {"stage_id": stages["Proposal"].pk}, content_type="application/json"
    )
    assert response.status_code == 200
    response = admin_client.post(
        f"/api/v1/crm/leads/{lead.pk}/mark-lost/", {}, content_type="application/json"
    )
    assert response.status_code == 200
    assert moves(lead) == [
        ("", "New", None),
        ("New", "Qualified", "boss"),
        ("Qualified", "Proposal", "boss"),
        ("Proposal", "Lost", "boss"),
    ]


def test_api_stage_history_of_a_lead(admin_client, admin_user, stages):
    lead = services.lead_create(user=admin_user, data={"name": "Inbound"})
    lead = services.lead_move_stage(lead=lead, stage=stages["Qualified"], user=admin_user)

    response = admin_client.get(f"/api/v1/crm/leads/{lead.pk}/stage-history/")

    assert response.status_code == 200
    body = response.json()
    assert body["stage_id"] == stages["Qualified"].pk
    assert body["days_open"] == 0
    assert body["time_in_stage_seconds"] >= 0
    first, second = body["results"]
    assert first | {"id": 0, "changed_at": "", "duration_seconds": 0} == {
        "id": 0,
        "from_stage_id": None,
        "from_stage_name": "",
        "to_stage_id": stages["New"].pk,
        "to_stage_name": "New",
        "changed_by_id": admin_user.pk,
        "changed_by_username": "boss",
        "changed_at": "",
        "duration_seconds": 0,
    }
    assert (second["from_stage_id"], second["to_stage_id"]) == (stages["New"].pk, stages["Qualified"].pk)
    assert second["duration_seconds"] >= 0


def test_api_stage_history_of_an_opportunity_won_through_the_api(admin_client, stages):
    opportunity = OpportunityFactory()  # no history of its own yet
    response = admin_client.post(f"/api/v1/crm/opportunities/{opportunity.pk}/mark-won/")
    assert response.status_code == 200

    body = admin_client.get(f"/api/v1/crm/opportunities/{opportunity.pk}/stage-history/").json()

    assert [
        (r["from_stage_name"], r["to_stage_name"], r["changed_by_username"]) for r in body["results"]
    ] == [("New", "Won", "boss")]
    assert body["results"][0]["duration_seconds"] is None


def test_api_stage_history_answers_404_and_needs_view_permission(client, admin_client, stages):
    assert admin_client.get("/api/v1/crm/leads/999999/stage-history/").status_code == 404
    lead = LeadFactory()
    client.force_login(UserFactory())
    assert client.get(f"/api/v1/crm/leads/{lead.pk}/stage-history/").status_code == 403


# --- admin ----------------------------------------------------------------------------------------


def test_admin_add_and_change_forms_record_the_stage(admin_client, stages):
    response = admin_client.post(
        reverse("admin:crm_lead_add"),
        {
            "name": "Walk-in",
            "priority": "medium",
            "activities-TOTAL_FORMS": "0",
            "activities-INITIAL_FORMS": "0",
            "consents-TOTAL_FORMS": "0",
            "consents-INITIAL_FORMS": "0",
            "channel_preferences-TOTAL_FORMS": "0",
            "channel_preferences-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302
    lead = Lead.objects.get()
    response = admin_client.post(
        reverse("admin:crm_lead_change", args=[lead.pk]), lead_change_form(lead, stage=stages["Qualified"].pk)
    )
    assert response.status_code == 302
    assert moves(lead) == [("", "New", "boss"), ("New", "Qualified", "boss")]


def test_admin_kanban_move_is_recorded(admin_client, stages):
    opportunity = OpportunityFactory()
    response = admin_client.post(
        reverse("admin:sales_opportunity_board_move"),
        {"record": opportunity.pk, "stage": stages["Proposal"].pk},
    )
    assert response.status_code == 200
    assert moves(opportunity) == [("New", "Proposal", "boss")]


def test_admin_mark_won_mark_lost_and_convert_pages_are_recorded(admin_client, stages):
    won, lead = OpportunityFactory(), LeadFactory(company_name="Acme", contact_name="Ann Lee")
    lost_lead = LeadFactory()
    admin_client.post(reverse("admin:sales_opportunity_mark_won", args=[won.pk]))
    admin_client.post(reverse("admin:crm_lead_mark_lost", args=[lost_lead.pk]), {"lost_note": "gone"})
    response = admin_client.post(
        reverse("admin:crm_lead_convert", args=[lead.pk]),
        {"account_action": "create", "contact_action": "create", "create_opportunity": "on"},
    )
    assert response.status_code == 302
    assert moves(won) == [("New", "Won", "boss")]
    assert moves(lost_lead) == [("New", "Lost", "boss")]
    assert moves(lead) == [("New", "Won", "boss")]
    assert moves(Opportunity.objects.get(lead=lead)) == [("", "New", "boss")]


def test_admin_bulk_actions_are_recorded(admin_client, stages):
    first, second = OpportunityFactory(), OpportunityFactory()
    admin_client.post(
        reverse("admin:sales_opportunity_changelist"),
        {"action": "mark_won", "_selected_action": [first.pk]},
    )
    admin_client.post(
        reverse("admin:sales_opportunity_changelist"),
        {"action": "mark_lost", "_selected_action": [second.pk], "apply": "1"},
    )
    assert moves(first) == [("New", "Won", "boss")]
    assert moves(second) == [("New", "Lost", "boss")]


def test_record_page_timeline_shows_the_stage_changes(admin_client, admin_user, stages):
    lead = services.lead_create(user=admin_user, data={"name": "Inbound"})
    services.lead_move_stage(lead=lead, stage=stages["Qualified"], user=admin_user)

    response = admin_client.get(reverse("admin:crm_lead_change", args=[lead.pk]))

    html = response.content.decode()
    assert "Stage: entered New" in html
    assert "Stage: New → Qualified" in html
    assert "in its current stage" in html
    stage_entries = [e for e in response.context["timeline"] if e.kind == "stage"]
    assert [e.title for e in stage_entries] == ["Stage: New → Qualified", "Stage: entered New"]


# --- import ---------------------------------------------------------------------------------------


def test_import_records_new_leads_and_stage_changes_in_bulk(stages):
    importer = UserFactory(username="importer")
    moved = services.lead_create(user=SYSTEM, data={"name": "Moved", "email": "moved@example.com"})
    kept = services.lead_create(user=SYSTEM, data={"name": "Kept", "email": "kept@example.com"})
    rows = [
        ["name", "email", "stage"],
        ["Moved", "moved@example.com", "Proposal"],
        ["Kept", "kept@example.com", "New"],
        ["Fresh", "fresh@example.com", "Qualified"],
        ["Default", "default@example.com", ""],
    ]

    result = import_file(
        kind="leads", data=csv_bytes(rows), filename="leads.csv", default_owner=importer, user=SYSTEM
    )

    assert result.committed, result.errors
    assert moves(moved) == [("", "New", None), ("New", "Proposal", "importer")]
    assert moves(kept) == [("", "New", None)]
    assert moves(Lead.objects.get(email="fresh@example.com")) == [("", "Qualified", "importer")]
    assert moves(Lead.objects.get(email="default@example.com")) == [("", "New", "importer")]


def test_a_dry_run_or_failed_import_records_nothing(stages):
    rows = [["name", "email", "stage"], ["Fresh", "fresh@example.com", "Qualified"]]
    import_file(kind="leads", data=csv_bytes(rows), filename="leads.csv", dry_run=True, user=SYSTEM)
    bad = [*rows, ["Bad", "bad@example.com", "No such stage"]]
    result = import_file(kind="leads", data=csv_bytes(bad), filename="leads.csv", user=SYSTEM)
    assert not result.committed
    assert not LeadStageChange.objects.exists()


def test_deleting_a_record_deletes_its_history(stages):
    lead = services.lead_create(user=SYSTEM, data={"name": "Inbound"})
    opportunity = sales_services.opportunity_create(user=SYSTEM, data={"name": "Deal", "amount": 1})
    services.record_delete(instance=lead, user=SYSTEM)
    services.record_delete(instance=opportunity, user=SYSTEM)
    assert not LeadStageChange.objects.exists()
    assert not OpportunityStageChange.objects.exists()


def test_days_open_count_from_creation_when_the_history_starts_later(stages):
    """Issue 14 finding 22: a lead created weeks ago (by loaddata, without a first stage line) and moved
    today was "Open 0 days": time open counts from its creation."""
    lead = LeadFactory(stage=stages["New"])
    Lead.objects.filter(pk=lead.pk).update(created_at=timezone.now() - datetime.timedelta(weeks=3))
    lead.refresh_from_db()
    lead = services.lead_move_stage(lead=lead, stage=stages["Qualified"], user=SYSTEM)

    history = selectors.stage_history(user=None, record=lead)

    assert history.days_open == 21
