"""A CRM admin builds a rule in a real browser: condition rows whose fields, operators and values follow
the chosen model, action rows whose inputs follow the chosen kind, rows added and removed (issue 17
item 4; the script is crm/static/crm/automation_rule_form.js)."""

import pytest

from crm.models import AutomationRule
from tests.browser.conftest import screenshot
from tests.factories import TagFactory

pytestmark = pytest.mark.browser


def options(page, selector):
    return page.locator(selector).evaluate("el => Array.from(el.options).map(o => o.value)")


def test_a_rule_is_built_row_by_row(logged_in_page):
    vip = TagFactory(name="VIP")
    page = logged_in_page
    page.goto("/admin/crm/automationrule/add/")
    page.fill("#id_name", "Hot leads get VIP")
    page.select_option("#id_model", "crm.Lead")
    page.select_option("#id_trigger_kind", "manual")

    conditions = page.locator('.rule-rows[data-rows="conditions"]')
    conditions.get_by_role("button", name="Add a condition").click()
    first = conditions.locator(".rule-row").nth(0)
    first.locator(".rule-field").select_option("rating")
    # A choice field: no ordering operators, its choices as the value's list.
    assert "gt" not in options(page, '[name="conditions-0-op"]')
    first.locator(".rule-value").select_option("hot")

    conditions.get_by_role("button", name="Add a condition").click()
    second = conditions.locator(".rule-row").nth(1)
    second.locator(".rule-field").select_option("expected_revenue")
    assert "gte" in options(page, '[name="conditions-1-op"]')
    second.locator(".rule-op").select_option("is_empty")
    assert second.locator(".rule-value").is_disabled()
    second.get_by_role("button", name="Remove").click()
    assert conditions.locator(".rule-row").count() == 1

    # Another model: its own fields (and back).
    page.select_option("#id_model", "sales.Opportunity")
    assert "close_date" in options(page, '[name="conditions-0-field"]')
    page.select_option("#id_model", "crm.Lead")
    first.locator(".rule-field").select_option("rating")
    first.locator(".rule-value").select_option("hot")

    actions = page.locator('.rule-rows[data-rows="actions"]')
    actions.get_by_role("button", name="Add an action").click()
    action = actions.locator(".rule-row").nth(0)
    action.locator(".rule-kind").select_option("add_tags")
    action.locator('[name="actions-0-add_tags-tag_ids"]').fill(str(vip.pk))
    screenshot(page, "automation-rule-rows")
    page.click("input[name=_save]")
    page.wait_for_load_state()
    assert page.locator(".errorlist").all_inner_texts() == []
    page.wait_for_url("**/admin/crm/automationrule/")

    stored = AutomationRule.objects.get(name="Hot leads get VIP")
    assert stored.conditions == {"all": [{"field": "rating", "op": "eq", "value": "hot"}]}
    assert stored.actions == [{"kind": "add_tags", "params": {"tag_ids": [vip.pk]}}]
