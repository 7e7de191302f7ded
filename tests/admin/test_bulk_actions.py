"""Bulk actions on the leads and opportunities lists: each through the services, each reporting."""

import csv
import io

import pytest
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.urls import reverse

from crm import services
from crm.actors import SYSTEM
from crm.models import Lead
from sales import services as sales_services
from sales.models import Opportunity
from tests.factories import (
    LeadFactory,
    LostReasonFactory,
    OpportunityFactory,
    PipelineFactory,
    StageFactory,
    TagFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

LEADS = "admin:crm_lead_changelist"
OPPORTUNITIES = "admin:sales_opportunity_changelist"


def act(client, action, records, changelist=LEADS, **form):
    """Choose ``action`` for ``records``; with ``form`` given, submit its intermediate page too."""
    data = {"action": action, "_selected_action": [r.pk for r in records]}
    if form:
        data |= {"apply": "1", **form}
    return client.post(reverse(changelist), data, follow=True)


def messages_of(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def test_actions_needing_input_show_an_intermediate_page_first(admin_client, stages):
    leads = [LeadFactory(name="Alpha"), LeadFactory(name="Beta")]
    for action in ("assign_owner", "move_to_stage", "add_tags", "remove_tags", "mark_lost"):
        response = act(admin_client, action, leads)
        assert response.status_code == 200
        assert response.templates[0].name == "admin/crm/bulk_action.html", action
        html = response.content.decode()
        assert "2 leads selected" in html and "Alpha" in html and "Beta" in html
        assert f'name="_selected_action" value="{leads[0].pk}"' in html
    assert not Lead.objects.exclude(stage=stages["New"]).exists()


def test_assign_owner_to_leads_and_unassign_opportunities(admin_client, stages):
    rep = UserFactory(username="rep")
    leads = [LeadFactory(), LeadFactory()]
    deal = OpportunityFactory(owner=rep)

    response = act(admin_client, "assign_owner", leads, owner=rep.pk)
    assert "2 leads assigned to rep." in messages_of(response)
    assert set(Lead.objects.values_list("owner__username", flat=True)) == {"rep"}

    response = act(admin_client, "assign_owner", [deal], OPPORTUNITIES, owner="")
    assert "1 opportunity unassigned." in messages_of(response)
    assert Opportunity.objects.get(pk=deal.pk).owner is None


def test_move_to_stage_moves_open_records_and_reports_the_refused(admin_client, stages):
    moving = services.lead_create(data={"name": "Moving"}, user=SYSTEM)
    lost = services.lead_mark_lost(lead=services.lead_create(data={"name": "Gone"}, user=SYSTEM), user=SYSTEM)
    other = PipelineFactory(name="Other")
    foreign = LeadFactory(name="Foreign", pipeline=other, stage=StageFactory(pipeline=other, name="Start"))

    response = act(admin_client, "move_to_stage", [moving, lost, foreign], stage=stages["Proposal"].pk)

    shown = messages_of(response)
    assert "1 lead moved to Proposal." in shown
    assert any(m.startswith("Skipped “Gone”: This lead is already lost") for m in shown)
    assert any(m.startswith("Skipped “Foreign”: ") and "belongs to the pipeline" in m for m in shown)
    moving.refresh_from_db()
    assert (moving.stage, moving.probability) == (stages["Proposal"], 60)
    assert [c.to_stage_name for c in moving.stage_changes.order_by("id")] == ["New", "Proposal"]
    assert Lead.objects.get(pk=foreign.pk).stage.name == "Start"


def test_move_to_stage_offers_the_stages_of_the_selected_pipelines_only(admin_client, stages):
    other = PipelineFactory(name="Other")
    StageFactory(pipeline=other, name="Elsewhere")
    response = act(admin_client, "move_to_stage", [LeadFactory()])
    offered = {stage.name for stage in response.context["form"].fields["stage"].queryset}
    assert offered == {"New", "Qualified", "Proposal", "Won", "Lost"}


def test_move_opportunities_to_the_won_stage_wins_them(admin_client, stages):
    deal = OpportunityFactory()
    response = act(admin_client, "move_to_stage", [deal], OPPORTUNITIES, stage=stages["Won"].pk)
    assert "1 opportunity moved to Won." in messages_of(response)
    deal.refresh_from_db()
    assert (deal.status, deal.probability) == ("won", 100)


def test_add_and_remove_tags(admin_client, stages):
    vip, hot, cold = TagFactory(name="VIP"), TagFactory(name="Hot"), TagFactory(name="Cold")
    tagged, plain = LeadFactory(name="Tagged"), LeadFactory(name="Plain")
    tagged.tags.set([vip, cold])

    response = act(admin_client, "add_tags", [tagged, plain], tags=[vip.pk, hot.pk])
    assert "2 leads tagged Hot, VIP." in messages_of(response)
    assert set(tagged.tags.all()) == {vip, hot, cold}
    assert set(plain.tags.all()) == {vip, hot}

    response = act(admin_client, "remove_tags", [tagged, plain], tags=[cold.pk])
    shown = messages_of(response)
    assert "1 lead untagged Cold." in shown
    assert "Skipped “Plain”: already has none of these tags." in shown
    assert set(tagged.tags.all()) == {vip, hot}


def test_tags_on_opportunities(admin_client, stages):
    vip = TagFactory(name="VIP")
    deal = OpportunityFactory()
    response = act(admin_client, "add_tags", [deal], OPPORTUNITIES, tags=[vip.pk])
    assert "1 opportunity tagged VIP." in messages_of(response)
    assert list(deal.tags.all()) == [vip]


def test_a_tags_page_without_tags_is_shown_again_with_the_error(admin_client, stages):
    lead = LeadFactory()
    response = act(admin_client, "add_tags", [lead], tags=[])
    assert response.templates[0].name == "admin/crm/bulk_action.html"
    assert response.context["form"].errors["tags"]


def test_mark_lost_with_a_reason(admin_client, stages):
    reason = LostReasonFactory(name="Price")
    open_lead = LeadFactory(name="Open")
    deal = OpportunityFactory(name="Deal")
    converted = LeadFactory(name="Converted", status="converted", converted_at="2026-01-01T00:00:00Z")

    response = act(
        admin_client, "mark_lost", [open_lead, converted], lost_reason=reason.pk, lost_note="too dear"
    )
    shown = messages_of(response)
    assert "1 lead marked lost (Price)." in shown
    assert any(m.startswith("Skipped “Converted”: This lead is already converted") for m in shown)
    open_lead.refresh_from_db()
    assert (open_lead.status, open_lead.lost_reason, open_lead.lost_note) == ("lost", reason, "too dear")

    response = act(admin_client, "mark_lost", [deal], OPPORTUNITIES, lost_reason=reason.pk)
    assert "1 opportunity marked lost (Price)." in messages_of(response)
    assert Opportunity.objects.get(pk=deal.pk).lost_reason == reason


def test_mark_lost_without_a_reason_is_refused_where_the_pipeline_requires_one(
    admin_client, pipeline, stages
):
    services.pipeline_update(pipeline=pipeline, data={"lost_reason_required": True}, user=SYSTEM)
    lead = LeadFactory(name="Needs reason")
    response = act(admin_client, "mark_lost", [lead], lost_reason="")
    assert any("requires a lost reason" in m for m in messages_of(response))
    assert Lead.objects.get(pk=lead.pk).status == "open"


def test_export_selected_exports_only_the_selection(admin_client, stages):
    chosen = LeadFactory(name="Chosen")
    LeadFactory(name="Other")
    response = admin_client.post(
        reverse(LEADS), {"action": "export_selected", "_selected_action": [chosen.pk]}
    )
    assert response.status_code == 200
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert [row["name"] for row in rows] == ["Chosen"]

    deal = sales_services.opportunity_create(data={"name": "Deal", "amount": 5}, user=SYSTEM)
    response = admin_client.post(
        reverse(OPPORTUNITIES), {"action": "export_selected", "_selected_action": [deal.pk]}
    )
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert [row["name"] for row in rows] == ["Deal"]


def test_bulk_actions_need_the_change_permission(client, stages):
    viewer = UserFactory(is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_lead"))
    client.force_login(viewer)
    response = client.get(reverse(LEADS))
    offered = {value for value, _ in response.context["action_form"].fields["action"].choices}
    assert "export_selected" in offered
    assert not offered & {"assign_owner", "move_to_stage", "add_tags", "remove_tags", "mark_lost"}
