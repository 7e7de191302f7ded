"""Issue 17 item 4: the rule form's conditions and actions as rows that follow the chosen model, with
the JSON kept as the stored format, the service's checks, and each message on the row it names
(Django's test client posting the rows; the script that refills them is tested in tests/browser)."""

import json
import re

from django.urls import reverse

from crm.models import AutomationRule
from tests.admin.test_automation_admin import form
from tests.crm.automation_helpers import rule
from tests.factories import TagFactory


def rows_form(conditions=(), actions=(), match="all", **overrides):
    """The add form with rows: conditions as (field, op, value), actions as (kind, {param: text})."""
    data = form(**overrides)
    data["conditions"] = data["actions"] = ""
    data.update({"conditions-TOTAL": str(len(conditions)), "conditions-match": match})
    for i, (field, op, value) in enumerate(conditions):
        data.update(
            {f"conditions-{i}-field": field, f"conditions-{i}-op": op, f"conditions-{i}-value": value}
        )
    data["actions-TOTAL"] = str(len(actions))
    for i, (kind, params) in enumerate(actions):
        data[f"actions-{i}-kind"] = kind
        data.update({f"actions-{i}-{kind}-{name}": text for name, text in params.items()})
    return data


def test_the_rows_offer_the_chosen_models_fields_operators_and_actions(admin_as):
    deal_rule = rule(
        model="sales.Opportunity",
        trigger_kind="manual",
        trigger={},
        conditions=[{"field": "account__industry", "op": "eq", "value": "finance"}],
        actions=[],
    )
    client = admin_as("crm_admin")

    page = client.get(reverse("admin:crm_automationrule_change", args=[deal_rule.pk])).content.decode()

    assert "crm/automation_rule_form.js" in page and "automation-rule-catalog" in page
    row = re.search(r'<tr class="rule-row" data-index="0">.*?</tr>', page, re.S).group(0)
    assert '<option value="account__industry" selected>' in row
    assert 'value="close_date"' in row and 'value="owner__sales_teams__name"' in row
    # Operators valid for a choice field (no ordering), and its choices as the value's list.
    assert 'value="eq"' in row and 'value="gt"' not in row
    assert '<option value="finance" selected>Finance</option>' in row


def test_a_rule_is_saved_from_condition_and_action_rows(admin_as):
    vip = TagFactory(name="VIP")
    client = admin_as("crm_admin")
    data = rows_form(
        match="any",
        conditions=[
            ("rating", "eq", "hot"),
            ("expected_revenue", "gte", "1000"),
            ("priority", "in", "high, urgent"),
            ("tags", "contains", "VIP"),
            ("email", "is_empty", ""),
        ],
        actions=[
            ("add_tags", {"tag_ids": str(vip.pk)}),
            (
                "notify",
                {"record_owner": "on", "title": "Look at {{ record.name }}", "user_ids": "", "body": ""},
            ),
            ("update_fields", {"values": '{"source": "partner"}'}),
        ],
    )
    data["conditions-TOTAL"] = "7"  # rows the script removed leave their numbers unused

    response = client.post(reverse("admin:crm_automationrule_add"), data)

    assert response.status_code == 302, response.context["adminform"].form.errors
    stored = AutomationRule.objects.get()
    assert stored.conditions == {
        "any": [
            {"field": "rating", "op": "eq", "value": "hot"},
            {"field": "expected_revenue", "op": "gte", "value": 1000},
            {"field": "priority", "op": "in", "value": ["high", "urgent"]},
            {"field": "tags", "op": "contains", "value": "VIP"},
            {"field": "email", "op": "is_empty"},
        ]
    }
    assert [a["kind"] for a in stored.actions] == ["add_tags", "notify", "update_fields"]
    assert stored.actions[0]["params"] == {"tag_ids": [vip.pk]}
    assert stored.actions[1]["params"]["record_owner"] is True
    assert stored.actions[2]["params"] == {"values": {"source": "partner"}}
    # The saved rule shows as the same rows.
    page = client.get(reverse("admin:crm_automationrule_change", args=[stored.pk])).content.decode()
    assert page.count('class="rule-row"') == 8 and '<option value="any" selected>' in page


def test_each_error_is_shown_on_its_row_and_nothing_is_saved(admin_as):
    client = admin_as("crm_admin")
    data = rows_form(
        conditions=[("rating", "eq", "hot"), ("ratin", "eq", "hot"), ("name", "gt", "A")],
        actions=[("update_fields", {"values": "{not json"}), ("add_tags", {"tag_ids": "999999"})],
    )

    response = client.post(reverse("admin:crm_automationrule_add"), data)

    assert response.status_code == 200 and not AutomationRule.objects.exists()
    page = response.content.decode()
    invalid = re.findall(r'<tr class="rule-row rule-row-invalid" data-index="(\d+)">', page)
    assert invalid == ["1", "2", "0", "1"]  # conditions 1 and 2, actions 0 and 1
    errors = re.findall(r'<tr class="rule-row-errors">.*?</tr>', page, re.S)
    assert "“ratin” does not exist on lead" in errors[0]
    assert "The operator “gt” does not apply to the field “name”" in errors[1]
    assert "values: not valid JSON" in errors[2]
    assert "999999" in errors[3]
    # What was typed is kept, row by row.
    assert '<option value="ratin" selected>ratin (unknown)</option>' in page
    assert "{not json" in page


def test_nested_groups_are_edited_as_json_and_kept(admin_as):
    nested = {
        "any": [
            {"field": "rating", "op": "eq", "value": "hot"},
            {"all": [{"field": "priority", "op": "eq", "value": "high"}]},
        ]
    }
    stored = rule(trigger_kind="manual", trigger={}, conditions=nested, actions=[])
    client = admin_as("crm_admin")
    url = reverse("admin:crm_automationrule_change", args=[stored.pk])

    page = client.get(url).content.decode()
    assert "<details open>" in page and "&quot;all&quot;" in page

    data = rows_form(trigger_kind="manual", events=[], changed_field="", changed_to="")
    data["conditions"] = json.dumps(nested)
    data["conditions-0-field"], data["conditions-TOTAL"] = "source", "1"  # the box wins over rows
    assert client.post(url, data).status_code == 302
    stored.refresh_from_db()
    assert stored.conditions == nested
