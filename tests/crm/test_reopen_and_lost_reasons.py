"""Reopening lost leads and won or lost opportunities; lost reasons counted and required per pipeline."""

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from crm import services
from crm.actors import SYSTEM
from crm.models import Lead, Pipeline
from sales import services as sales_services
from sales.models import Opportunity
from tests.factories import LeadFactory, LostReasonFactory, OpportunityFactory, PipelineFactory, StageFactory

pytestmark = pytest.mark.django_db


def stage_names(record) -> list[str]:
    return [c.to_stage_name for c in record.stage_changes.order_by("changed_at", "id")]


# --- reopen: services -----------------------------------------------------------------------------


def test_a_lost_lead_reopens_in_the_last_open_stage_it_was_in(stages):
    reason = LostReasonFactory()
    lead = services.lead_create(data={"name": "Inbound"}, user=SYSTEM)
    lead = services.lead_move_stage(lead=lead, stage=stages["Proposal"], user=SYSTEM)
    lead = services.lead_mark_lost(lead=lead, lost_reason=reason, lost_note="budget", user=SYSTEM)

    lead = services.lead_reopen(lead=lead, user=SYSTEM)

    lead.refresh_from_db()
    assert (lead.status, lead.stage, lead.probability) == ("open", stages["Proposal"], 60)
    assert (lead.lost_reason, lead.lost_note) == (None, "")
    assert stage_names(lead) == ["New", "Proposal", "Lost", "Proposal"]


def test_reopening_into_a_given_stage(stages):
    lead = services.lead_mark_lost(
        lead=services.lead_create(data={"name": "Inbound"}, user=SYSTEM), user=SYSTEM
    )
    lead = services.lead_reopen(lead=lead, stage=stages["Qualified"], user=SYSTEM)
    assert (lead.status, lead.stage, lead.probability) == ("open", stages["Qualified"], 30)


def test_without_history_a_record_reopens_in_the_first_open_stage(stages):
    lead = LeadFactory(status="lost", stage=stages["Lost"])
    assert services.lead_reopen(lead=lead, user=SYSTEM).stage == stages["New"]


def test_reopening_refuses_a_closed_or_foreign_stage(stages):
    lead = services.lead_mark_lost(
        lead=services.lead_create(data={"name": "Inbound"}, user=SYSTEM), user=SYSTEM
    )
    other = PipelineFactory(name="Other")
    with pytest.raises(ValidationError) as won:
        services.lead_reopen(lead=lead, stage=stages["Won"], user=SYSTEM)
    with pytest.raises(ValidationError) as foreign:
        services.lead_reopen(lead=lead, stage=StageFactory(pipeline=other), user=SYSTEM)
    assert "open stage" in won.value.message_dict["stage"][0]
    assert "belongs to the pipeline “Other”" in foreign.value.message_dict["stage"][0]
    assert Lead.objects.get(pk=lead.pk).status == "lost"


def test_only_a_lost_lead_can_be_reopened(stages):
    open_lead = services.lead_create(data={"name": "Open"}, user=SYSTEM)
    converted = LeadFactory(status="converted", converted_at="2026-01-01T00:00:00Z", stage=stages["Won"])
    for lead in (open_lead, converted):
        with pytest.raises(ValidationError) as refused:
            services.lead_reopen(lead=lead, user=SYSTEM)
        assert refused.value.code == services.NOT_REOPENABLE


def test_won_and_lost_opportunities_reopen_without_closing_data(stages):
    reason = LostReasonFactory()
    won = sales_services.opportunity_create(data={"name": "Won", "amount": 5}, user=SYSTEM)
    won = sales_services.opportunity_move_stage(opportunity=won, stage=stages["Qualified"], user=SYSTEM)
    won = sales_services.opportunity_mark_won(opportunity=won, user=SYSTEM)
    lost = sales_services.opportunity_mark_lost(
        opportunity=sales_services.opportunity_create(data={"name": "Lost", "amount": 5}, user=SYSTEM),
        lost_reason=reason,
        user=SYSTEM,
    )

    won = sales_services.opportunity_reopen(opportunity=won, user=SYSTEM)
    lost = sales_services.opportunity_reopen(opportunity=lost, stage=stages["Proposal"], user=SYSTEM)

    assert (won.status, won.stage, won.probability, won.closed_at) == ("open", stages["Qualified"], 30, None)
    assert (lost.status, lost.stage, lost.lost_reason, lost.closed_at) == (
        "open",
        stages["Proposal"],
        None,
        None,
    )
    assert stage_names(won) == ["New", "Qualified", "Won", "Qualified"]


def test_an_open_opportunity_cannot_be_reopened(stages):
    with pytest.raises(ValidationError) as refused:
        sales_services.opportunity_reopen(opportunity=OpportunityFactory(), user=SYSTEM)
    assert refused.value.code == services.NOT_REOPENABLE


def test_a_pipeline_without_open_stages_cannot_take_a_record_back(db):
    pipeline = PipelineFactory(name="Closed only", is_default=True)
    lost_stage = StageFactory(pipeline=pipeline, name="Lost", is_lost=True)
    lead = LeadFactory(pipeline=pipeline, stage=lost_stage, status="lost")
    with pytest.raises(ValidationError) as refused:
        services.lead_reopen(lead=lead, user=SYSTEM)
    assert "no open stage" in refused.value.message_dict["stage"][0]


# --- reopen: API and admin ------------------------------------------------------------------------


def test_api_reopen_a_lead_and_an_opportunity(admin_client, stages):
    lead = services.lead_mark_lost(
        lead=services.lead_create(data={"name": "Inbound"}, user=SYSTEM), user=SYSTEM
    )
    opportunity = sales_services.opportunity_mark_won(
        opportunity=sales_services.opportunity_create(data={"name": "Deal", "amount": 5}, user=SYSTEM),
        user=SYSTEM,
    )

    response = admin_client.post(
        f"/api/v1/crm/leads/{lead.pk}/reopen/",
        {"stage_id": stages["Qualified"].pk},
        content_type="application/json",
    )
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["stage_id"]) == ("open", stages["Qualified"].pk)

    # The API reads JSON: a body-less POST from Django's test client would be an (empty) multipart one.
    response = admin_client.post(
        f"/api/v1/crm/opportunities/{opportunity.pk}/reopen/", content_type="application/json"
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["stage_id"], body["closed_at"]) == ("open", stages["New"].pk, None)
    assert Opportunity.objects.get(pk=opportunity.pk).status == "open"


def test_api_reopen_errors(admin_client, stages):
    open_lead = services.lead_create(data={"name": "Open"}, user=SYSTEM)
    lost = services.lead_mark_lost(lead=services.lead_create(data={"name": "Lost"}, user=SYSTEM), user=SYSTEM)

    conflict = admin_client.post(f"/api/v1/crm/leads/{open_lead.pk}/reopen/", content_type="application/json")
    closed_stage = admin_client.post(
        f"/api/v1/crm/leads/{lost.pk}/reopen/",
        {"stage_id": stages["Won"].pk},
        content_type="application/json",
    )
    unknown = admin_client.post(
        f"/api/v1/crm/leads/{lost.pk}/reopen/", {"stage_id": 999999}, content_type="application/json"
    )
    missing = admin_client.post("/api/v1/crm/opportunities/999999/reopen/")

    assert conflict.status_code == 409
    assert closed_stage.status_code == 400 and "open stage" in closed_stage.json()["stage_id"][0]
    assert unknown.status_code == 400 and "stage_id" in unknown.json()
    assert missing.status_code == 404
    assert Lead.objects.get(pk=lost.pk).status == "lost"


def test_admin_reopen_button_and_page(admin_client, stages):
    lead = services.lead_mark_lost(
        lead=services.lead_create(data={"name": "Inbound"}, user=SYSTEM), user=SYSTEM
    )
    page = admin_client.get(reverse("admin:crm_lead_change", args=[lead.pk])).content.decode()
    reopen_url = reverse("admin:crm_lead_reopen", args=[lead.pk])
    assert f'href="{reopen_url}"' in page

    assert admin_client.get(reopen_url).status_code == 200
    response = admin_client.post(reopen_url, {"stage": stages["Proposal"].pk})

    assert response.status_code == 302
    lead.refresh_from_db()
    assert (lead.status, lead.stage) == ("open", stages["Proposal"])
    page = admin_client.get(reverse("admin:crm_lead_change", args=[lead.pk])).content.decode()
    assert f'href="{reopen_url}"' not in page


def test_admin_reopen_of_an_opportunity_where_it_last_was(admin_client, stages):
    opportunity = sales_services.opportunity_create(data={"name": "Deal", "amount": 5}, user=SYSTEM)
    opportunity = sales_services.opportunity_move_stage(
        opportunity=opportunity, stage=stages["Proposal"], user=SYSTEM
    )
    opportunity = sales_services.opportunity_mark_lost(opportunity=opportunity, user=SYSTEM)

    response = admin_client.post(
        reverse("admin:sales_opportunity_reopen", args=[opportunity.pk]), {"stage": ""}
    )

    assert response.status_code == 302
    opportunity.refresh_from_db()
    assert (opportunity.status, opportunity.stage) == ("open", stages["Proposal"])


def test_admin_reopen_page_refuses_an_open_record(admin_client, stages):
    lead = services.lead_create(data={"name": "Open"}, user=SYSTEM)
    response = admin_client.post(reverse("admin:crm_lead_reopen", args=[lead.pk]), {"stage": ""})
    assert response.status_code == 200
    assert "Only a lost lead can be reopened" in response.content.decode()


# --- lost reasons ---------------------------------------------------------------------------------


def required(pipeline: Pipeline) -> Pipeline:
    return services.pipeline_update(pipeline=pipeline, data={"lost_reason_required": True}, user=SYSTEM)


def test_a_pipeline_requiring_a_reason_refuses_to_lose_without_one(pipeline, stages):
    required(pipeline)
    lead = services.lead_create(data={"name": "Inbound"}, user=SYSTEM)
    opportunity = sales_services.opportunity_create(data={"name": "Deal", "amount": 5}, user=SYSTEM)
    attempts = [
        lambda: services.lead_mark_lost(lead=lead, user=SYSTEM),
        lambda: services.lead_move_stage(lead=lead, stage=stages["Lost"], user=SYSTEM),
        lambda: services.lead_update(lead=lead, data={"stage": stages["Lost"]}, user=SYSTEM),
        lambda: sales_services.opportunity_mark_lost(opportunity=opportunity, user=SYSTEM),
        lambda: sales_services.opportunity_move_stage(
            opportunity=opportunity, stage=stages["Lost"], user=SYSTEM
        ),
    ]
    for attempt in attempts:
        with pytest.raises(ValidationError) as refused:
            attempt()
        assert "requires a lost reason" in refused.value.message_dict["lost_reason"][0]
    assert Lead.objects.get(pk=lead.pk).status == "open"
    assert Opportunity.objects.get(pk=opportunity.pk).stage == stages["New"]


def test_a_required_reason_given_with_the_move_is_kept(pipeline, stages):
    required(pipeline)
    reason = LostReasonFactory()
    lead = services.lead_create(data={"name": "Inbound"}, user=SYSTEM)
    lead = services.lead_update(lead=lead, data={"stage": stages["Lost"], "lost_reason": reason}, user=SYSTEM)
    opportunity = sales_services.opportunity_mark_lost(
        opportunity=sales_services.opportunity_create(data={"name": "Deal", "amount": 5}, user=SYSTEM),
        lost_reason=reason,
        user=SYSTEM,
    )
    assert (lead.status, lead.lost_reason) == ("lost", reason)
    assert (opportunity.status, opportunity.lost_reason) == ("lost", reason)


def test_api_lost_stage_move_without_a_required_reason_is_a_clear_400(admin_client, pipeline, stages):
    required(pipeline)
    lead = services.lead_create(data={"name": "Inbound"}, user=SYSTEM)
    move = admin_client.post(
        f"/api/v1/crm/leads/{lead.pk}/move-stage/",
        {"stage_id": stages["Lost"].pk},
        content_type="application/json",
    )
    lose = admin_client.post(f"/api/v1/crm/leads/{lead.pk}/mark-lost/", {}, content_type="application/json")
    assert (move.status_code, lose.status_code) == (400, 400)
    assert "requires a lost reason" in move.json()["lost_reason_id"][0]
    assert "requires a lost reason" in lose.json()["lost_reason_id"][0]
    assert Lead.objects.get(pk=lead.pk).status == "open"


def test_pipeline_lost_reason_required_is_writable_in_the_api(admin_client, pipeline):
    response = admin_client.patch(
        f"/api/v1/crm/pipelines/{pipeline.pk}/",
        {"lost_reason_required": True},
        content_type="application/json",
    )
    assert response.status_code == 200
    assert response.json()["lost_reason_required"] is True
    assert Pipeline.objects.get(pk=pipeline.pk).lost_reason_required


def test_admin_lost_reasons_list_counts_the_leads_and_opportunities_they_explain(admin_client, stages):
    price, timing = LostReasonFactory(name="Price"), LostReasonFactory(name="Timing")
    for _ in range(2):
        services.lead_mark_lost(
            lead=services.lead_create(data={"name": "L"}, user=SYSTEM), lost_reason=price, user=SYSTEM
        )
    for reason in (price, timing, timing):
        sales_services.opportunity_mark_lost(
            opportunity=sales_services.opportunity_create(data={"name": "O", "amount": 1}, user=SYSTEM),
            lost_reason=reason,
            user=SYSTEM,
        )

    response = admin_client.get(reverse("admin:crm_lostreason_changelist") + "?o=3")

    assert response.status_code == 200
    rows = {r.name: (r.lead_count, r.opportunity_count) for r in response.context["cl"].result_list}
    assert rows == {"Price": (2, 1), "Timing": (0, 2)}
    html = response.content.decode().lower()
    assert "leads lost" in html and "opportunities lost" in html
