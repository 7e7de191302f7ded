"""The django-import-export resources run the engine: same columns, rules and all-or-nothing."""

import pytest
import tablib

from crm.actors import SYSTEM
from crm.models import Lead
from crm.resources import AccountResource, LeadResource, opportunity_resource
from tests.factories import AccountFactory, LeadFactory, OpportunityFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_import_data_upserts_through_the_engine(stages):
    owner = UserFactory(username="owner")
    LeadFactory(email="old@x.test", stage=stages["New"])
    dataset = tablib.Dataset(headers=["name", "email", "stage"])
    dataset.append(["Old", "OLD@x.test", "Qualified"])
    dataset.append(["New", "new@x.test", ""])
    result = LeadResource().import_data(dataset, dry_run=False, user=owner)
    assert not result.has_errors() and not result.has_validation_errors()
    assert (result.totals["new"], result.totals["update"]) == (1, 1)
    assert Lead.objects.count() == 2
    assert Lead.objects.get(email="new@x.test").owner == owner


def test_import_data_reports_invalid_rows_and_writes_nothing(stages):
    dataset = tablib.Dataset(headers=["name", "email", "probability"])
    dataset.append(["Good", "g@x.test", "10"])
    dataset.append(["Bad", "b@x.test", "500"])
    result = LeadResource().import_data(dataset, dry_run=False, user=SYSTEM)
    assert result.has_validation_errors()
    assert [(row.number, row.error_dict) for row in result.invalid_rows] == [
        (3, {"probability": ["Must be at most 100."]})
    ]
    assert not Lead.objects.exists()


def test_import_data_reports_file_errors():
    result = AccountResource().import_data(tablib.Dataset(headers=["colour"]), dry_run=True, user=SYSTEM)
    assert result.has_errors()
    assert "Unknown column: colour." in str(result.base_errors[0].error)


def test_export_is_the_engines_with_escaped_cells(stages):
    AccountFactory(name="=Acme")
    dataset = AccountResource().export()
    assert dataset.headers[:2] == ["id", "name"]
    assert dataset.dict[0]["name"] == "'=Acme"
    OpportunityFactory(name="Deal", stage=stages["New"], amount=5)
    assert opportunity_resource()().export().dict[0]["amount"] == "5.00"
