"""fixtures/demo.json: exactly the demo data of the spec, and loading it twice changes nothing."""

import pytest
from django.core import serializers
from django.core.management import call_command

from activities.models import Activity
from crm.models import Account, Contact, Lead, LostReason, Pipeline, Stage, Tag
from sales.models import Opportunity

MODELS = [Pipeline, Stage, Tag, LostReason, Account, Contact, Lead, Opportunity, Activity]


def snapshot():
    return {m.__name__: serializers.serialize("json", m.objects.order_by("pk")) for m in MODELS}


@pytest.mark.django_db
def test_demo_fixture_gives_exactly_the_demo_records():
    call_command("loaddata", "demo", verbosity=0)
    counts = {m.__name__: m.objects.count() for m in MODELS}
    assert counts == {
        "Pipeline": 2,
        "Stage": 12,
        "Tag": 8,
        "LostReason": 5,
        "Account": 5,
        "Contact": 5,
        "Lead": 5,
        "Opportunity": 4,
        "Activity": 6,
    }
    default = Pipeline.objects.get(is_default=True)
    assert default.name == "Sales Pipeline"
    assert list(default.stages.values_list("name", flat=True)) == [
        "New",
        "Qualified",
        "Proposal",
        "Negotiation",
        "Won",
        "Lost",
    ]
    assert Pipeline.objects.filter(name="Enterprise Deals", is_default=False).exists()
    assert set(Account.objects.values_list("name", flat=True)) == {
        "Acme Corp",
        "Global Industries",
        "Tech Innovators",
        "MedHealth",
        "EduLearn",
    }
    assert not Contact.objects.filter(account__isnull=True).exists()
    assert {"High Value", "Enterprise", "SMB"} <= set(Tag.objects.values_list("name", flat=True))
    assert Lead.objects.values("stage").distinct().count() > 1
    assert Lead.objects.values("priority").distinct().count() > 1
    assert Opportunity.objects.values("stage").distinct().count() == 4
    assert Opportunity.objects.values("amount").distinct().count() == 4


@pytest.mark.django_db
def test_demo_records_pass_their_own_validation():
    call_command("loaddata", "demo", verbosity=0)
    for model in MODELS:
        for obj in model.objects.all():
            obj.full_clean()


@pytest.mark.django_db
def test_loading_the_demo_twice_changes_nothing():
    call_command("loaddata", "demo", verbosity=0)
    first = snapshot()
    call_command("loaddata", "demo", verbosity=0)
    assert snapshot() == first


@pytest.mark.django_db
def test_records_created_after_loading_get_fresh_ids():
    call_command("loaddata", "demo", verbosity=0)
    assert Lead.objects.create(name="After demo").pk > 5
