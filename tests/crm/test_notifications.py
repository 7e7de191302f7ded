"""Issue 16 item 3, in this process (no broker: the relay runs after commit, as in `make run`): what
notifies whom, by which channel, once; with email to a real SMTP server on loopback."""

import datetime
import zoneinfo

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from activities import reminders
from crm import services as crm_services
from crm.models import Notification, NotificationKind, OutboxEvent
from crm.notifications import services as notification_services
from crm.notifications.consumers import record_notifier
from sales import services as sales_services
from tests.factories import ActivityFactory, LeadFactory, OpportunityFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """Run the callbacks a commit runs (the relay, the consumers, the emails) for what ``call`` does."""

    def run(call):
        with django_capture_on_commit_callbacks(execute=True):
            return call()

    return run


def mine(user, kind=None):
    rows = Notification.objects.filter(recipient=user)
    return list(rows.filter(kind=kind) if kind else rows)


def test_an_assigned_lead_notifies_its_new_owner_in_the_app_and_by_email(
    owner, teammate, manager, stages, smtp_server, committed
):
    lead = LeadFactory(name="Acme renewal", stage=stages["New"], owner=owner)

    committed(lambda: crm_services.lead_update(lead=lead, user=manager, data={"owner": teammate}))

    (notification,) = mine(teammate)
    assert (notification.kind, notification.title) == ("assigned", "Lead assigned to you: Acme renewal")
    assert notification.url == reverse("admin:crm_lead_change", args=[lead.pk])
    assert notification.in_app and notification.read_at is None and notification.emailed_at is not None
    (message,) = smtp_server.wait_for(1)
    assert message["To"] == teammate.email and message["Subject"] == notification.title
    assert mine(manager) == [] and mine(owner) == []  # only the new owner is told


def test_the_preference_decides_the_channel(owner, teammate, manager, stages, smtp_server, committed):
    notification_services.notification_preference_set(user=teammate, kind="assigned", channel="in_app")
    notification_services.notification_preference_set(user=owner, kind="assigned", channel="none")
    first = LeadFactory(stage=stages["New"], owner=owner)
    second = LeadFactory(stage=stages["New"], owner=teammate)

    committed(lambda: crm_services.lead_update(lead=first, user=manager, data={"owner": teammate}))
    committed(lambda: crm_services.lead_update(lead=second, user=manager, data={"owner": owner}))

    (notification,) = mine(teammate)
    assert notification.emailed_at is None and not notification.email
    assert mine(owner) == []  # "none": not at all
    assert OutboxEvent.objects.filter(type="lead.updated", record_id=second.pk).exists()
    assert smtp_server.received() == []


def test_email_only_is_not_in_the_bell(owner, teammate, manager, stages, smtp_server, committed, api_as):
    notification_services.notification_preference_set(user=teammate, kind="assigned", channel="email")
    lead = LeadFactory(stage=stages["New"], owner=owner)

    committed(lambda: crm_services.lead_update(lead=lead, user=manager, data={"owner": teammate}))

    assert smtp_server.wait_for(1)[0]["To"] == teammate.email
    assert api_as("teammate").get("/api/v1/crm/notifications/").json()["results"] == []


def test_a_stage_change_on_my_deal_by_someone_else_notifies_me(owner, manager, stages, committed):
    deal = OpportunityFactory(name="Big deal", stage=stages["New"], owner=owner)

    committed(
        lambda: sales_services.opportunity_move_stage(
            opportunity=deal, stage=stages["Qualified"], user=manager
        )
    )
    committed(
        lambda: sales_services.opportunity_move_stage(opportunity=deal, stage=stages["Proposal"], user=owner)
    )

    (notification,) = mine(owner, NotificationKind.STAGE_CHANGED)
    assert notification.title == "Big deal moved to Qualified"
    assert notification.url == reverse("admin:sales_opportunity_change", args=[deal.pk])


def test_a_deal_won_in_my_team_notifies_the_manager(owner, manager, outsider, stages, committed):
    deal = OpportunityFactory(name="Won deal", stage=stages["Proposal"], owner=owner, amount=500)

    committed(lambda: sales_services.opportunity_mark_won(opportunity=deal, user=owner))

    (notification,) = mine(manager, NotificationKind.TEAM_DEAL_CLOSED)
    assert notification.title == "Deal won: Won deal"
    assert mine(outsider) == [] and mine(owner, NotificationKind.TEAM_DEAL_CLOSED) == []


def test_an_event_handed_over_twice_notifies_once(owner, teammate, manager, stages, committed):
    lead = LeadFactory(stage=stages["New"], owner=owner)
    committed(lambda: crm_services.lead_update(lead=lead, user=manager, data={"owner": teammate}))
    event = OutboxEvent.objects.get(type="lead.updated")

    # The relay delivers at least once: the consumer sees the same event again.
    record_notifier(record_type="lead", noun="lead", url=lambda pk: "")([event])

    assert len(mine(teammate)) == 1


def test_the_digest_comes_at_eight_in_the_users_time_zone(owner, teammate, stages, smtp_server, committed):
    notification_services.user_time_zone_set(user=owner, time_zone="Asia/Tokyo")
    tokyo = zoneinfo.ZoneInfo("Asia/Tokyo")
    eight = datetime.datetime(2026, 3, 10, 8, 5, tzinfo=tokyo)
    lead = LeadFactory(stage=stages["New"], owner=owner)
    ActivityFactory(subject="Late call", lead=lead, owner=owner, due_date=eight - datetime.timedelta(days=2))
    ActivityFactory(subject="Lunch", lead=lead, owner=owner, due_date=eight.replace(hour=12))
    ActivityFactory(subject="Tomorrow", lead=lead, owner=owner, due_date=eight + datetime.timedelta(days=1))
    ActivityFactory(
        subject="Teammate's", lead=lead, owner=teammate, due_date=eight - datetime.timedelta(days=2)
    )
    done = eight - datetime.timedelta(days=1)
    ActivityFactory(
        subject="Done", lead=lead, owner=owner, due_date=done, status="completed", completed_at=done
    )

    with time_machine.travel(eight - datetime.timedelta(minutes=10), tick=False):
        assert committed(reminders.activity_digest_send) == 0  # 07:55 in Tokyo
    with time_machine.travel(eight, tick=False):
        assert committed(reminders.activity_digest_send) == 1
        assert committed(reminders.activity_digest_send) == 0  # once a day
    with time_machine.travel(eight + datetime.timedelta(minutes=15), tick=False):
        assert committed(reminders.activity_digest_send) == 0

    (message,) = smtp_server.wait_for(1)
    assert message["To"] == owner.email
    assert message["Subject"] == "Your activities for 2026-03-10: 1 overdue, 1 today"
    body = message.get_payload(decode=True).decode()
    assert "Late call" in body and "Lunch" in body and "Tomorrow" not in body and "Done" not in body
    # The teammate (server time zone, UTC) is at 23:05 the day before: no digest for them.
    assert mine(teammate) == []


def test_a_deal_with_no_activity_for_its_stages_days_rots(owner, stages, committed):
    stages["Qualified"].rotting_days = 7
    stages["Qualified"].save()
    now = timezone.now()
    quiet = OpportunityFactory(name="Quiet", stage=stages["Qualified"], owner=owner)
    busy = OpportunityFactory(name="Busy", stage=stages["Qualified"], owner=owner)
    never = OpportunityFactory(name="New stage", stage=stages["New"], owner=owner)
    type(quiet).objects.filter(pk__in=[quiet.pk, busy.pk, never.pk]).update(
        updated_at=now - datetime.timedelta(days=10)
    )
    ActivityFactory(opportunity=busy, owner=owner)  # an activity two days ago keeps it fresh
    ActivityFactory._meta.model.objects.filter(opportunity=busy).update(
        updated_at=now - datetime.timedelta(days=2)
    )

    assert committed(reminders.opportunity_rotting_notify) == 1
    assert committed(reminders.opportunity_rotting_notify) == 0  # once per quiet spell

    (notification,) = mine(owner, NotificationKind.ROTTING)
    assert notification.title == "Deal rotting: Quiet" and notification.record_id == quiet.pk
    assert "10 days" in notification.body


def test_a_reminder_fires_once_and_again_when_moved(owner, stages, smtp_server, committed, api_as):
    lead = LeadFactory(stage=stages["New"], owner=owner)
    soon = timezone.now() + datetime.timedelta(minutes=30)
    response = api_as("owner").post(
        "/api/v1/crm/activities/",
        {"subject": "Call Ann", "activity_type": "call", "lead_id": lead.pk, "remind_at": soon.isoformat()},
        format="json",
    )
    assert response.status_code == 201, response.json()
    activity_id = response.json()["id"]
    assert response.json()["reminded_at"] is None

    assert committed(reminders.activity_reminders_send) == 0  # not yet due
    with time_machine.travel(soon + datetime.timedelta(seconds=1), tick=False):
        assert committed(reminders.activity_reminders_send) == 1
        assert committed(reminders.activity_reminders_send) == 0

    (notification,) = mine(owner, NotificationKind.REMINDER)
    assert notification.title == "Reminder: Call Ann"
    assert smtp_server.wait_for(1)[0]["Subject"] == "Reminder: Call Ann"
    assert OutboxEvent.objects.filter(type="activity.due", record_id=activity_id).count() == 1
    body = api_as("owner").get(f"/api/v1/crm/activities/{activity_id}/").json()
    assert body["reminded_at"] is not None

    later = soon + datetime.timedelta(hours=1)
    patched = api_as("owner").patch(
        f"/api/v1/crm/activities/{activity_id}/", {"remind_at": later.isoformat()}, format="json"
    )
    assert patched.status_code == 200 and patched.json()["reminded_at"] is None
    with time_machine.travel(later + datetime.timedelta(seconds=1), tick=False):
        assert committed(reminders.activity_reminders_send) == 1
    assert len(mine(owner, NotificationKind.REMINDER)) == 2


def test_an_activity_the_system_logs_on_the_owners_own_record_does_not_notify_assigned(
    owner, teammate, manager, stages, committed
):
    """A sequence or an automation (the SYSTEM actor) logging an activity for the owner of the lead
    it is on is not an assignment: no "assigned" notification. The system assigning an activity on
    someone else's record, and a person assigning one to another, still notify."""
    from activities import services as activity_services
    from crm.actors import SYSTEM

    def task(subject, lead, owner):
        return {"activity_type": "task", "subject": subject, "lead": lead, "owner": owner}

    lead = LeadFactory(name="Acme", stage=stages["New"], owner=owner)
    committed(
        lambda: activity_services.activity_create(
            user=SYSTEM,
            data={
                "activity_type": "task",
                "subject": "Sequence step 1: email sent",
                "lead": lead,
                "owner": owner,
            },
        )
    )
    assert mine(owner, NotificationKind.ASSIGNED) == []

    committed(
        lambda: activity_services.activity_create(
            user=SYSTEM,
            data={"activity_type": "task", "subject": "Call for the team", "lead": lead, "owner": teammate},
        )
    )
    committed(
        lambda: activity_services.activity_create(
            user=manager,
            data={"activity_type": "task", "subject": "Call them back", "lead": lead, "owner": owner},
        )
    )
    committed(lambda: activity_services.activity_create(user=owner, data=task("My own note", lead, owner)))
    assert [n.title for n in mine(teammate, NotificationKind.ASSIGNED)] == [
        "Activity assigned to you: Call for the team"
    ]
    assert [n.title for n in mine(owner, NotificationKind.ASSIGNED)] == [
        "Activity assigned to you: Call them back"
    ]


def _relay_activities_logged_by_the_system(leads, owners):
    """Log one activity per lead as the SYSTEM actor, owned by ``owners[i]``, events left pending;
    then relay them in one batch. Returns the relay's queries."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from activities import services as activity_services
    from crm.actors import SYSTEM
    from crm.events.relay import outbox_relay

    OutboxEvent.objects.all().delete()
    for lead, owner in zip(leads, owners, strict=True):
        activity_services.activity_create(
            user=SYSTEM,
            data={
                "activity_type": "email",
                "subject": f"Campaign to {lead.name}",
                "lead": lead,
                "owner": owner,
            },
        )
    with CaptureQueriesContext(connection) as queries:
        assert outbox_relay() == len(leads)
    return queries


def test_a_batch_of_activities_the_system_logs_reads_their_records_owners_at_once(owner, teammate, stages):
    """A campaign logs an email activity per member: the relay reads the owners of the records they
    are on in one query for the batch, and notifies only the activities given to someone else."""
    few = [LeadFactory(stage=stages["New"], owner=owner) for _ in range(2)]
    many = [LeadFactory(stage=stages["New"], owner=owner) for _ in range(8)]

    few_queries = _relay_activities_logged_by_the_system(few, [owner, owner])
    many_queries = _relay_activities_logged_by_the_system(many, [owner] * 7 + [teammate])

    assert mine(owner, NotificationKind.ASSIGNED) == []
    (told,) = mine(teammate, NotificationKind.ASSIGNED)
    assert told.title == f"Activity assigned to you: Campaign to {many[-1].name}"
    # The one notification costs its own statements; the owners' reads do not grow with the batch.
    lead_reads = [q["sql"] for q in many_queries if 'FROM "crm_lead"' in q["sql"]]
    assert len(lead_reads) == 1
    assert len(many_queries) - len(few_queries) < 12
