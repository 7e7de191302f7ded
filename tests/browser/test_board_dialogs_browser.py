"""Board dialogs in Chromium: lose with a required reason, convert on Won, drag by touch, quick add."""

import pytest
from django.core.management import call_command

from crm.models import Lead, LeadStatus, LostReason, Pipeline, Stage
from sales.models import Opportunity
from tests.browser.conftest import PASSWORD, screenshot

pytestmark = pytest.mark.browser

NORTHWIND = "Northwind Traders – website inquiry"  # demo lead in Sales Pipeline › New


@pytest.fixture
def demo(transactional_db):
    call_command("loaddata", "demo", verbosity=0)


def column_of(page, lead: Lead, stage_name: str):
    stage = Stage.objects.get(pipeline=lead.pipeline, name=stage_name)
    return page.locator(f'.kanban-column[data-stage-id="{stage.pk}"]')


def drag(page, lead: Lead, stage_name: str):
    target = column_of(page, lead, stage_name).locator("[data-cards]")
    page.locator(f'[data-card][data-id="{lead.pk}"]').drag_to(target)


def test_drag_to_lost_asks_for_the_required_reason(demo, logged_in_page):
    Pipeline.objects.filter(is_default=True).update(lost_reason_required=True)
    lead = Lead.objects.get(name=NORTHWIND)
    page = logged_in_page
    page.goto("/admin/crm/lead/board/")

    drag(page, lead, "Lost")

    dialog = page.locator("dialog[data-crm-dialog]")
    dialog.locator("select[name=lost_reason]").wait_for()
    assert "requires a reason" in dialog.inner_text()
    dialog.locator("[data-dialog-submit]").click()  # no reason: refused in place
    dialog.locator(".errorlist").wait_for()
    assert "This field is required" in dialog.inner_text()
    lead.refresh_from_db()
    assert lead.status == LeadStatus.OPEN
    screenshot(page, "board-lost-dialog-error")

    dialog.locator("select[name=lost_reason]").select_option(label="No budget")
    dialog.locator("textarea[name=lost_note]").fill("Budget cut for the year")
    dialog.locator("[data-dialog-submit]").click()

    page.wait_for_selector(".kanban-messages li.success")
    assert "marked lost (No budget)" in page.locator(".kanban-messages").inner_text()
    assert column_of(page, lead, "Lost").locator(f'[data-card][data-id="{lead.pk}"]').count() == 1
    assert column_of(page, lead, "Lost").locator("[data-count]").inner_text() == "1"
    lead.refresh_from_db()
    assert (lead.status, lead.lost_reason, lead.lost_note) == (
        LeadStatus.LOST,
        LostReason.objects.get(name="No budget"),
        "Budget cut for the year",
    )
    screenshot(page, "board-lost-dialog-done")


def test_cancelling_the_lost_dialog_puts_the_card_back(demo, logged_in_page):
    lead = Lead.objects.get(name=NORTHWIND)
    page = logged_in_page
    page.goto("/admin/crm/lead/board/")
    drag(page, lead, "Lost")
    page.locator("dialog[data-crm-dialog] [data-dialog-cancel]").click()
    page.wait_for_selector(".kanban-messages li.success")
    assert column_of(page, lead, "New").locator(f'[data-card][data-id="{lead.pk}"]').count() == 1
    lead.refresh_from_db()
    assert lead.status == LeadStatus.OPEN


def test_drag_a_lead_to_won_converts_it_through_the_dialog(demo, logged_in_page):
    lead = Lead.objects.get(name=NORTHWIND)
    page = logged_in_page
    page.goto("/admin/crm/lead/board/")

    drag(page, lead, "Won")

    dialog = page.locator("dialog[data-crm-dialog]")
    dialog.locator("#id_opportunity_name").wait_for()
    assert "Create the account “Northwind Traders”" in dialog.inner_text()
    dialog.locator("#id_opportunity_name").fill("Northwind – web shop")
    dialog.locator("#id_amount").fill("21000")
    dialog.locator("#id_stage").select_option(label="Sales Pipeline › Proposal")
    screenshot(page, "board-convert-dialog")
    dialog.locator("[data-dialog-submit]").click()

    page.wait_for_selector(".kanban-messages li.success")
    assert "is converted" in page.locator(".kanban-messages").inner_text()
    lead.refresh_from_db()
    assert lead.status == LeadStatus.CONVERTED
    opportunity = Opportunity.objects.get(lead=lead)
    assert (opportunity.name, str(opportunity.amount), opportunity.stage.name, opportunity.probability) == (
        "Northwind – web shop",
        "21000.00",
        "Proposal",
        opportunity.stage.probability,
    )
    assert lead.converted_account.name == "Northwind Traders"
    screenshot(page, "board-convert-dialog-done")


def test_touch_drag_moves_a_card_with_pointer_events(demo, browser, live_server, staff_user):
    context = browser.new_context(
        viewport={"width": 1280, "height": 900}, base_url=live_server.url, has_touch=True, is_mobile=False
    )
    page = context.new_page()
    page.goto("/admin/login/")
    page.fill("#id_username", staff_user.username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/")
    lead = Lead.objects.get(name=NORTHWIND)
    page.goto("/admin/crm/lead/board/")
    handle = page.locator(f'[data-card][data-id="{lead.pk}"] [data-handle]').bounding_box()
    target = column_of(page, lead, "Qualified").locator("[data-cards]").bounding_box()
    start = (handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2)
    end = (target["x"] + target["width"] / 2, target["y"] + 20)

    # A real touch through the browser's input pipeline: Chromium turns it into pointer events.
    cdp = context.new_cdp_session(page)

    def touch(kind, point):
        points = [] if kind == "touchEnd" else [{"x": point[0], "y": point[1]}]
        cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": points})

    touch("touchStart", start)
    for step in range(1, 6):
        touch(
            "touchMove",
            (start[0] + (end[0] - start[0]) * step / 5, start[1] + (end[1] - start[1]) * step / 5),
        )
    touch("touchEnd", end)

    page.wait_for_selector(".kanban-messages li.success")
    assert "moved to Qualified" in page.locator(".kanban-messages").inner_text()
    lead.refresh_from_db()
    assert lead.stage.name == "Qualified"
    screenshot(page, "board-touch-drag")
    context.close()


def test_quick_add_a_card_in_a_column(demo, logged_in_page):
    page = logged_in_page
    page.goto("/admin/crm/lead/board/")
    stage = Stage.objects.get(pipeline__is_default=True, name="Qualified")
    column = page.locator(f'.kanban-column[data-stage-id="{stage.pk}"]')
    column.locator(".kanban-quick-add summary").click()
    column.locator("input[name=name]").fill("Walk-in customer")
    column.locator("input[name=value]").fill("1500")
    column.locator("[data-quick-add] button").click()
    page.wait_for_selector(".kanban-messages li.success")
    assert column.locator(".kanban-card", has_text="Walk-in customer").count() == 1
    lead = Lead.objects.get(name="Walk-in customer")
    assert (lead.stage, str(lead.expected_revenue)) == (stage, "1500.00")
    screenshot(page, "board-quick-add")
