"""Saved views in Chromium: a list filtered, searched, sorted and cut down to a few columns is saved as
a view, and opening the view later restores it all."""

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from crm.models import Lead, SavedView
from tests.browser.conftest import screenshot

pytestmark = pytest.mark.browser


@pytest.fixture
def demo(transactional_db):
    call_command("loaddata", "demo", verbosity=0)


def headers(page) -> list[str]:
    texts = page.locator("#result_list thead th").all_inner_texts()
    return [" ".join(text.split()).lower() for text in texts if text.strip()]


def listed(page) -> list[str]:
    return page.locator("#result_list tbody th a, #result_list tbody td.field-name a").all_inner_texts()


def test_a_saved_view_restores_filters_and_columns(demo, logged_in_page):
    page = logged_in_page
    high_leads = set(Lead.objects.filter(priority="high").values_list("name", flat=True))
    assert 1 < len(high_leads) < Lead.objects.count()
    page.goto("/admin/crm/lead/?priority__exact=high")
    assert len(headers(page)) > 10

    # Choose three columns, the expected revenue first, with the chooser.
    chooser = page.locator("[data-column-chooser]")
    chooser.locator("summary").click()
    for box in chooser.locator("input[name=_columns]").all():
        if box.get_attribute("value") not in ("name", "revenue", "owner"):
            box.uncheck()
    revenue = chooser.locator('li[data-column="revenue"]')
    for _ in range(12):
        revenue.locator("[data-move=up]").click()
    screenshot(page, "saved-views-column-chooser")
    # Each of these clicks opens another page: wait for what it shows, not for the old page's load.
    chooser.locator("[data-columns-apply]").click()
    columns = page.locator('#result_list thead th[class*="column-"]:not(.action-checkbox-column)')
    expect(columns).to_have_count(3)
    assert headers(page) == ["expected revenue", "name", "owner"]
    assert set(listed(page)) == high_leads

    # Sort by revenue (descending), then save the list as a view.
    page.locator("#result_list thead th.column-revenue a").first.click()
    expect(page.locator("#result_list thead th.column-revenue.sorted.ascending")).to_have_count(1)
    page.locator("#result_list thead th.column-revenue a.toggle").first.click()
    expect(page.locator("#result_list thead th.column-revenue.sorted.descending")).to_have_count(1)
    save = page.locator("[data-view-save]")
    save.locator("summary").click()
    save.locator("[data-view-name]").fill("High priority by revenue")
    save.locator("[data-view-save-submit]").click()
    page.wait_for_selector(".messagelist .success")
    view = SavedView.objects.get()
    assert (view.filters, view.columns, view.ordering) == (
        {"priority__exact": "high"},
        ["revenue", "name", "owner"],
        ["-revenue"],
    )

    # Back to the list as it comes: every lead, every column.
    page.locator("[data-view-select]").select_option(label="All (the list as it comes)")
    page.wait_for_url("**/admin/crm/lead/")
    assert len(headers(page)) > 10 and len(listed(page)) == Lead.objects.count()

    # The view brings back the filter, the sort and the columns.
    page.locator("[data-view-select]").select_option(label="High priority by revenue")
    page.wait_for_url("**/admin/crm/lead/?*priority__exact=high*")
    assert headers(page) == ["expected revenue", "name", "owner"]
    assert set(listed(page)) == high_leads
    revenues = Lead.objects.filter(priority="high").order_by("-expected_revenue", "-pk")
    assert listed(page) == [lead.name for lead in revenues]
    assert page.locator("[data-view-select] option:checked").inner_text() == "High priority by revenue"
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    screenshot(page, "saved-views-restored")
