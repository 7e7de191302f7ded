"""A person logs in to the back office in a real browser and works with the demo data."""

import pytest
from django.core.management import call_command

from crm.models import Lead
from tests.browser.conftest import screenshot

pytestmark = pytest.mark.browser


def test_login_and_browse_demo_leads(logged_in_page):
    call_command("loaddata", "demo", verbosity=0)
    page = logged_in_page
    screenshot(page, "admin-index")

    page.goto("/admin/crm/lead/")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 5
    assert page.locator("#result_list").get_by_text("Orion Bank – enterprise rollout").is_visible()
    screenshot(page, "lead-changelist")


def test_add_a_lead_without_pipeline_gets_the_default_first_stage(logged_in_page):
    call_command("loaddata", "demo", verbosity=0)
    page = logged_in_page
    page.goto("/admin/crm/lead/add/")
    page.fill("#id_name", "Browser-made lead")
    page.fill("#id_company_name", "Contoso")
    page.click("input[name=_save]")
    page.wait_for_url("**/admin/crm/lead/")
    assert page.locator(".messagelist .success").is_visible()
    lead = Lead.objects.get(name="Browser-made lead")
    assert (lead.pipeline.name, lead.stage.name, lead.probability) == ("Sales Pipeline", "New", 10)
