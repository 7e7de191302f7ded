"""One rule, three doors (issue 14 item 5, third bullet): each state rule that crm.rules holds is
exercised through the API, the admin and the import, and every door gives the same outcome, the same
final state of the lead or a refusal that changes nothing.

The rules: a won stage converts, a lost stage loses (with the reason the pipeline requires, an active
one), a closed record is not moved, status and converted_at are not writable.
"""

import pytest
from django.urls import reverse

from crm import rules, services
from crm.importing import import_file
from crm.models import Lead
from sales.models import Opportunity
from tests.crm.importing_helpers import csv_bytes
from tests.factories import LostReasonFactory

pytestmark = pytest.mark.django_db

DOORS = ("api", "admin", "import")
LEADS = "/api/v1/crm/leads/"


def snapshot(lead):
    lead = Lead.objects.get(pk=lead.pk)
    return (
        lead.status,
        lead.stage.name,
        lead.probability,
        lead.lost_reason.name if lead.lost_reason_id else None,
        lead.converted_at is not None,
        Opportunity.objects.filter(lead=lead).count(),
    )


def import_row(people, lead, columns: dict):
    """Import one row that updates ``lead`` (found by its email), as its owner."""
    owner = people.users["owner"]
    header = ["name", "email", *columns]
    content = csv_bytes([header, [lead.name, lead.email, *columns.values()]])
    return import_file(kind="leads", data=content, filename="leads.csv", user=owner, default_owner=owner)


def move(door, people, api_as, admin_as, lead, stage_name):
    """Put ``lead`` in the stage named ``stage_name`` through ``door``; True when the door accepted it."""
    stage = people.stages[stage_name]
    if door == "api":
        response = api_as("owner").patch(f"{LEADS}{lead.pk}/", {"stage_id": stage.pk}, format="json")
        return response.status_code == 200
    if door == "admin":
        response = admin_as("owner").post(
            reverse("admin:crm_lead_board_move"), {"record": lead.pk, "stage": stage.pk}
        )
        return response.status_code == 200
    return import_row(people, lead, {"stage": stage_name}).ok


def lose(door, people, api_as, admin_as, lead, reason):
    """Lose ``lead`` with ``reason`` through ``door``: the API's and admin's mark-lost, the import's lost
    stage with a lost_reason cell."""
    if door == "api":
        response = api_as("owner").post(
            f"{LEADS}{lead.pk}/mark-lost/", {"lost_reason_id": reason.pk}, format="json"
        )
        return response.status_code == 200
    if door == "admin":
        response = admin_as("owner").post(
            reverse("admin:crm_lead_mark_lost", args=[lead.pk]), {"lost_reason": reason.pk, "lost_note": ""}
        )
        return response.status_code == 302
    return import_row(people, lead, {"stage": "Lost", "lost_reason": reason.name}).ok


@pytest.mark.parametrize("door", DOORS)
def test_a_won_stage_converts_the_lead(people, api_as, admin_as, door):
    lead = people.records["owner"].lead
    assert move(door, people, api_as, admin_as, lead, "Won")
    assert snapshot(lead) == ("converted", "Won", 100, None, True, 1)


@pytest.mark.parametrize("door", DOORS)
def test_a_lost_stage_needs_the_reason_the_pipeline_requires(people, api_as, admin_as, door):
    pipeline = people.stages["Lost"].pipeline
    pipeline.lost_reason_required = True
    pipeline.save()
    lead = people.records["owner"].lead
    before = snapshot(lead)
    assert not move(door, people, api_as, admin_as, lead, "Lost")
    assert snapshot(lead) == before == ("open", "New", 10, None, False, 0)


@pytest.mark.parametrize("door", DOORS)
def test_losing_with_an_active_reason_gives_the_same_lost_lead(people, api_as, admin_as, door):
    reason = LostReasonFactory(name="Budget")
    lead = people.records["owner"].lead
    assert lose(door, people, api_as, admin_as, lead, reason)
    assert snapshot(lead) == ("lost", "Lost", 0, "Budget", False, 0)


@pytest.mark.parametrize("door", DOORS)
def test_an_inactive_lost_reason_is_refused(people, api_as, admin_as, door):
    reason = LostReasonFactory(name="Retired", is_active=False)
    lead = people.records["owner"].lead
    before = snapshot(lead)
    assert not lose(door, people, api_as, admin_as, lead, reason)
    assert snapshot(lead) == before


@pytest.mark.parametrize("door", DOORS)
@pytest.mark.parametrize("closed", ["converted", "lost"])
def test_a_closed_lead_is_not_moved(people, api_as, admin_as, door, closed):
    lead = people.records["owner"].lead
    owner = people.users["owner"]
    if closed == "converted":
        from sales.services import lead_convert

        lead_convert(lead=lead, user=owner)
    else:
        services.lead_mark_lost(lead=lead, user=owner)
    before = snapshot(lead)
    assert not move(door, people, api_as, admin_as, lead, "Qualified")
    assert snapshot(lead) == before


@pytest.mark.parametrize("door", DOORS)
def test_status_and_converted_at_are_not_writable(people, api_as, admin_as, door):
    lead = people.records["owner"].lead
    before = snapshot(lead)
    if door == "api":
        response = api_as("owner").patch(
            f"{LEADS}{lead.pk}/", {"status": "lost", "converted_at": "2026-01-01T10:00:00Z"}, format="json"
        )
        assert response.status_code == 200
    elif door == "admin":
        client = admin_as("owner")
        url = reverse("admin:crm_lead_change", args=[lead.pk])
        page = client.get(url)
        form = page.context["adminform"].form
        assert "status" not in form.fields and "converted_at" not in form.fields
        data = {
            key: value
            for key, value in form.initial.items()
            if value is not None and key in form.fields and key != "tags"
        }
        data |= {"status": "converted", "converted_at_0": "2026-01-01", "converted_at_1": "10:00"}
        for formset in page.context["inline_admin_formsets"]:
            management = formset.formset.management_form
            data[f"{management.prefix}-TOTAL_FORMS"] = data[f"{management.prefix}-INITIAL_FORMS"] = 0
        response = client.post(url, data)
        assert response.status_code == 302, response.context["adminform"].form.errors
    else:
        result = import_row(people, lead, {"status": "converted", "converted_at": "2026-01-01 10:00"})
        assert result.ok, result.errors
    assert snapshot(lead) == before == ("open", "New", 10, None, False, 0)


@pytest.mark.parametrize("label", sorted(rules.STATE_FIELDS))
def test_state_fields_are_read_only_at_every_door(label):
    """The state fields crm.rules names: read-only in the API serializer and the admin form, export-only
    in the import (where the model has an import)."""
    from django.apps import apps
    from django.contrib import admin

    from crm.api.serializers import LeadSerializer
    from crm.importing.schemas import IMPORT_SCHEMAS
    from sales.api.serializers import OpportunitySerializer

    model = apps.get_model(label)
    serializer = {"crm.Lead": LeadSerializer, "sales.Opportunity": OpportunitySerializer}[label]()
    model_admin = admin.site._registry[model]
    for name in rules.STATE_FIELDS[label]:
        assert serializer.fields[name].read_only, name
        assert name in model_admin.readonly_fields, name
    for schema in IMPORT_SCHEMAS.values():
        if schema.model is model:
            assert set(schema.export_only) == set(rules.STATE_FIELDS[label])
