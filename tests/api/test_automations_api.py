"""Issue 17 items 1 and 4 in the API: rules created, checked and listed at /api/v1/crm/automations/,
their runs, the test on a record that changes nothing, who may use them, fixed query counts."""

import pytest

from crm.automation.engine import run_create
from crm.models import AutomationRule, AutomationRun
from tests.crm.automation_helpers import database_fingerprint, rule, settle
from tests.factories import LeadFactory, TagFactory

URL = "/api/v1/crm/automations/"


def test_a_crm_admin_creates_a_rule_and_reads_it_back(api_as, people):
    tag = TagFactory(name="Hot")
    body = {
        "name": "Hot leads",
        "model": "crm.Lead",
        "trigger_kind": "event",
        "trigger": {"events": ["updated"], "field": "rating", "to": "hot"},
        "conditions": {"all": [{"field": "priority", "op": "in", "value": ["high", "urgent"]}]},
        "actions": [{"kind": "add_tags", "params": {"tag_ids": [tag.pk]}}],
        "on_error": "stop",
        "order": 10,
    }

    response = api_as("crm_admin").post(URL, body, format="json")

    assert response.status_code == 201, response.json()
    data = response.json()
    assert data["trigger"] == body["trigger"] and data["actions"] == body["actions"]
    assert data["conditions"] == body["conditions"] and data["webhook_url"] is None
    assert data["owner_id"] is None  # acts as the system unless an owner is named
    stored = AutomationRule.objects.get(pk=data["id"])
    assert (stored.on_error, stored.order, stored.is_active) == ("stop", 10, True)


def test_a_rule_naming_a_field_that_does_not_exist_is_a_400_naming_the_field_and_operator(api_as, people):
    body = {
        "name": "Broken",
        "model": "sales.Opportunity",
        "trigger_kind": "event",
        "trigger": {"events": ["created"]},
        "conditions": [
            {"field": "account__industy", "op": "eq", "value": "technology"},
            {"field": "amount", "op": "contains", "value": "5"},
        ],
        "actions": [],
    }

    response = api_as("crm_admin").post(URL, body, format="json")

    assert response.status_code == 400
    messages = response.json()["conditions"]
    assert any("“industy” does not exist on account (in “account__industy”)" in m for m in messages)
    assert any("The operator “contains” does not apply to the field “amount”" in m for m in messages)
    assert not AutomationRule.objects.exists()


def test_a_webhook_rule_gets_its_secret_url(api_as, people):
    response = api_as("crm_admin").post(
        URL, {"name": "Form", "model": "crm.Lead", "trigger_kind": "webhook", "actions": []}, format="json"
    )
    rule_id = response.json()["id"]
    token = AutomationRule.objects.get(pk=rule_id).webhook_token
    assert len(token) >= 40
    assert response.json()["webhook_url"] == f"/api/v1/crm/automations/{rule_id}/inbound/?token={token}"


@pytest.mark.parametrize("persona", ["owner", "manager", "outsider"])
def test_only_crm_admins_manage_rules(api_as, people, persona):
    client = api_as(persona)
    assert client.get(URL).status_code == 403
    assert (
        client.post(
            URL, {"name": "x", "model": "crm.Lead", "trigger_kind": "manual"}, format="json"
        ).status_code
        == 403
    )
    assert not AutomationRule.objects.exists()


def test_the_test_on_a_record_answers_what_would_happen_and_writes_nothing(api_as, people, stages):
    lead = people.records["owner"].lead
    the_rule = rule(
        trigger={"events": ["updated"]},
        conditions=[{"field": "owner__username", "op": "eq", "value": "owner"}],
        actions=[
            {"kind": "update_fields", "params": {"values": {"priority": "urgent"}}},
            {"kind": "create_activity", "params": {"subject": "Follow up", "due_in_days": 3}},
        ],
    )
    client = api_as("crm_admin")
    before = database_fingerprint()

    response = client.post(f"{URL}{the_rule.pk}/test/", {"record_id": lead.pk}, format="json")

    assert database_fingerprint() == before
    assert response.status_code == 200
    assert response.json() == {
        "rule_id": the_rule.pk,
        "record_id": lead.pk,
        "matches": True,
        "conditions": [
            {
                "condition": "owner__username equals 'owner'",
                "field": "owner__username",
                "op": "eq",
                "matches": True,
            }
        ],
        "actions": [
            {
                "index": 0,
                "kind": "update_fields",
                "would": f"Would set priority: '{lead.priority}' → 'urgent'",
            },
            {
                "index": 1,
                "kind": "create_activity",
                "would": "Would create a task “Follow up” due in 3 days, owned by owner",
            },
        ],
    }
    missing = client.post(f"{URL}{the_rule.pk}/test/", {"record_id": 10**9}, format="json")
    assert missing.status_code == 400 and "record_id" in missing.json()


def test_runs_are_listed_per_rule_and_filtered_by_status(api_as, people, stages):
    the_rule = rule(
        trigger_kind="manual", actions=[{"kind": "update_fields", "params": {"values": {"rating": "hot"}}}]
    )
    client = api_as("crm_admin")
    lead = LeadFactory(stage=stages["New"])
    assert (
        client.post(f"{URL}{the_rule.pk}/run/", {"record_ids": [lead.pk]}, format="json").status_code == 202
    )
    settle()

    runs = client.get(f"{URL}{the_rule.pk}/runs/").json()
    failed = client.get(f"{URL}runs/?status=failed").json()

    (run,) = runs["results"]
    assert run["status"] == "succeeded" and run["trigger"] == "manual" and run["record_id"] == lead.pk
    assert run["outcomes"][0]["status"] == "ok" and run["outcomes"][0]["detail"] == "Set rating = 'hot'"
    assert failed["count"] == 0
    assert client.get(f"{URL}runs/{run['id']}/").json()["rule_name"] == the_rule.name


def test_the_run_log_costs_a_fixed_number_of_queries(api_as, people, stages, django_assert_max_num_queries):
    the_rule = rule(trigger_kind="manual", actions=[])
    client = api_as("crm_admin")

    def make(count, start):
        for n in range(start, start + count):
            run_create(rule=the_rule, record_id=n, trigger="manual", dedup_key=f"k{n}")

    make(2, 0)
    client.get(f"{URL}runs/")
    with django_assert_max_num_queries(8) as small:
        assert client.get(f"{URL}runs/").status_code == 200
    make(20, 10)
    with django_assert_max_num_queries(8) as large:
        assert len(client.get(f"{URL}runs/").json()["results"]) == 22
    assert len(large.captured_queries) == len(small.captured_queries)
    with django_assert_max_num_queries(8):
        assert client.get(URL).status_code == 200
    assert AutomationRun.objects.count() == 22


def test_a_hostile_inbound_url_is_a_404_never_a_500(client, stages):
    """Found by the schema fuzzing on PostgreSQL: a NUL byte in the token reached the database (500)."""
    the_rule = rule(
        trigger_kind="webhook",
        trigger={},
        actions=[{"kind": "update_fields", "params": {"values": {"rating": "warm"}}}],
    )
    lead = LeadFactory(stage=stages["New"])
    good = f"{URL}{the_rule.pk}/inbound/?token={the_rule.webhook_token}"

    for url in (
        f"{URL}{the_rule.pk}/inbound/?token=%00abc",
        f"{URL}{the_rule.pk}/inbound/?token={'a' * 65}",
        f"{URL}99999999999999999999999/inbound/?token={the_rule.webhook_token}",
    ):
        assert client.post(url, {"record_id": lead.pk}, content_type="application/json").status_code == 404, (
            url
        )
    answer = client.post(
        good, {"record_id": lead.pk}, content_type="application/json", headers={"webhook-id": "msg\x00_1"}
    )
    assert answer.status_code == 202 and answer.json()["matched"] is True
