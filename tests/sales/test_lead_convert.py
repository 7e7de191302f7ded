"""lead_convert: accounts and contacts created or reused, never duplicated; one conversion per lead."""

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from crm.actors import SYSTEM
from crm.models import Account, Contact, Lead
from crm.services import CLOSED
from sales.models import Opportunity
from sales.services import lead_convert
from tests.factories import (
    AccountFactory,
    ContactFactory,
    LeadFactory,
    PipelineFactory,
    StageFactory,
    TagFactory,
    UserFactory,
)


@pytest.fixture
def lead(stages):
    owner = UserFactory(username="rep")
    lead = LeadFactory(
        name="Acme — 50 seats",
        company_name="Acme Corp",
        contact_name="Ann Lee Smith",
        email="Ann@Acme.test",
        phone="+1 555 0100",
        job_title="CTO",
        expected_revenue=Decimal("12000.00"),
        priority="high",
        owner=owner,
    )
    lead.tags.set([TagFactory(name="Enterprise")])
    return lead


@pytest.mark.django_db
def test_convert_with_defaults_creates_account_contact_and_opportunity(lead, stages):
    result = lead_convert(lead=lead, user=SYSTEM)

    account = Account.objects.get()
    contact = Contact.objects.get()
    opportunity = Opportunity.objects.get()
    assert (result.account, result.contact, result.opportunity) == (account, contact, opportunity)
    assert (account.name, account.owner.username) == ("Acme Corp", "rep")
    assert (contact.first_name, contact.last_name, contact.email, contact.account) == (
        "Ann",
        "Lee Smith",
        "Ann@Acme.test",
        account,
    )
    assert (opportunity.name, opportunity.amount, opportunity.account, opportunity.contact) == (
        "Acme — 50 seats",
        Decimal("12000.00"),
        account,
        contact,
    )
    assert (opportunity.pipeline, opportunity.stage, opportunity.priority) == (
        lead.pipeline,
        stages["New"],
        "high",
    )
    assert [tag.name for tag in opportunity.tags.all()] == ["Enterprise"]
    lead.refresh_from_db()
    assert (lead.status, lead.converted_account, lead.converted_contact, lead.stage) == (
        "converted",
        account,
        contact,
        stages["Won"],
    )
    assert lead.converted_at is not None
    assert lead.converted_opportunity == opportunity


@pytest.mark.django_db
def test_convert_links_an_existing_account_by_id(lead):
    existing = AccountFactory(name="Someone Else Inc")

    result = lead_convert(lead=lead, account=existing, user=SYSTEM)

    assert result.account == existing
    assert Account.objects.count() == 1
    assert result.contact.account == existing


@pytest.mark.django_db
def test_convert_reuses_an_account_of_the_same_name_ignoring_case(lead):
    existing = AccountFactory(name="ACME corp")

    result = lead_convert(lead=lead, user=SYSTEM)

    assert result.account == existing
    assert Account.objects.count() == 1


@pytest.mark.django_db
def test_convert_reuses_a_contact_of_the_same_email_ignoring_case_and_links_it(lead):
    existing = ContactFactory(first_name="Ann", email="ann@ACME.test", account=None)

    result = lead_convert(lead=lead, user=SYSTEM)

    assert result.contact == existing
    assert Contact.objects.count() == 1
    existing.refresh_from_db()
    assert existing.account == result.account


@pytest.mark.django_db
def test_convert_refuses_a_reused_contact_of_another_account(lead):
    other = AccountFactory(name="Rival")
    ContactFactory(email="ann@acme.test", account=other)

    with pytest.raises(ValidationError) as excinfo:
        lead_convert(lead=lead, user=SYSTEM)

    assert "works for “Rival”" in excinfo.value.message_dict["contact"][0]
    assert not Opportunity.objects.exists()
    assert Account.objects.count() == 1  # the new account was rolled back with everything else
    assert Lead.objects.get().status == "open"


@pytest.mark.django_db
def test_convert_without_opportunity(lead):
    result = lead_convert(lead=lead, create_opportunity=False, user=SYSTEM)
    assert result.opportunity is None
    assert not Opportunity.objects.exists()
    assert Lead.objects.get().status == "converted"


@pytest.mark.django_db
def test_convert_without_account_or_contact(lead):
    result = lead_convert(lead=lead, create_account=False, create_contact=False, user=SYSTEM)
    assert (result.account, result.contact) == (None, None)
    assert result.opportunity.account is None
    assert not Account.objects.exists() and not Contact.objects.exists()


@pytest.mark.django_db
def test_convert_with_opportunity_options(lead, stages):
    other = PipelineFactory(name="Enterprise")
    stage = StageFactory(pipeline=other, name="Discovery", probability=15)

    result = lead_convert(
        lead=lead,
        opportunity_name="Big deal",
        amount=Decimal("99.50"),
        close_date="2026-12-31",
        stage=stage,
        user=SYSTEM,
    )

    opportunity = result.opportunity
    assert (opportunity.name, opportunity.amount, opportunity.pipeline, opportunity.stage) == (
        "Big deal",
        Decimal("99.50"),
        other,
        stage,
    )
    assert (str(opportunity.close_date), opportunity.probability) == ("2026-12-31", 15)


@pytest.mark.django_db
def test_convert_refuses_a_stage_outside_the_chosen_pipeline(lead, pipeline):
    foreign = StageFactory(pipeline=PipelineFactory(name="Enterprise"))
    with pytest.raises(ValidationError) as excinfo:
        lead_convert(lead=lead, pipeline=pipeline, stage=foreign, user=SYSTEM)
    assert "stage" in excinfo.value.message_dict
    assert Lead.objects.get().status == "open"


@pytest.mark.django_db
def test_convert_reports_a_bad_opportunity_name_under_opportunity_name(lead):
    with pytest.raises(ValidationError) as excinfo:
        lead_convert(lead=lead, opportunity_name="x" * 300, user=SYSTEM)
    assert "opportunity_name" in excinfo.value.message_dict


@pytest.mark.django_db
def test_convert_twice_is_refused(lead):
    lead_convert(lead=lead, user=SYSTEM)

    with pytest.raises(ValidationError) as excinfo:
        lead_convert(lead=lead, user=SYSTEM)

    assert excinfo.value.code == CLOSED
    assert Opportunity.objects.count() == 1


@pytest.mark.django_db
def test_create_account_without_a_company_name_is_a_field_error(stages):
    lead = LeadFactory(company_name="")
    with pytest.raises(ValidationError) as excinfo:
        lead_convert(lead=lead, create_account=True, user=SYSTEM)
    assert "create_account" in excinfo.value.message_dict


@pytest.mark.django_db
def test_opportunity_options_without_an_opportunity_are_refused(lead):
    with pytest.raises(ValidationError) as excinfo:
        lead_convert(lead=lead, create_opportunity=False, amount=Decimal("5"), user=SYSTEM)
    assert "amount only apply" in excinfo.value.message_dict["create_opportunity"][0]
