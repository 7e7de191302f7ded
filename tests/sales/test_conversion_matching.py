"""Converting a lead reuses an account named like its company and a contact with its email. The admin's
convert page says beforehand which ones; it asks the same function the conversion uses."""

import pytest
from django.contrib import admin

from crm.actors import SYSTEM
from sales.admin.convert import LeadConvertForm
from sales.services import lead_convert
from tests.factories import AccountFactory, ContactFactory, LeadFactory

pytestmark = pytest.mark.django_db


def test_the_convert_page_announces_the_account_and_contact_the_conversion_reuses(stages):
    oldest_account = AccountFactory(name="ACME")
    AccountFactory(name="Acme")
    oldest_contact = ContactFactory(email="ANN@ACME.TEST")
    ContactFactory(email="ann@acme.test")
    lead = LeadFactory(
        stage=stages["Qualified"], company_name=" acme ", email="Ann@Acme.test", contact_name="Ann"
    )
    form = LeadConvertForm(lead=lead, admin_site=admin.site)

    announced = (form.find_existing_account(), form.find_existing_contact())
    conversion = lead_convert(lead=lead, user=SYSTEM)

    assert announced == (oldest_account, oldest_contact)
    assert (conversion.account, conversion.contact) == announced
