"""Screens that fit, and the header's global search, in Chromium.

At 1280 px and 390 px no main page scrolls sideways (``scrollWidth <= innerWidth``); a screenshot of
each is saved. The global search finds a lead by part of its email and opens it from the keyboard.
"""

import pytest
from django.core.management import call_command

from crm.models import Account, Contact, Lead
from sales.models import Opportunity
from tests.browser.conftest import PASSWORD, screenshot

pytestmark = pytest.mark.browser


@pytest.fixture
def demo(transactional_db):
    call_command("loaddata", "demo", verbosity=0)


def main_pages():
    lead = Lead.objects.order_by("pk").first()
    deal = Opportunity.objects.order_by("pk").first()
    account = Account.objects.get(name="Acme Corp")
    contact = Contact.objects.order_by("pk").first()
    return {
        "dashboard": "/admin/",
        "leads": "/admin/crm/lead/",
        "leads-board": "/admin/crm/lead/board/",
        "deals": "/admin/sales/opportunity/",
        "deals-board": "/admin/sales/opportunity/board/",
        "accounts": "/admin/crm/account/",
        "contacts": "/admin/crm/contact/",
        "lead-page": f"/admin/crm/lead/{lead.pk}/change/",
        "deal-page": f"/admin/sales/opportunity/{deal.pk}/change/",
        "account-page": f"/admin/crm/account/{account.pk}/change/",
        "contact-page": f"/admin/crm/contact/{contact.pk}/change/",
        "calendar": "/admin/activities/activity/calendar/?date=2026-11-01&everyone=1",
        "forecast": "/admin/sales/opportunity/forecast/",
        "lead-import": "/admin/crm/lead/import/",
        "search": "/admin/search/?q=acme",
    }


@pytest.mark.parametrize("width", [1280, 390])
def test_main_pages_do_not_scroll_sideways(demo, browser, live_server, staff_user, width):
    context = browser.new_context(viewport={"width": width, "height": 900}, base_url=live_server.url)
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.goto("/admin/login/")
    page.fill("#id_username", staff_user.username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/")
    overflowing = {}
    for name, url in main_pages().items():
        page.goto(url)
        widths = page.evaluate(
            "[document.documentElement.scrollWidth, document.body.scrollWidth, window.innerWidth]"
        )
        if max(widths[:2]) > widths[2]:
            overflowing[name] = widths
        screenshot(page, f"fit-{width}-{name}")
    context.close()
    assert not overflowing, f"pages wider than {width} px: {overflowing}"


def test_global_search_finds_a_lead_by_part_of_its_email(demo, logged_in_page):
    page = logged_in_page
    lead = Lead.objects.get(email="laura.callahan@northwind.example.com")
    page.goto("/admin/crm/account/")

    page.keyboard.press("/")
    page.keyboard.type("callahan@north")

    results = page.locator("[data-global-search-results]")
    results.locator('[data-search-group="leads"] a[data-hit]').first.wait_for()
    assert lead.name in results.locator('[data-search-group="leads"]').inner_text()
    screenshot(page, "global-search")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/admin/crm/lead/{lead.pk}/change/")
