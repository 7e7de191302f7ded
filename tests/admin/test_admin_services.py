"""The admin writes through the services: stage changes, refusals shown on the page, actions, tokens."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.messages import get_messages
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from crm.actors import SYSTEM
from crm.models import Lead
from sales import services
from sales.models import Opportunity
from tests.factories import (
    AccountFactory,
    ContactFactory,
    LeadFactory,
    OpportunityFactory,
    PipelineFactory,
    StageFactory,
)


def lead_change_form(lead, **overrides):
    data = {
        "name": lead.name,
        "pipeline": lead.pipeline_id,
        "stage": lead.stage_id,
        "priority": lead.priority,
        "probability": lead.probability,
        "company_name": lead.company_name,
        "email": lead.email,
        "activities-TOTAL_FORMS": "0",
        "activities-INITIAL_FORMS": "0",
        "consents-TOTAL_FORMS": "0",
        "consents-INITIAL_FORMS": "0",
        "channel_preferences-TOTAL_FORMS": "0",
        "channel_preferences-INITIAL_FORMS": "0",
    }
    data.update(overrides)
    return data


def messages_of(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


@pytest.mark.django_db
def test_admin_moving_a_lead_to_a_new_stage_takes_its_probability(admin_client, stages):
    lead = LeadFactory()

    response = admin_client.post(
        reverse("admin:crm_lead_change", args=[lead.pk]), lead_change_form(lead, stage=stages["Proposal"].pk)
    )

    assert response.status_code == 302
    lead.refresh_from_db()
    assert (lead.stage, lead.probability) == (stages["Proposal"], 60)


@pytest.mark.django_db
def test_admin_moving_a_lead_to_the_won_stage_converts_it(admin_client, stages):
    lead = LeadFactory(company_name="Acme")

    response = admin_client.post(
        reverse("admin:crm_lead_change", args=[lead.pk]), lead_change_form(lead, stage=stages["Won"].pk)
    )

    assert response.status_code == 302
    lead.refresh_from_db()
    assert lead.status == "converted"
    assert Opportunity.objects.get().lead == lead


@pytest.mark.django_db
def test_admin_shows_a_service_refusal_and_changes_nothing(admin_client, stages):
    lead = LeadFactory(company_name="Acme", email="ann@acme.test", name="Before")
    ContactFactory(email="ann@acme.test", account=AccountFactory(name="Rival"))
    url = reverse("admin:crm_lead_change", args=[lead.pk])

    response = admin_client.post(url, lead_change_form(lead, stage=stages["Won"].pk, name="After"))

    assert response.status_code == 302
    assert response.url == url
    assert any("works for “Rival”" in message for message in messages_of(response))
    lead.refresh_from_db()
    assert (lead.status, lead.name, lead.stage) == ("open", "Before", stages["New"])
    assert not Opportunity.objects.exists()


@pytest.mark.django_db
def test_closed_lead_shows_pipeline_and_stage_read_only(admin_client, stages):
    lead = LeadFactory(status="lost")
    response = admin_client.get(reverse("admin:crm_lead_change", args=[lead.pk]))
    fields = response.context["adminform"].form.fields
    assert "stage" not in fields and "pipeline" not in fields


@pytest.mark.django_db
def test_admin_mark_lost_action_reports_done_and_skipped(admin_client, stages):
    first, second = LeadFactory(name="first"), LeadFactory(name="second")
    already = LeadFactory(name="already", status="lost")

    response = admin_client.post(
        reverse("admin:crm_lead_changelist"),
        # The action asks for a reason on an intermediate page; submitting it (no reason) applies it.
        {"action": "mark_lost", "_selected_action": [first.pk, second.pk, already.pk], "apply": "1"},
        follow=True,
    )

    assert response.status_code == 200
    shown = messages_of(response)
    assert "2 leads marked lost." in shown
    assert any(message.startswith("Skipped “already”: This lead is already lost") for message in shown)
    assert set(Lead.objects.values_list("status", flat=True)) == {"lost"}
    assert Lead.objects.get(pk=first.pk).stage == stages["Lost"]


@pytest.mark.django_db
def test_admin_mark_won_and_mark_lost_actions(admin_client, stages):
    won, lost = OpportunityFactory(name="won"), OpportunityFactory(name="lost")
    other = PipelineFactory(name="No won stage")
    stuck = OpportunityFactory(name="stuck", pipeline=other, stage=StageFactory(pipeline=other))
    url = reverse("admin:sales_opportunity_changelist")

    response = admin_client.post(
        url, {"action": "mark_won", "_selected_action": [won.pk, stuck.pk]}, follow=True
    )
    assert "1 opportunity marked won." in messages_of(response)
    assert any("has no won stage" in message for message in messages_of(response))

    response = admin_client.post(
        url, {"action": "mark_lost", "_selected_action": [lost.pk, won.pk], "apply": "1"}, follow=True
    )
    assert "1 opportunity marked lost." in messages_of(response)

    assert {o.name: o.status for o in Opportunity.objects.all()} == {
        "won": "won",
        "lost": "lost",
        "stuck": "open",
    }


@pytest.mark.django_db
def test_admin_opportunity_created_in_the_won_stage_is_won(admin_client, stages):
    data = {
        "name": "Signed",
        "stage": stages["Won"].pk,
        "amount": "10",
        "opportunity_type": "new_business",
        "priority": "medium",
        "activities-TOTAL_FORMS": "0",
        "activities-INITIAL_FORMS": "0",
        "consents-TOTAL_FORMS": "0",
        "consents-INITIAL_FORMS": "0",
        "channel_preferences-TOTAL_FORMS": "0",
        "channel_preferences-INITIAL_FORMS": "0",
    }
    assert admin_client.post(reverse("admin:sales_opportunity_add"), data).status_code == 302
    opportunity = Opportunity.objects.get()
    assert (opportunity.status, opportunity.probability) == ("won", 100)


@pytest.mark.django_db
def test_staff_issue_and_revoke_api_tokens_in_the_admin(admin_client, stages):
    rep = get_user_model().objects.create_user("rep", password="pw-rep-123!", is_staff=True)

    response = admin_client.post(reverse("admin:authtoken_tokenproxy_add"), {"user": rep.pk})
    assert response.status_code == 302
    token = Token.objects.get(user=rep)

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    assert client.get("/api/v1/crm/leads/").status_code == 403  # authenticated, but no view_lead yet
    assert APIClient().get("/api/v1/crm/leads/").status_code == 401

    response = admin_client.post(reverse("admin:authtoken_tokenproxy_delete", args=[rep.pk]), {"post": "yes"})
    assert response.status_code == 302
    assert not Token.objects.exists()
    assert client.get("/api/v1/crm/leads/").status_code == 401


@pytest.mark.django_db
def test_won_opportunity_cannot_be_moved_in_the_admin(admin_client, stages):
    opportunity = services.opportunity_mark_won(opportunity=OpportunityFactory(), user=SYSTEM)
    response = admin_client.get(reverse("admin:sales_opportunity_change", args=[opportunity.pk]))
    assert "stage" not in response.context["adminform"].form.fields
