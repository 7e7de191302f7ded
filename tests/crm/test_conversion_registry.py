"""crm converts a lead put into a won stage through the converter sales registers (crm.conversion),
so crm never imports sales; without one, the error says what is missing."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from crm import conversion, services
from crm.actors import SYSTEM
from crm.models import Lead
from sales.models import Opportunity
from sales.services import lead_convert
from tests.factories import LeadFactory


@pytest.fixture
def no_converter(monkeypatch):
    """A process where no app registered a converter (sales not installed)."""
    monkeypatch.setattr(conversion, "_converter", None)


def test_sales_registers_its_conversion_service():
    assert conversion.lead_converter() is lead_convert


def test_registering_the_same_converter_again_is_harmless():
    conversion.register_lead_converter(lead_convert)

    assert conversion.lead_converter() is lead_convert


def test_a_second_converter_is_refused_naming_the_first():
    def another(*, lead, user, **options):
        raise AssertionError("never called")

    with pytest.raises(ImproperlyConfigured, match=r"sales\.services\.lead_convert"):
        conversion.register_lead_converter(another)
    assert conversion.lead_converter() is lead_convert


def test_without_a_converter_the_error_names_what_is_missing(no_converter):
    with pytest.raises(ImproperlyConfigured, match=r"No lead converter is registered.*sales app"):
        conversion.lead_converter()


def test_a_converter_registered_later_is_the_one_used(no_converter):
    conversion.register_lead_converter(lead_convert)

    assert conversion.lead_converter() is lead_convert


@pytest.mark.django_db
def test_moving_into_the_won_stage_converts_through_the_registered_service(stages):
    lead = LeadFactory(stage=stages["New"], company_name="Acme", contact_name="Ann Lee")

    moved = services.lead_move_stage(lead=lead, stage=stages["Won"], user=SYSTEM)

    assert moved.status == "converted"
    assert Opportunity.objects.get().lead_id == lead.pk


@pytest.mark.django_db
def test_moving_into_the_won_stage_without_a_converter_fails_and_changes_nothing(stages, no_converter):
    lead = LeadFactory(stage=stages["New"])

    with pytest.raises(ImproperlyConfigured):
        services.lead_move_stage(lead=lead, stage=stages["Won"], user=SYSTEM)

    assert Lead.objects.get(pk=lead.pk).stage == stages["New"]
    assert not Opportunity.objects.exists()
