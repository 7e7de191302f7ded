"""The boards' won and lost dialogs, quick add, weighted totals, tags and the rotting flag (test client)."""

import datetime
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from crm.models import Lead, LeadStatus
from sales.models import Opportunity, OpportunityStatus
from tests.factories import LeadFactory, LostReasonFactory, OpportunityFactory, TagFactory

D = Decimal
LEAD_DIALOG = "admin:crm_lead_board_dialog"
DEAL_DIALOG = "admin:sales_opportunity_board_dialog"


def dialog(client, record, stage, name=LEAD_DIALOG, **data):
    if data.pop("get", False):
        return client.get(reverse(name), {"card": record.pk, "column": stage.pk})
    return client.post(reverse(name), {"card": record.pk, "column": stage.pk, **data})


@pytest.mark.django_db
def test_lost_dialog_requires_the_reason_the_pipeline_requires(admin_client, stages, pipeline):
    pipeline.lost_reason_required = True
    pipeline.save()
    reason = LostReasonFactory(name="Too expensive")
    lead = LeadFactory(stage=stages["Proposal"])

    page = dialog(admin_client, lead, stages["Lost"], get=True)
    assert page.status_code == 200
    html = page.content.decode()
    assert 'name="lost_reason"' in html and "requires a reason" in html

    refused = dialog(admin_client, lead, stages["Lost"], lost_note="no budget")
    assert refused.status_code == 400
    body = refused.json()
    assert body["ok"] is False and "This field is required" in body["form_html"]
    lead.refresh_from_db()
    assert (lead.status, lead.stage) == (LeadStatus.OPEN, stages["Proposal"])

    done = dialog(admin_client, lead, stages["Lost"], lost_reason=reason.pk, lost_note="no budget")
    assert done.status_code == 200
    body = done.json()
    assert body["ok"] is True and "marked lost (Too expensive)" in body["message"]
    assert {c["stage_id"]: c["count"] for c in body["columns"]}[stages["Lost"].pk] == 1
    lead.refresh_from_db()
    assert (lead.status, lead.stage, lead.lost_reason, lead.lost_note) == (
        LeadStatus.LOST,
        stages["Lost"],
        reason,
        "no budget",
    )


@pytest.mark.django_db
def test_won_dialog_converts_a_lead_into_a_deal_in_the_chosen_stage(admin_client, stages):
    lead = LeadFactory(
        name="Acme deal", company_name="Acme", contact_name="Ann Lee", stage=stages["Qualified"]
    )

    page = dialog(admin_client, lead, stages["Won"], get=True)
    assert page.status_code == 200
    html = page.content.decode()
    assert 'name="account_action"' in html and "The lead&#x27;s stage (Qualified)" in html

    done = dialog(
        admin_client,
        lead,
        stages["Won"],
        account_action="create",
        contact_action="create",
        create_opportunity="on",
        opportunity_name="Acme — 10 seats",
        amount="5000",
    )
    # No stage chosen: the opportunity carries on in the lead's stage, at its probability.
    assert done.status_code == 200, done.content
    assert done.json()["message"] == "“Acme deal” is converted."
    lead.refresh_from_db()
    opportunity = Opportunity.objects.get(lead=lead)
    assert lead.status == LeadStatus.CONVERTED
    assert (opportunity.name, opportunity.stage, opportunity.probability, opportunity.amount) == (
        "Acme — 10 seats",
        stages["Qualified"],
        30,
        D("5000.00"),
    )
    assert lead.converted_account.name == "Acme"


@pytest.mark.django_db
def test_won_dialog_on_the_deals_board_is_a_confirmation(admin_client, stages):
    deal = OpportunityFactory(stage=stages["Proposal"], amount=D("1200"))

    page = dialog(admin_client, deal, stages["Won"], name=DEAL_DIALOG, get=True)
    assert page.status_code == 200
    assert "Mark won" in page.content.decode() and 'name="lost_reason"' not in page.content.decode()

    done = dialog(admin_client, deal, stages["Won"], name=DEAL_DIALOG)
    assert done.status_code == 200
    deal.refresh_from_db()
    assert (deal.status, deal.stage) == (OpportunityStatus.WON, stages["Won"])

    again = dialog(admin_client, deal, stages["Lost"], name=DEAL_DIALOG, get=True)
    assert again.status_code == 409
    assert "already won" in again.json()["error"]


@pytest.mark.django_db
def test_dialog_refuses_bad_input_open_stages_and_hidden_records(admin_as, people, stages):
    client = admin_as("owner")
    mine = people.records["owner"].lead
    theirs = people.records["outsider"].lead

    assert client.get(reverse(LEAD_DIALOG), {"card": "x", "column": "1"}).status_code == 400
    assert client.get(reverse(LEAD_DIALOG), {"card": "\x00", "column": ""}).status_code == 400
    assert dialog(client, mine, stages["New"], get=True).status_code == 400
    assert dialog(client, theirs, stages["Lost"], get=True).status_code == 404
    assert client.put(reverse(LEAD_DIALOG)).status_code == 405


@pytest.mark.django_db
def test_quick_add_creates_a_card_through_the_service(admin_client, admin_user, stages):
    url = reverse("admin:crm_lead_board_add")

    response = admin_client.post(url, {"stage": stages["Qualified"].pk, "name": "Quick one", "value": "900"})

    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is True and "Quick one" in body["card_html"]
    lead = Lead.objects.get(name="Quick one")
    assert (lead.stage, lead.probability, lead.expected_revenue, lead.owner) == (
        stages["Qualified"],
        30,
        D("900.00"),
        admin_user,
    )
    weighted = {c["stage_id"]: c["weighted_display"] for c in body["columns"]}
    assert weighted[stages["Qualified"].pk] == "$270"

    deal = admin_client.post(
        reverse("admin:sales_opportunity_board_add"), {"stage": stages["New"].pk, "name": "D"}
    )
    assert deal.status_code == 200
    assert Opportunity.objects.get(name="D").stage == stages["New"]


@pytest.mark.django_db
def test_quick_add_refuses_bad_input(admin_client, stages):
    url = reverse("admin:crm_lead_board_add")
    assert admin_client.post(url, {"stage": stages["New"].pk, "name": ""}).json()["errors"]["name"]
    assert admin_client.post(url, {"stage": stages["Won"].pk, "name": "X"}).status_code == 400
    assert admin_client.post(url, {"stage": "nope", "name": "X"}).status_code == 400
    assert admin_client.post(url, {"stage": stages["New"].pk, "name": "X", "value": "-1"}).status_code == 400
    assert admin_client.get(url).status_code == 405
    assert not Lead.objects.exists()


@pytest.mark.django_db
def test_quick_add_needs_the_add_permission(admin_as, people, stages):
    client = admin_as("owner")
    owner = people.users["owner"]
    owner.user_permissions.clear()
    for group in owner.groups.all():
        group.permissions.remove(*group.permissions.filter(codename="add_lead"))
    response = client.post(reverse("admin:crm_lead_board_add"), {"stage": stages["New"].pk, "name": "X"})
    assert response.status_code in (403, 302)
    assert not Lead.objects.filter(name="X").exists()


@pytest.mark.django_db
def test_board_shows_weighted_totals_tags_and_the_rotting_flag(admin_client, stages):
    stage = stages["Proposal"]
    stage.rotting_days = 7
    stage.save()
    quiet = OpportunityFactory(name="Quiet", stage=stage, amount=D("1000"))
    Opportunity.objects.filter(pk=quiet.pk).update(updated_at=timezone.now() - datetime.timedelta(days=9))
    busy = OpportunityFactory(name="Busy", stage=stage, amount=D("3000"))
    busy.tags.add(TagFactory(name="VIP"))

    response = admin_client.get(reverse("admin:sales_opportunity_board"))

    column = next(c for c in response.context["columns"] if c["stage"] == stage)
    assert (column["total"], column["weighted"]) == (D("4000.00"), D("2400.00"))
    cards = {card.title: card for card in column["cards"]}
    assert (cards["Quiet"].rotting_days, cards["Busy"].rotting_days) == (9, None)
    assert [tag.name for tag in cards["Busy"].tags] == ["VIP"]
    html = response.content.decode()
    assert "Rotting · 9 d" in html and ">VIP</span>" in html and "$2,400" in html
    assert 'data-closing="lost"' in html and "data-quick-add" in html


@pytest.mark.django_db
def test_board_query_count_does_not_grow_with_cards(admin_client, stages, django_assert_max_num_queries):
    def fill(count):
        for i in range(count):
            deal = OpportunityFactory(stage=stages["New"], amount=D("10"))
            deal.tags.add(TagFactory(name=f"T{deal.pk}-{i}"))

    fill(2)
    admin_client.get(reverse("admin:sales_opportunity_board"))  # warm up
    with django_assert_max_num_queries(20) as small:
        admin_client.get(reverse("admin:sales_opportunity_board"))
    fill(15)
    with django_assert_max_num_queries(len(small.captured_queries)):
        admin_client.get(reverse("admin:sales_opportunity_board"))
