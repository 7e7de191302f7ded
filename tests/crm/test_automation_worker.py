"""Issue 17 item 1 end to end through real components: a Celery worker on Redis relays the events,
scans the time rules, ticks the schedules and executes the runs; the webhook action calls a loopback
receiver; every trigger kind and every action kind goes through it once."""

import datetime

import pytest
from django.db import transaction
from django.utils import timezone
from rest_framework.test import APIClient
from standardwebhooks import Webhook

from activities.models import Activity
from crm import services as crm_services
from crm.actors import SYSTEM
from crm.automation.services import automation_rule_run
from crm.automation.tasks import automation_schedule_tick, automation_time_scan
from crm.messaging.services import email_template_create
from crm.models import (
    AutomationRule,
    AutomationRun,
    Lead,
    Notification,
    NotificationKind,
    RunStatus,
    SequenceEnrollment,
)
from crm.sequences.services import sequence_create
from sales import services as sales_services
from sales.models import Opportunity
from tests.backbone import wait_until, worker_start
from tests.crm.automation_helpers import rule
from tests.factories import LeadFactory, OpportunityFactory, TagFactory, UserFactory

pytestmark = [pytest.mark.celery_worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def worker(tmp_path, broker, webhook_settings):
    worker = worker_start(tmp_path, CRM_AUTOMATION_RETRY_SECONDS="1,1")
    yield worker
    worker.kill()


def run_of(the_rule, timeout=40.0) -> AutomationRun:
    return wait_until(
        lambda: AutomationRun.objects.filter(
            rule=the_rule, status__in=[RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.STOPPED]
        ).first(),
        timeout=timeout,
    )


def test_an_event_rule_runs_every_crm_action_in_order_through_the_worker(stages, receiver, worker):
    rep, boss = UserFactory(username="rep"), UserFactory(username="boss")
    vip, cold = TagFactory(name="VIP"), TagFactory(name="Cold")
    the_rule = rule(
        name="New lead playbook",
        trigger={"events": ["created"]},
        conditions=[{"field": "source", "op": "eq", "value": "website"}],
        actions=[
            {"kind": "update_fields", "params": {"values": {"priority": "urgent"}}},
            {"kind": "assign_owner", "params": {"user_id": rep.pk}},
            {"kind": "add_tags", "params": {"tag_ids": [vip.pk]}},
            {"kind": "remove_tags", "params": {"tag_ids": [cold.pk]}},
            {"kind": "move_stage", "params": {"stage_id": stages["Qualified"].pk}},
            {"kind": "create_activity", "params": {"subject": "Call {{ record.name }}", "due_in_days": 1}},
            {"kind": "notify", "params": {"user_ids": [boss.pk], "title": "New: {{ record.name }}"}},
            {
                "kind": "call_webhook",
                "params": {
                    "url": receiver.url("/ok"),
                    "body": {"lead": "{{ record.name }}", "rule": "{{ rule.name }}"},
                },
            },
            {"kind": "create_opportunity", "params": {"opportunity_name": "Deal for {{ record.name }}"}},
            {"kind": "stop", "params": {}},
            {"kind": "update_fields", "params": {"values": {"description": "never"}}},
        ],
    )
    with transaction.atomic():  # the event is relayed on commit: the worker sees the lead with its tag
        lead = crm_services.lead_create(user=SYSTEM, data={"name": "Acme", "source": "website"})
        lead.tags.add(cold)
    crm_services.lead_create(user=SYSTEM, data={"name": "Not from the site", "source": "referral"})

    run = run_of(the_rule)

    assert run.status == RunStatus.SUCCEEDED, (run.outcomes, worker.output()[-3000:])
    assert [o["status"] for o in run.outcomes] == ["ok"] * 9 + ["stopped", "not_run"]
    assert run.trigger == "lead.created" and run.record_id == lead.pk
    assert AutomationRun.objects.filter(rule=the_rule).count() == 1  # the referral lead did not match
    lead = Lead.objects.get(pk=lead.pk)
    assert (lead.priority, lead.owner, lead.status) == ("urgent", rep, "converted")
    assert list(lead.tags.values_list("name", flat=True)) == ["VIP"]
    assert lead.description == ""
    (task,) = Activity.objects.filter(lead=lead)
    assert task.subject == "Call Acme" and task.owner == rep and task.activity_type == "task"
    assert Notification.objects.get(recipient=boss, kind=NotificationKind.AUTOMATION).title == "New: Acme"
    (request,) = receiver.wait_for(1)
    secret = the_rule.actions[7]["params"]["secret"]
    assert Webhook(secret).verify(request.body, request.headers) == {
        "lead": "Acme",
        "rule": "New lead playbook",
    }
    assert Opportunity.objects.get(lead=lead).name == "Deal for Acme"


def test_an_opportunity_rule_moves_the_deal_when_its_stage_changes_to_b(stages, worker):
    deal = OpportunityFactory(stage=stages["New"], amount=100)
    the_rule = rule(
        model="sales.Opportunity",
        trigger={"events": ["stage_changed"], "field": "stage", "to": stages["Qualified"].pk},
        actions=[{"kind": "move_stage", "params": {"stage_id": stages["Proposal"].pk}}],
    )
    sales_services.opportunity_move_stage(opportunity=deal, stage=stages["Qualified"], user=SYSTEM)

    run = run_of(the_rule)

    assert run.status == RunStatus.SUCCEEDED, run.outcomes
    assert Opportunity.objects.get(pk=deal.pk).stage == stages["Proposal"]
    # Its own move (to Proposal) is a stage change too: it did not trigger the rule again.
    assert AutomationRun.objects.filter(rule=the_rule).count() == 1


def test_a_time_rule_fires_from_the_periodic_scan_in_the_worker(stages, worker):
    today = timezone.localdate()
    due = OpportunityFactory(stage=stages["New"], close_date=today + datetime.timedelta(days=3))
    OpportunityFactory(stage=stages["New"], close_date=today + datetime.timedelta(days=9))
    the_rule = rule(
        model="sales.Opportunity",
        trigger_kind="time",
        trigger={"date_field": "close_date", "days": 3, "when": "before"},
        actions=[{"kind": "update_fields", "params": {"values": {"priority": "urgent"}}}],
    )

    automation_time_scan.apply_async(retry=False)
    run = run_of(the_rule)
    automation_time_scan.apply_async(retry=False)  # a second beat: nothing more

    assert run.status == RunStatus.SUCCEEDED and run.record_id == due.pk and run.trigger == "time"
    assert Opportunity.objects.get(pk=due.pk).priority == "urgent"
    wait_until(lambda: AutomationRule.objects.get(pk=the_rule.pk).last_scanned_at > run.created_at)
    assert AutomationRun.objects.filter(rule=the_rule).count() == 1


def test_a_schedule_rule_runs_over_the_matching_records_when_its_cron_falls_due(stages, worker):
    hot = LeadFactory(stage=stages["New"], rating="hot")
    LeadFactory(stage=stages["New"], rating="cold")
    the_rule = rule(
        trigger_kind="schedule",
        trigger={"cron": "*/5 * * * *"},
        conditions=[{"field": "rating", "op": "eq", "value": "hot"}],
        actions=[{"kind": "update_fields", "params": {"values": {"priority": "high"}}}],
    )
    AutomationRule.objects.filter(pk=the_rule.pk).update(
        last_scanned_at=timezone.now() - datetime.timedelta(minutes=6)
    )

    automation_schedule_tick.apply_async(retry=False)
    run = run_of(the_rule)

    assert run.status == RunStatus.SUCCEEDED and run.record_id == hot.pk and run.trigger == "schedule"
    assert Lead.objects.get(pk=hot.pk).priority == "high"
    assert AutomationRun.objects.filter(rule=the_rule).count() == 1


def test_an_inbound_webhook_and_a_manual_run_go_through_the_worker(stages, worker):
    admin = UserFactory(username="root", is_superuser=True, is_staff=True)
    lead = LeadFactory(stage=stages["New"], priority="low")
    hook = rule(
        name="From the form tool",
        trigger_kind="webhook",
        actions=[{"kind": "update_fields", "params": {"values": {"rating": "warm"}}}],
    )
    manual = rule(
        name="Escalate",
        trigger_kind="manual",
        actions=[{"kind": "update_fields", "params": {"values": {"priority": "urgent"}}}],
    )
    anonymous, api = APIClient(), APIClient()
    api.force_authenticate(admin)
    url = api.get(f"/api/v1/crm/automations/{hook.pk}/").json()["webhook_url"]

    refused = anonymous.post(url.replace("token=", "token=x"), {"record_id": lead.pk}, format="json")
    answer = anonymous.post(url, {"record_id": lead.pk}, format="json", headers={"webhook-id": "msg_1"})
    again = anonymous.post(url, {"record_id": lead.pk}, format="json", headers={"webhook-id": "msg_1"})
    manual_answer = api.post(
        f"/api/v1/crm/automations/{manual.pk}/run/", {"record_ids": [lead.pk]}, format="json"
    )

    assert refused.status_code == 404
    assert answer.status_code == 202 and answer.json()["matched"] is True
    assert again.status_code == 202 and again.json() == {"matched": False, "run_id": None}  # ran once
    assert manual_answer.status_code == 202 and manual_answer.json()["queued"] == 1
    assert run_of(hook).status == RunStatus.SUCCEEDED and run_of(manual).status == RunStatus.SUCCEEDED
    lead = Lead.objects.get(pk=lead.pk)
    assert (lead.rating, lead.priority) == ("warm", "urgent")
    assert run_of(hook).trigger == "webhook" and run_of(manual).trigger == "manual"


def test_a_failing_action_is_recorded_and_retried_and_the_rest_follow_the_rule(stages, receiver, worker):
    lead = LeadFactory(stage=stages["New"], priority="low")
    the_rule = rule(
        trigger_kind="manual",
        on_error="continue",
        actions=[
            {
                "kind": "call_webhook",
                "params": {"url": receiver.url("/fail"), "body": {"id": "{{ record.id }}"}},
            },
            {"kind": "update_fields", "params": {"values": {"priority": "high"}}},
        ],
    )
    stopping = rule(
        name="Stops on error",
        trigger_kind="manual",
        on_error="stop",
        actions=[
            {"kind": "call_webhook", "params": {"url": receiver.url("/fail"), "body": {}}},
            {"kind": "update_fields", "params": {"values": {"rating": "hot"}}},
        ],
    )
    with transaction.atomic():
        automation_rule_run(rule=the_rule, record_ids=[lead.pk], user=SYSTEM)
        automation_rule_run(rule=stopping, record_ids=[lead.pk], user=SYSTEM)

    run = run_of(the_rule)
    stopped = run_of(stopping)

    # Three attempts (the first and two retries, CRM_AUTOMATION_RETRY_SECONDS=1,1), the same webhook-id.
    assert run.status == RunStatus.FAILED and run.attempts == 3
    assert run.outcomes[0]["status"] == "failed" and "answered 500" in run.outcomes[0]["error"]
    assert run.outcomes[0]["attempts"] == 3
    assert run.outcomes[1] == {**run.outcomes[1], "status": "ok", "attempts": 1}  # ran once, not again
    assert stopped.status == RunStatus.FAILED and stopped.outcomes[1]["status"] == "not_run"
    lead = Lead.objects.get(pk=lead.pk)
    assert lead.priority == "high" and lead.rating != "hot"
    ids = {r.headers["webhook-id"] for r in receiver.requests if r.path == "/fail"}
    assert len(ids) == 2 and len(receiver.requests) == 6


def test_the_outreach_actions_email_and_enroll_through_the_worker(stages, smtp_server, start_worker):
    """ "Send a templated email" and "enroll in a sequence", executed by the worker: the message reaches
    the SMTP server on loopback; the enrollment's first step (a task) is written by the worker too."""
    welcome = email_template_create(
        user=SYSTEM, data={"name": "Welcome", "subject": "Hello {{ lead.name }}", "body_html": "<p>Hi</p>"}
    )
    sequence = sequence_create(
        user=SYSTEM,
        data={"name": "Nurture"},
        steps=[{"position": 1, "kind": "task", "task_subject": "Call them"}],
    )
    the_rule = rule(
        trigger={"events": ["created"]},
        actions=[
            {"kind": "send_email", "params": {"template_id": welcome.pk}},
            {"kind": "enroll_sequence", "params": {"sequence_id": sequence.pk}},
        ],
    )
    start_worker()

    lead = crm_services.lead_create(user=SYSTEM, data={"name": "Road Runner", "email": "beep@runner.example"})

    run = run_of(the_rule)
    assert run.status == RunStatus.SUCCEEDED, run.outcomes
    (message,) = smtp_server.wait_for(1)
    assert (message["To"], message["Subject"]) == ("beep@runner.example", "Hello Road Runner")
    enrollment = SequenceEnrollment.objects.get(sequence=sequence, lead=lead)
    wait_until(lambda: Activity.objects.filter(lead=lead, activity_type="task").exists(), timeout=40.0)
    enrollment.refresh_from_db()
    assert enrollment.status == "completed"


def test_a_quiet_deal_fires_its_time_rule_in_the_worker(stages, worker):
    quiet = OpportunityFactory(stage=stages["New"])
    the_rule = rule(
        model="sales.Opportunity",
        trigger_kind="time",
        trigger={"no_activity_days": 7},
        actions=[{"kind": "update_fields", "params": {"values": {"priority": "urgent"}}}],
    )
    Opportunity.objects.filter(pk=quiet.pk).update(created_at=timezone.now() - datetime.timedelta(days=8))
    AutomationRule.objects.filter(pk=the_rule.pk).update(
        last_scanned_at=timezone.now() - datetime.timedelta(days=2)
    )

    automation_time_scan.apply_async(retry=False)

    run = run_of(the_rule)
    assert run.status == RunStatus.SUCCEEDED and run.record_id == quiet.pk
    assert Opportunity.objects.get(pk=quiet.pk).priority == "urgent"
