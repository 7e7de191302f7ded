"""Record pages in Chromium: the stage stepper moves a record (and opens the lost dialog), the composer."""

import pytest
from django.core.management import call_command

from activities.models import Activity
from crm.models import Lead, LeadStatus
from tests.browser.conftest import screenshot

pytestmark = pytest.mark.browser

NORTHWIND = "Northwind Traders – website inquiry"  # demo lead in Sales Pipeline › New


@pytest.fixture
def demo(transactional_db):
    call_command("loaddata", "demo", verbosity=0)


def test_the_stepper_moves_a_record(demo, logged_in_page):
    page = logged_in_page
    lead = Lead.objects.get(name=NORTHWIND)
    page.goto(f"/admin/crm/lead/{lead.pk}/change/")
    assert page.locator("[data-stepper] [aria-current=step]").inner_text() == "New"
    screenshot(page, "record-page-lead")

    page.locator("[data-stepper] button", has_text="Proposal").click()

    page.wait_for_function(  # null while the page reloads after the move
        "document.querySelector('[data-stepper] [aria-current=step]')?.textContent.trim() === 'Proposal'"
    )
    lead.refresh_from_db()
    assert (lead.stage.name, lead.probability) == ("Proposal", lead.stage.probability)
    screenshot(page, "record-page-stepper-moved")

    page.locator("[data-stepper] button", has_text="Lost").click()
    dialog = page.locator("dialog[data-crm-dialog]")
    dialog.locator("select[name=lost_reason]").select_option(label="Bad timing")
    dialog.locator("[data-dialog-submit]").click()
    page.wait_for_function(  # null while the page reloads after the move
        "document.querySelector('[data-stepper] [aria-current=step]')?.textContent.trim() === 'Lost'"
    )
    lead.refresh_from_db()
    assert (lead.status, lead.lost_reason.name) == (LeadStatus.LOST, "Bad timing")


def test_the_composer_logs_a_call_on_the_timeline(demo, logged_in_page):
    page = logged_in_page
    lead = Lead.objects.get(name=NORTHWIND)
    page.goto(f"/admin/crm/lead/{lead.pk}/change/")
    composer = page.locator("#composer")
    composer.locator("label", has_text="Call").click()
    composer.locator("input[name=subject]").fill("Intro call with Laura")
    composer.locator("button[type=submit]").click()
    page.wait_for_selector(".messagelist .success")
    assert page.locator("#timeline").get_by_text("Call: Intro call with Laura").is_visible()
    assert Activity.objects.filter(lead=lead, subject="Intro call with Laura", activity_type="call").exists()
    screenshot(page, "record-page-composer")
