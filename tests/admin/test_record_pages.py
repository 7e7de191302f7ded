"""Convert, mark lost and mark won through the admin pages: the services decide, errors change nothing."""

import datetime
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from crm.actors import SYSTEM
from crm.models import Account, Contact, Lead, LeadStatus
from crm.services import lead_move_stage
from sales.models import Opportunity, OpportunityStatus
from sales.services import opportunity_mark_won as mark_won
from tests.factories import (
    AccountFactory,
    ContactFactory,
    LeadFactory,
    LostReasonFactory,
    OpportunityFactory,
    PipelineFactory,
    StageFactory,
)

D = Decimal


@pytest.fixture
def lead(stages):
    return LeadFactory(
        name="Northwind – 40 seats",
        contact_name="Laura Callahan",
        email="laura@northwind.example.com",
        company_name="Northwind",
        expected_revenue=D("18000"),
        stage=stages["Qualified"],
        priority="high",
    )


def convert_data(**overrides):
    data = {
        "account_action": "create",
        "contact_action": "create",
        "create_opportunity": "on",
        "opportunity_name": "Northwind deal",
        "amount": "20000",
        "close_date": "2027-01-31",
        "pipeline": "",
        "stage": "",
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def snapshot():
    return (
        list(Lead.objects.values().order_by("pk")),
        Account.objects.count(),
        Contact.objects.count(),
        Opportunity.objects.count(),
    )


# --- the lead's change page ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_open_lead_page_offers_convert_and_mark_lost(admin_client, lead):
    html = admin_client.get(reverse("admin:crm_lead_change", args=[lead.pk])).content.decode()
    assert f'href="{reverse("admin:crm_lead_convert", args=[lead.pk])}"' in html
    assert f'href="{reverse("admin:crm_lead_mark_lost", args=[lead.pk])}"' in html


@pytest.mark.django_db
def test_closed_lead_page_offers_neither(admin_client, lead):
    from crm.services import lead_mark_lost

    lead_mark_lost(lead=lead, user=SYSTEM)
    html = admin_client.get(reverse("admin:crm_lead_change", args=[lead.pk])).content.decode()
    assert reverse("admin:crm_lead_convert", args=[lead.pk]) not in html
    assert reverse("admin:crm_lead_mark_lost", args=[lead.pk]) not in html


# --- convert --------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_convert_page_shows_the_choices_with_the_service_defaults(admin_client, lead):
    response = admin_client.get(reverse("admin:crm_lead_convert", args=[lead.pk]))
    assert response.status_code == 200
    form = response.context["form"]
    assert form.initial["account_action"] == "create" and form.initial["contact_action"] == "create"
    assert form.initial["opportunity_name"] == lead.name and form.initial["amount"] == D("18000")
    html = response.content.decode()
    assert "Create the account “Northwind”" in html
    assert "No account is named “Northwind” yet." in html
    # Existing accounts and contacts are searched with the admin's autocomplete.
    assert "admin-autocomplete" in html and "select2" in html


@pytest.mark.django_db
def test_convert_page_says_what_already_exists_and_will_be_reused(admin_client, lead):
    account = AccountFactory(name="NORTHWIND")
    contact = ContactFactory(first_name="Laura", email="Laura@Northwind.example.com", account=account)

    response = admin_client.get(reverse("admin:crm_lead_convert", args=[lead.pk]))

    assert (response.context["existing_account"], response.context["existing_contact"]) == (account, contact)
    html = response.content.decode()
    assert 'data-existing="account"' in html and "already exists" in html
    assert 'data-existing="contact"' in html
    assert "Use the account “NORTHWIND”, which has the lead&#x27;s company name" in html


@pytest.mark.django_db
def test_converting_creates_account_contact_and_opportunity_then_shows_them(admin_client, lead, stages):
    response = admin_client.post(reverse("admin:crm_lead_convert", args=[lead.pk]), convert_data())

    done = reverse("admin:crm_lead_converted", args=[lead.pk])
    assert response.status_code == 302
    assert response["Location"] == f"{done}?account=created&contact=created"
    lead.refresh_from_db()
    opportunity = Opportunity.objects.get(lead=lead)
    assert lead.status == LeadStatus.CONVERTED
    assert (lead.converted_account.name, lead.converted_contact.email) == (
        "Northwind",
        "laura@northwind.example.com",
    )
    assert (opportunity.name, opportunity.amount, str(opportunity.close_date)) == (
        "Northwind deal",
        D("20000"),
        "2027-01-31",
    )
    # Without a stage chosen, the deal carries on in the stage the lead had reached.
    assert (opportunity.stage, opportunity.account) == (stages["Qualified"], lead.converted_account)

    page = admin_client.get(response["Location"])
    html = page.content.decode()
    assert page.status_code == 200
    for url in (
        reverse("admin:crm_account_change", args=[lead.converted_account_id]),
        reverse("admin:crm_contact_change", args=[lead.converted_contact_id]),
        reverse("admin:sales_opportunity_change", args=[opportunity.pk]),
    ):
        assert f'href="{url}"' in html
    assert html.count(">created<") == 3


@pytest.mark.django_db
def test_converting_reuses_the_account_and_contact_that_exist(admin_client, lead):
    account = AccountFactory(name="northwind")
    contact = ContactFactory(email="LAURA@northwind.example.com", account=None)

    response = admin_client.post(reverse("admin:crm_lead_convert", args=[lead.pk]), convert_data())

    assert response["Location"].endswith("?account=reused&contact=reused")
    lead.refresh_from_db()
    assert (lead.converted_account, lead.converted_contact) == (account, contact)
    assert Account.objects.count() == 1 and Contact.objects.count() == 1
    contact.refresh_from_db()
    assert contact.account == account
    assert ">reused<" in admin_client.get(response["Location"]).content.decode()


@pytest.mark.django_db
def test_converting_links_a_chosen_account_without_contact_or_opportunity(admin_client, lead):
    account = AccountFactory(name="Parent company")

    response = admin_client.post(
        reverse("admin:crm_lead_convert", args=[lead.pk]),
        {"account_action": "existing", "account": account.pk, "contact_action": "none"},
    )

    assert response.status_code == 302
    lead.refresh_from_db()
    assert (lead.status, lead.converted_account, lead.converted_contact) == ("converted", account, None)
    assert not Opportunity.objects.exists()


@pytest.mark.django_db
def test_convert_errors_from_the_service_are_form_errors_and_change_nothing(admin_client, lead, pipeline):
    foreign = StageFactory(pipeline=PipelineFactory(name="Enterprise"), name="Discovery")
    before = snapshot()

    response = admin_client.post(
        reverse("admin:crm_lead_convert", args=[lead.pk]),
        convert_data(pipeline=str(pipeline.pk), stage=str(foreign.pk)),
    )

    assert response.status_code == 200
    assert "belongs to the pipeline “Enterprise”" in str(response.context["form"].errors["stage"])
    assert snapshot() == before


@pytest.mark.django_db
def test_convert_asks_for_the_existing_account_it_should_link(admin_client, lead):
    before = snapshot()
    response = admin_client.post(
        reverse("admin:crm_lead_convert", args=[lead.pk]), convert_data(account_action="existing")
    )
    assert response.context["form"].errors["account"] == ["Choose the account to link."]
    assert snapshot() == before


@pytest.mark.django_db
def test_create_account_without_company_name_is_refused_on_the_form(admin_client, stages):
    lead = LeadFactory(company_name="", contact_name="Solo", stage=stages["New"])
    response = admin_client.post(reverse("admin:crm_lead_convert", args=[lead.pk]), convert_data())
    assert "no company name" in str(response.context["form"].errors["account_action"])
    lead.refresh_from_db()
    assert lead.status == LeadStatus.OPEN


@pytest.mark.django_db
def test_a_converted_lead_goes_back_to_its_page(admin_client, lead):
    admin_client.post(reverse("admin:crm_lead_convert", args=[lead.pk]), convert_data())
    response = admin_client.get(reverse("admin:crm_lead_convert", args=[lead.pk]))
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:crm_lead_change", args=[lead.pk])


@pytest.mark.django_db
def test_convert_of_an_unknown_lead_is_404(admin_client, stages):
    assert admin_client.get(reverse("admin:crm_lead_convert", args=[999])).status_code == 404


# --- mark lost ------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_marking_a_lead_lost_with_reason_and_note(admin_client, lead, stages):
    reason = LostReasonFactory(name="No budget")
    url = reverse("admin:crm_lead_mark_lost", args=[lead.pk])
    assert admin_client.get(url).status_code == 200

    response = admin_client.post(url, {"lost_reason": reason.pk, "lost_note": "Next year maybe."})

    assert response.status_code == 302
    lead.refresh_from_db()
    assert (lead.status, lead.stage, lead.lost_reason, lead.lost_note) == (
        LeadStatus.LOST,
        stages["Lost"],
        reason,
        "Next year maybe.",
    )
    page = admin_client.get(response["Location"])
    assert "is marked lost (No budget)" in page.content.decode()


@pytest.mark.django_db
def test_marking_a_closed_lead_lost_again_is_a_form_error(admin_client, lead):
    admin_client.post(reverse("admin:crm_lead_mark_lost", args=[lead.pk]), {})
    before = snapshot()
    response = admin_client.post(reverse("admin:crm_lead_mark_lost", args=[lead.pk]), {"lost_note": "again"})
    assert response.status_code == 200
    assert "already lost" in str(response.context["form"].non_field_errors())
    assert snapshot() == before


@pytest.mark.django_db
def test_inactive_lost_reasons_are_not_offered(admin_client, lead):
    retired = LostReasonFactory(name="Retired", is_active=False)
    response = admin_client.post(
        reverse("admin:crm_lead_mark_lost", args=[lead.pk]), {"lost_reason": retired.pk}
    )
    assert "lost_reason" in response.context["form"].errors
    lead.refresh_from_db()
    assert lead.status == LeadStatus.OPEN


# --- an opportunity: mark won, mark lost -----------------------------------------------------------------


@pytest.mark.django_db
def test_open_deal_page_offers_mark_won_as_a_post_form(admin_client, stages):
    opp = OpportunityFactory(stage=stages["Proposal"])
    html = admin_client.get(reverse("admin:sales_opportunity_change", args=[opp.pk])).content.decode()
    won_url = reverse("admin:sales_opportunity_mark_won", args=[opp.pk])
    assert f'<form method="post" action="{won_url}">' in html
    assert reverse("admin:sales_opportunity_mark_lost", args=[opp.pk]) in html


@pytest.mark.django_db
def test_marking_a_deal_won(admin_client, stages):
    opp = OpportunityFactory(name="Big deal", stage=stages["Proposal"], amount=D("5000"))
    url = reverse("admin:sales_opportunity_mark_won", args=[opp.pk])
    assert admin_client.get(url).status_code == 200  # asks for confirmation

    response = admin_client.post(url)

    assert response["Location"] == reverse("admin:sales_opportunity_change", args=[opp.pk])
    opp.refresh_from_db()
    assert (opp.status, opp.stage, opp.probability) == (OpportunityStatus.WON, stages["Won"], 100)
    assert opp.closed_at is not None
    assert "“Big deal” is won" in admin_client.get(response["Location"]).content.decode()


@pytest.mark.django_db
def test_mark_won_needs_the_csrf_token(admin_user, stages):
    opp = OpportunityFactory(stage=stages["Proposal"])
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    assert client.post(reverse("admin:sales_opportunity_mark_won", args=[opp.pk])).status_code == 403
    opp.refresh_from_db()
    assert opp.status == OpportunityStatus.OPEN


@pytest.mark.django_db
def test_mark_won_refused_by_the_service_is_a_message_and_changes_nothing(admin_client):
    no_won = PipelineFactory(name="Scratch", is_default=True)
    stage = StageFactory(pipeline=no_won, name="Only", sequence=0)
    opp = OpportunityFactory(pipeline=no_won, stage=stage)

    response = admin_client.post(reverse("admin:sales_opportunity_mark_won", args=[opp.pk]), follow=True)

    assert "has no won stage" in response.content.decode()
    opp.refresh_from_db()
    assert opp.status == OpportunityStatus.OPEN


@pytest.mark.django_db
def test_marking_a_deal_lost(admin_client, stages):
    opp = OpportunityFactory(stage=stages["Proposal"])
    reason = LostReasonFactory(name="Price")

    response = admin_client.post(
        reverse("admin:sales_opportunity_mark_lost", args=[opp.pk]),
        {"lost_reason": reason.pk, "lost_note": "Too dear"},
    )

    assert response.status_code == 302
    opp.refresh_from_db()
    assert (opp.status, opp.stage, opp.lost_reason, opp.lost_note) == (
        "lost",
        stages["Lost"],
        reason,
        "Too dear",
    )


@pytest.mark.django_db
def test_a_won_deal_page_offers_no_transition(admin_client, stages):
    opp = mark_won(opportunity=OpportunityFactory(stage=stages["Proposal"]), user=SYSTEM)
    html = admin_client.get(reverse("admin:sales_opportunity_change", args=[opp.pk])).content.decode()
    assert reverse("admin:sales_opportunity_mark_won", args=[opp.pk]) not in html


@pytest.mark.django_db
def test_converting_needs_the_permissions_to_create_what_it_creates(client, lead):
    from django.contrib.auth.models import Group

    from tests.factories import UserFactory

    rep = UserFactory()
    rep.groups.add(Group.objects.get(name="Sales Rep"))
    client.force_login(rep)
    assert client.get(reverse("admin:crm_lead_convert", args=[lead.pk])).status_code == 200

    only_leads = UserFactory()
    only_leads.user_permissions.add(*Permission.objects.filter(codename__in=["view_lead", "change_lead"]))
    client.force_login(only_leads)
    page = client.get(reverse("admin:crm_lead_change", args=[lead.pk])).content.decode()
    assert reverse("admin:crm_lead_convert", args=[lead.pk]) not in page
    assert reverse("admin:crm_lead_mark_lost", args=[lead.pk]) in page
    assert client.post(reverse("admin:crm_lead_convert", args=[lead.pk]), convert_data()).status_code == 403
    lead.refresh_from_db()
    assert lead.status == LeadStatus.OPEN


def test_a_lead_created_weeks_ago_says_how_long_it_has_been_open(admin_client, lead, stages):
    """Issue 14 finding 22: the record page of a lead created three weeks ago and moved today said
    "Open 0 days"."""
    Lead.objects.filter(pk=lead.pk).update(created_at=timezone.now() - datetime.timedelta(weeks=3))
    lead.refresh_from_db()
    lead_move_stage(lead=lead, stage=stages["Proposal"], user=SYSTEM)

    page = admin_client.get(reverse("admin:crm_lead_change", args=[lead.pk])).content.decode()

    assert "Open 21 days;" in page
