"""Issue 17 item 4 in the admin: the rule form (trigger fields, conditions and actions checked on
save with the field named), the test-on-a-record page, and the run log at a fixed query count."""

from django.urls import reverse

from crm.automation.engine import run_create
from crm.models import AutomationRule, Lead
from tests.crm.automation_helpers import database_fingerprint, rule, settle
from tests.factories import LeadFactory


def form(**overrides):
    data = {
        "name": "Urgent leads",
        "description": "",
        "model": "crm.Lead",
        "order": "100",
        "is_active": "on",
        "owner": "",
        "on_error": "continue",
        "trigger_kind": "event",
        "events": ["updated"],
        "changed_field": "priority",
        "changed_from": "",
        "changed_to": "urgent",
        "date_field": "",
        "days": "",
        "when": "after",
        "no_activity_days": "",
        "cron": "",
        "conditions": '[{"field": "rating", "op": "eq", "value": "hot"}]',
        "actions": '[{"kind": "update_fields", "params": {"values": {"source": "partner"}}}]',
    }
    data.update(overrides)
    return data


def test_a_crm_admin_adds_a_rule_with_the_form(admin_as):
    client = admin_as("crm_admin")
    page = client.get(reverse("admin:crm_automationrule_add"))
    assert page.status_code == 200 and b"changed_to" in page.content and b"Operators:" in page.content

    response = client.post(reverse("admin:crm_automationrule_add"), form())

    assert response.status_code == 302, response.context["adminform"].form.errors
    stored = AutomationRule.objects.get()
    assert stored.trigger == {"events": ["updated"], "field": "priority", "to": "urgent"}
    assert stored.conditions == {"all": [{"field": "rating", "op": "eq", "value": "hot"}]}
    assert stored.actions == [{"kind": "update_fields", "params": {"values": {"source": "partner"}}}]


def test_the_form_names_the_field_that_does_not_exist(admin_as):
    client = admin_as("crm_admin")
    response = client.post(
        reverse("admin:crm_automationrule_add"),
        form(conditions='[{"field": "ratin", "op": "eq", "value": "hot"}]', actions="[{"),
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "“ratin” does not exist on lead" in " ".join(errors["conditions"])
    assert "Not valid JSON" in " ".join(errors["actions"])
    assert not AutomationRule.objects.exists()


def test_a_time_rule_from_the_form(admin_as):
    client = admin_as("crm_admin")
    response = client.post(
        reverse("admin:crm_automationrule_add"),
        form(
            model="sales.Opportunity",
            trigger_kind="time",
            date_field="close_date",
            days="3",
            when="before",
            conditions="",
            actions="[]",
        ),
    )
    assert response.status_code == 302
    assert AutomationRule.objects.get().trigger == {"date_field": "close_date", "days": 3, "when": "before"}


def test_the_test_page_previews_without_writing_and_runs_on_request(admin_as, stages):
    lead = LeadFactory(stage=stages["New"], rating="hot", priority="low")
    the_rule = rule(
        trigger_kind="manual",
        conditions=[{"field": "rating", "op": "eq", "value": "hot"}],
        actions=[{"kind": "update_fields", "params": {"values": {"priority": "high"}}}],
    )
    client = admin_as("crm_admin")
    url = reverse("admin:crm_automationrule_test", args=[the_rule.pk])
    client.get(url)
    before = database_fingerprint()

    page = client.get(url, {"record_id": lead.pk})

    assert database_fingerprint() == before
    text = page.content.decode()
    assert "The conditions hold" in text and "Would set priority: &#x27;low&#x27; → &#x27;high&#x27;" in text
    assert client.get(url, {"record_id": "x'--"}).status_code == 200

    assert client.post(url, {"record_id": lead.pk}).status_code == 200
    settle()
    assert Lead.objects.get(pk=lead.pk).priority == "high"


def test_reps_do_not_see_rules(admin_as):
    assert admin_as("owner").get(reverse("admin:crm_automationrule_changelist")).status_code == 403


def test_the_run_log_changelist_costs_a_fixed_number_of_queries(admin_as, django_assert_max_num_queries):
    the_rule = rule(trigger_kind="manual", actions=[])
    client = admin_as("crm_admin")
    url = reverse("admin:crm_automationrun_changelist")

    def make(count, start):
        for n in range(start, start + count):
            run_create(rule=the_rule, record_id=n, trigger="manual", dedup_key=f"k{n}")

    make(2, 0)
    client.get(url)
    with django_assert_max_num_queries(60) as small:
        assert client.get(url).status_code == 200
    make(30, 10)
    with django_assert_max_num_queries(60) as large:
        assert client.get(url + "?status__exact=queued").status_code == 200
    assert len(large.captured_queries) == len(small.captured_queries)


def test_a_rule_runs_on_the_records_selected_in_the_list(admin_as, stages):
    """The manual trigger as a bulk action: each selected lead that meets the conditions gets a run."""
    client = admin_as("crm_admin")
    the_rule = rule(
        name="Mark hot",
        trigger_kind="manual",
        trigger={},
        conditions=[{"field": "rating", "op": "eq", "value": "hot"}],
        actions=[{"kind": "update_fields", "params": {"values": {"source": "partner"}}}],
    )
    hot = [LeadFactory(stage=stages["New"], rating="hot") for _ in range(2)]
    cold = LeadFactory(stage=stages["New"], rating="cold")
    selected = [lead.pk for lead in [*hot, cold]]
    changelist = reverse("admin:crm_lead_changelist")

    page = client.post(changelist, {"action": "run_automation_rule", "_selected_action": selected})
    assert page.status_code == 200 and "Run an automation rule" in page.content.decode()
    assert "Mark hot" in page.content.decode()
    done = client.post(
        changelist,
        {"action": "run_automation_rule", "_selected_action": selected, "apply": "1", "rule": the_rule.pk},
        follow=True,
    )
    settle()

    text = " ".join(str(m) for m in done.context["messages"])
    assert "2 run(s) queued; 1 record(s) skipped" in text
    assert set(Lead.objects.filter(source="partner").values_list("pk", flat=True)) == {h.pk for h in hot}


def test_a_rep_has_no_run_rule_action_and_cannot_post_it(admin_as, people, stages):
    client = admin_as("owner")
    the_rule = rule(name="Any", trigger_kind="manual", trigger={})
    lead = LeadFactory(stage=stages["New"], owner=people.users["owner"])
    changelist = reverse("admin:crm_lead_changelist")

    page = client.get(changelist)
    assert "run_automation_rule" not in page.content.decode()
    before = database_fingerprint()
    client.post(
        changelist,
        {"action": "run_automation_rule", "_selected_action": [lead.pk], "apply": "1", "rule": the_rule.pk},
    )
    assert database_fingerprint() == before
