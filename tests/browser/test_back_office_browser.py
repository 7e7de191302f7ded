"""A sales rep works the back office in a real Chromium: dashboard, boards, convert, win, forecast."""

import re

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from crm.actors import SYSTEM
from crm.models import Lead, LeadStatus, Stage
from crm.services import lead_mark_lost
from sales.models import Opportunity, OpportunityStatus
from tests.browser.conftest import PASSWORD, screenshot

pytestmark = pytest.mark.browser

NORTHWIND = "Northwind Traders – website inquiry"  # demo lead in Sales Pipeline › New, 18,000.00
SUMMIT = "Summit Realty – CRM migration"  # demo lead in Sales Pipeline › New, 5,000.00


@pytest.fixture
def demo(transactional_db):
    call_command("loaddata", "demo", verbosity=0)


def column(page, stage_name: str):
    stage = Stage.objects.get(pipeline__is_default=True, name=stage_name)
    return page.locator(f'.kanban-column[data-stage-id="{stage.pk}"]')


def current_tab(page, nav_label: str):
    return page.locator(f'nav.crm-tabs[aria-label="{nav_label}"] a[aria-current=page]')


def card(page, lead: Lead):
    return page.locator(f'[data-card][data-id="{lead.pk}"]')


def test_dashboard_shows_the_demo_figures_and_its_charts(demo, logged_in_page):
    page = logged_in_page
    page.goto("/admin/")

    kpis = {
        name: " ".join(page.locator(f'[data-kpi="{name}"]').inner_text().split())
        for name in ("total-leads", "open-opportunities", "won-opportunities", "conversion-rate")
    }
    assert kpis["total-leads"].upper() == "TOTAL LEADS 5"
    assert kpis["open-opportunities"].upper() == "OPEN OPPORTUNITIES 3 $334K"
    assert kpis["won-opportunities"].upper() == "WON DEALS 1 $72K"
    assert kpis["conversion-rate"].upper().startswith("LEAD CONVERSION RATE 0.00%")

    # The pipeline chart is drawn: one bar per stage of both demo pipelines, with real width.
    chart = page.locator("#pipeline-distribution svg.crm-chart").first
    assert chart.is_visible()
    bars = page.locator("#pipeline-distribution svg.crm-chart rect")
    assert bars.count() == 12
    widest = max(bars.nth(i).bounding_box()["width"] for i in range(bars.count()))
    assert widest > 100
    assert page.locator("#conversion-funnel svg.crm-funnel").is_visible()
    # The app list is still there for everything else.
    assert page.locator("#content-related .app-crm").is_visible()
    screenshot(page, "dashboard")

    page.click(".crm-shortcuts >> text=Leads board")
    page.wait_for_url("**/admin/crm/lead/board/")


def test_drag_a_lead_to_another_stage(demo, logged_in_page):
    page = logged_in_page
    page.goto("/admin/crm/lead/board/")
    lead = Lead.objects.get(name=NORTHWIND)
    new, qualified = column(page, "New"), column(page, "Qualified")
    assert new.locator("[data-total]").inner_text() == "$23K"
    assert qualified.locator("[data-total]").inner_text() == "$42K"
    screenshot(page, "leads-board")

    page.drag_and_drop(
        f'[data-card][data-id="{lead.pk}"]', f"{column_selector(lead, 'Qualified')} [data-cards]"
    )

    page.wait_for_selector(".kanban-messages li.success")
    assert "moved to Qualified" in page.locator(".kanban-messages").inner_text()
    assert qualified.locator(f'[data-card][data-id="{lead.pk}"]').count() == 1
    assert (new.locator("[data-count]").inner_text(), new.locator("[data-total]").inner_text()) == (
        "1",
        "$5K",
    )
    assert (
        qualified.locator("[data-count]").inner_text(),
        qualified.locator("[data-total]").inner_text(),
    ) == (
        "2",
        "$60K",
    )
    lead.refresh_from_db()
    assert (lead.stage.name, lead.probability) == ("Qualified", 25)
    screenshot(page, "leads-board-after-move")


def column_selector(lead: Lead, stage_name: str) -> str:
    stage = Stage.objects.get(pipeline=lead.pipeline, name=stage_name)
    return f'.kanban-column[data-stage-id="{stage.pk}"]'


def test_a_refused_move_puts_the_card_back_and_says_why(demo, logged_in_page):
    page = logged_in_page
    page.goto("/admin/crm/lead/board/")
    lead = Lead.objects.get(name=SUMMIT)
    # Someone else closes the lead while this board is open: the service refuses the move.
    lead_mark_lost(lead=lead, user=SYSTEM)

    page.drag_and_drop(
        f'[data-card][data-id="{lead.pk}"]', f"{column_selector(lead, 'Proposal')} [data-cards]"
    )

    error = page.locator(".kanban-messages li.error")
    error.wait_for()
    assert "This lead is already lost" in error.inner_text()
    assert column(page, "New").locator(f'[data-card][data-id="{lead.pk}"]').count() == 1
    assert column(page, "Proposal").locator(f'[data-card][data-id="{lead.pk}"]').count() == 0
    assert column(page, "Proposal").locator("[data-count]").inner_text() == "1"
    lead.refresh_from_db()
    assert (lead.status, lead.stage.name) == (LeadStatus.LOST, "Lost")
    screenshot(page, "leads-board-refused-move")

    # On a fresh board the closed card is locked: dragging it does nothing.
    page.reload()
    locked = card(page, lead)
    assert locked.get_attribute("draggable") == "false"
    page.drag_and_drop(f'[data-card][data-id="{lead.pk}"]', f"{column_selector(lead, 'New')} [data-cards]")
    assert column(page, "Lost").locator(f'[data-card][data-id="{lead.pk}"]').count() == 1
    assert page.locator(".kanban-messages li").count() == 0


def test_convert_a_lead_through_its_page(demo, logged_in_page):
    page = logged_in_page
    lead = Lead.objects.get(name=NORTHWIND)
    page.goto(f"/admin/crm/lead/{lead.pk}/change/")
    screenshot(page, "lead-change-page")
    page.click(".object-tools >> text=Convert")
    page.wait_for_url(f"**/admin/crm/lead/{lead.pk}/convert/")
    assert page.get_by_text("Create the account “Northwind Traders”").is_visible()
    page.fill("#id_opportunity_name", "Northwind – web shop")
    page.fill("#id_amount", "21000")
    page.fill("#id_close_date", "2027-03-31")
    screenshot(page, "lead-convert")

    page.click("input[type=submit][value=Convert]")

    page.wait_for_url(re.compile(r".*/convert/done/\?account=created&contact=created$"))
    assert page.locator(".messagelist .success").is_visible()
    opportunity = Opportunity.objects.get(lead=lead)
    assert (opportunity.name, str(opportunity.amount), str(opportunity.close_date)) == (
        "Northwind – web shop",
        "21000.00",
        "2027-03-31",
    )
    lead.refresh_from_db()
    assert lead.status == LeadStatus.CONVERTED
    assert lead.converted_account.name == "Northwind Traders"
    screenshot(page, "lead-converted")
    page.click('[data-outcome="opportunity"] a')
    page.wait_for_url(f"**/admin/sales/opportunity/{opportunity.pk}/change/")


def test_mark_an_opportunity_won(demo, logged_in_page):
    page = logged_in_page
    deal = Opportunity.objects.get(name="Acme Corp – annual renewal")
    page.goto(f"/admin/sales/opportunity/{deal.pk}/change/")
    screenshot(page, "opportunity-change-page")

    page.click(".object-tools button:has-text('Mark won')")

    page.wait_for_url(f"**/admin/sales/opportunity/{deal.pk}/change/")
    assert "is won" in page.locator(".messagelist .success").inner_text()
    deal.refresh_from_db()
    assert (deal.status, deal.stage.name, deal.probability) == (OpportunityStatus.WON, "Won", 100)
    assert page.locator(".object-tools button:has-text('Mark won')").count() == 0
    screenshot(page, "opportunity-won")


def test_open_the_forecast(demo, logged_in_page):
    page = logged_in_page
    page.goto("/admin/sales/opportunity/forecast/")
    totals = page.locator('#forecast-table tr[data-group="total"]')
    assert " ".join(totals.inner_text().split()) == ("Total 3 $334,000 $179,000 1 $72,000")
    assert page.locator("#forecast-chart svg.crm-chart rect").count() == 12  # 4 months × 3 series
    screenshot(page, "forecast")

    page.click(".crm-tabs >> text=Stage")
    page.wait_for_url("**group_by=stage")
    assert page.locator("#forecast-table").get_by_text("Enterprise Deals › Proof of Concept").is_visible()
    screenshot(page, "forecast-by-stage")


def test_open_the_calendar(demo, logged_in_page):
    page = logged_in_page
    page.goto("/admin/activities/activity/calendar/?date=2026-11-01")
    assert page.locator("h1").inner_text() == "November 2026"
    # The demo activities belong to nobody: a login that owns none sees everyone's, and says so.
    assert page.locator("[data-calendar-everyone]").is_visible()
    assert page.locator(".crm-cal-item").count() > 0
    # Each tab is a link: wait for the page it opens (its tab current) before reading the calendar.
    page.click(".crm-tabs >> text=Mine")
    expect(current_tab(page, "Whose activities")).to_have_text("Mine")
    expect(page.locator(".crm-cal-item")).to_have_count(0)

    page.click(".crm-tabs >> text=Everyone")
    expect(current_tab(page, "Whose activities")).to_have_text("Everyone")
    item = page.locator(".crm-cal-item", has_text="Discovery call with Laura")
    expect(item).to_be_visible()
    on_the_24th = page.locator('td[data-date="2026-11-24"]')
    expect(on_the_24th.get_by_text("Discovery call with Laura")).to_be_visible()
    screenshot(page, "calendar-month")

    page.click(".crm-tabs >> text=Week")
    expect(current_tab(page, "View")).to_have_text("Week")
    this_week = page.locator("h1").inner_text()
    page.click("text=Next ›")
    expect(page.locator("h1")).not_to_have_text(this_week)
    expect(page.locator("h1")).to_have_text(re.compile(r"^Week of"))
    screenshot(page, "calendar-week")
    item = page.locator(".crm-cal-item a").first
    item.click()
    page.wait_for_url(re.compile(r".*/admin/activities/activity/\d+/change/"))


def test_reorder_pipeline_stages_by_dragging(demo, logged_in_page):
    page = logged_in_page
    pipeline = Stage.objects.get(name="Discovery").pipeline
    page.goto(f"/admin/crm/pipeline/{pipeline.pk}/change/")
    assert page.locator("#stages-group .crm-drag-handle").count() == 7  # six stages and the empty row

    page.locator("#stages-2 .crm-drag-handle").drag_to(
        page.locator("#stages-0"), target_position={"x": 40, "y": 4}
    )
    assert page.locator("#stages-2 input[name$='-sequence']").input_value() == "0"
    screenshot(page, "pipeline-settings")
    page.click("input[name=_save]")

    page.wait_for_url("**/admin/crm/pipeline/")
    names = list(pipeline.stages.order_by("sequence", "id").values_list("name", flat=True))
    assert names[:3] == ["Proof of Concept", "Discovery", "Solution Design"]


def test_dark_mode_pages(demo, browser, live_server, staff_user):
    context = browser.new_context(
        viewport={"width": 1400, "height": 900}, base_url=live_server.url, color_scheme="dark"
    )
    page = context.new_page()
    page.goto("/admin/login/")
    page.fill("#id_username", staff_user.username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/")
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background != "rgb(255, 255, 255)"
    screenshot(page, "dashboard-dark")
    page.goto("/admin/crm/lead/board/")
    screenshot(page, "leads-board-dark")
    context.close()


def test_a_long_column_loads_more_cards_on_demand(demo, logged_in_page):
    from tests.factories import LeadFactory

    new = Stage.objects.get(pipeline__is_default=True, name="New")
    for i in range(25):
        LeadFactory(name=f"Inbound {i:02}", pipeline=new.pipeline, stage=new, expected_revenue=100)
    page = logged_in_page
    page.goto("/admin/crm/lead/board/")
    cards = column(page, "New").locator("[data-card]")
    assert cards.count() == 20
    assert column(page, "New").locator("[data-count]").inner_text() == "27"

    column(page, "New").locator("[data-load-more]").click()

    page.wait_for_function(
        f"document.querySelectorAll('[data-stage-id=\"{new.pk}\"] [data-card]').length === 27"
    )
    assert column(page, "New").locator("[data-load-more]").count() == 0
    ids = [cards.nth(i).get_attribute("data-id") for i in range(cards.count())]
    assert len(set(ids)) == 27
    screenshot(page, "leads-board-load-more")
