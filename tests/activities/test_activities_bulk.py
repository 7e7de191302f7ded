"""The bulk activity writer (activities_create_bulk): the rules of activity_create for many activities
in a few statements: visibility, owners, validation, one audit version and one ``activity.created``
event per activity (its owner notified), the leads' last activity and score. The personas are those
of tests/conftest.py."""

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from activities.mail.outbound import sent_emails_log
from activities.models import Activity, EmailMessage
from activities.services import activities_create_bulk, activity_create
from crm.actors import SYSTEM
from crm.models import (
    Account,
    Contact,
    Lead,
    Notification,
    OutboxEvent,
    OutgoingEmail,
    OutgoingEmailStatus,
    ScoringRule,
)
from tests.factories import AccountFactory, ContactFactory, LeadFactory

pytestmark = pytest.mark.django_db


def rows(leads, **extra):
    return [
        {"lead": lead, "subject": f"Call {lead.name}", "activity_type": "task", **extra} for lead in leads
    ]


@pytest.fixture
def recent_activity_rule(db):
    ScoringRule.objects.all().delete()
    ScoringRule.objects.create(criterion="recent_activity", value="7", points=15)


def test_each_activity_gets_its_version_its_event_and_its_leads_score(owner, stages, recent_activity_rule):
    leads = [LeadFactory(name=f"Lead {n}", stage=stages["New"], owner=owner) for n in range(3)]

    created = activities_create_bulk(user=owner, rows=rows(leads))

    assert [a.lead_id for a in created] == [lead.pk for lead in leads]
    assert all(a.owner_id == owner.pk for a in created)  # the author, as activity_create does
    for activity in created:
        (version,) = activity.history.all()
        assert version.history_type == "+" and version.history_user_id == owner.pk
    events = OutboxEvent.objects.filter(type="activity.created").order_by("record_id")
    assert [e.record_id for e in events] == [a.pk for a in created]
    for event in events:
        assert event.payload["record"]["id"] == event.record_id
        assert event.payload["actor"] == {"id": owner.pk, "username": owner.username}
    for lead in Lead.objects.filter(pk__in=[lead.pk for lead in leads]):
        assert lead.last_activity_at is not None and lead.score == 15


def test_its_events_carry_what_activity_create_publishes(owner, stages):
    lead = LeadFactory(stage=stages["New"], owner=owner)
    single = activity_create(user=owner, data=rows([lead])[0])
    (bulk,) = activities_create_bulk(user=owner, rows=rows([lead]))

    one = OutboxEvent.objects.get(type="activity.created", record_id=single.pk).payload
    other = OutboxEvent.objects.get(type="activity.created", record_id=bulk.pk).payload
    assert set(one) == set(other)
    assert set(one["record"]) == set(other["record"])
    different = {"id", "created_at", "updated_at"}
    assert {k: v for k, v in one["record"].items() if k not in different} == {
        k: v for k, v in other["record"].items() if k not in different
    }


def test_the_owner_it_is_assigned_to_is_notified_once_per_activity(
    owner, stages, smtp_server, django_capture_on_commit_callbacks
):
    # Two leads nobody owns, and one of the owner's own: what the system logs on the owner's own
    # record is the owner's own work, not an assignment (tests/crm/test_notifications.py).
    leads = [LeadFactory(stage=stages["New"], owner=None) for _ in range(2)]
    leads.append(LeadFactory(stage=stages["New"], owner=owner))

    with django_capture_on_commit_callbacks(execute=True):
        activities_create_bulk(user=SYSTEM, rows=rows(leads, owner=owner))

    notified = Notification.objects.filter(recipient=owner, kind="assigned")
    assert sorted(notified.values_list("record_id", flat=True)) == sorted(
        Activity.objects.filter(lead__in=leads[:2]).values_list("pk", flat=True)
    )


def test_a_record_the_author_cannot_see_refuses_the_batch(people):
    mine, foreign = people.records["owner"].lead, people.records["outsider"].lead
    before = Activity.objects.count()

    with pytest.raises(ValidationError) as refused:
        activities_create_bulk(user=people.users["owner"], rows=rows([mine, foreign]))

    assert list(refused.value.error_dict) == ["lead"]
    assert Activity.objects.count() == before
    assert not OutboxEvent.objects.filter(type="activity.created", record_id__gt=0).exclude(
        record_id__in=Activity.objects.values("pk")
    )


def test_an_owner_the_author_may_not_assign_refuses_the_batch(people):
    lead = people.records["owner"].lead
    before = Activity.objects.count()

    with pytest.raises(ValidationError) as refused:
        activities_create_bulk(user=people.users["owner"], rows=rows([lead], owner=people.users["outsider"]))

    assert "owner" in refused.value.error_dict
    assert Activity.objects.count() == before


def test_an_invalid_row_is_named_and_nothing_is_written(owner, stages):
    leads = [LeadFactory(stage=stages["New"], owner=owner) for _ in range(2)]
    bad = rows(leads)
    bad[1]["activity_type"] = "telegram"
    before = Activity.objects.count()

    with pytest.raises(ValidationError) as refused:
        activities_create_bulk(user=owner, rows=bad)

    assert list(refused.value.error_dict) == ["rows[1]"]
    assert Activity.objects.count() == before


def test_the_batch_costs_a_fixed_number_of_queries(owner, stages, django_assert_max_num_queries):
    leads = [LeadFactory(stage=stages["New"], owner=owner) for _ in range(40)]
    activities_create_bulk(user=owner, rows=rows(leads[:2]))  # warm-up: the scoring rules' cache

    with django_assert_max_num_queries(20):
        activities_create_bulk(user=owner, rows=rows(leads[:5]))
    with django_assert_max_num_queries(20):
        activities_create_bulk(user=owner, rows=rows(leads))
    assert Activity.objects.filter(lead__in=leads).count() == 2 + 5 + 40


def test_the_contacts_and_accounts_last_activity_is_kept_in_bulk(owner):
    """Issue 17: the contacts' and accounts' last activity (the automation's "N days without
    activity") is recomputed by the bulk writer as by activity_create, one UPDATE per kind."""
    account = AccountFactory(owner=owner)
    contacts = [ContactFactory(account=account, owner=owner) for _ in range(2)]
    untouched = ContactFactory(owner=owner)

    created = activities_create_bulk(
        user=owner,
        rows=[
            {"contact": contacts[0], "subject": "Call", "activity_type": "call"},
            {"contact": contacts[1], "account": account, "subject": "Visit", "activity_type": "meeting"},
        ],
    )

    stamps = {c.pk: c.last_activity_at for c in Contact.objects.filter(pk__in=[c.pk for c in contacts])}
    assert stamps == {contacts[0].pk: created[0].created_at, contacts[1].pk: created[1].created_at}
    assert Account.objects.get(pk=account.pk).last_activity_at == created[1].created_at
    assert Contact.objects.get(pk=untouched.pk).last_activity_at is None


def _sent(contact, *, subject, message_id):
    return OutgoingEmail.objects.create(
        contact=contact,
        to=contact.email,
        subject=subject,
        body_text="Hello",
        status=OutgoingEmailStatus.SENT,
        sent_at=timezone.now(),
        message_id=message_id,
    )


def test_a_row_the_bulk_writer_refuses_falls_back_to_logging_each_email_on_its_own(owner, caplog):
    """The sent-email logger writes a batch's activities with activities_create_bulk; an email whose
    subject is empty makes that activity invalid, which refuses the whole batch. The logger then logs
    each email on its own: the others are on their contacts' timelines (and their last activity
    moves), the bad one alone is left out."""
    contacts = [ContactFactory(email=f"c{n}@example.com", owner=owner) for n in range(3)]
    emails = [
        _sent(contact, subject=subject, message_id=f"<m{n}@crm.test>")
        for n, (contact, subject) in enumerate(zip(contacts, ["First", "", "Third"], strict=True))
    ]

    with caplog.at_level("ERROR", logger="activities.mail"):
        sent_emails_log(emails=emails)

    assert "Could not log 3 sent emails at once; logging them one by one" in caplog.text
    logged = Activity.objects.filter(activity_type="email").order_by("contact__email")
    assert [(a.contact_id, a.subject) for a in logged] == [
        (contacts[0].pk, "First"),
        (contacts[2].pk, "Third"),
    ]
    assert sorted(EmailMessage.objects.values_list("message_id", flat=True)) == [
        "<m0@crm.test>",
        "<m2@crm.test>",
    ]
    last = dict(Contact.objects.filter(pk__in=[c.pk for c in contacts]).values_list("pk", "last_activity_at"))
    assert last[contacts[0].pk] == logged[0].created_at and last[contacts[2].pk] == logged[1].created_at
    assert last[contacts[1].pk] is None


def test_a_message_logged_already_falls_back_and_is_logged_once(owner, caplog):
    """A Message-ID already on the timeline (the reply thread stored it) fails the batch's INSERT; one
    by one, the others are logged and that one is not logged twice."""
    contacts = [ContactFactory(email=f"d{n}@example.com", owner=owner) for n in range(2)]
    EmailMessage.objects.create(direction="out", message_id="<known@crm.test>", subject="Before")
    emails = [
        _sent(contacts[0], subject="New", message_id="<new@crm.test>"),
        _sent(contacts[1], subject="Known", message_id="<known@crm.test>"),
    ]

    with caplog.at_level("ERROR", logger="activities.mail"):
        sent_emails_log(emails=emails)

    assert "logging them one by one" in caplog.text
    assert list(Activity.objects.values_list("contact_id", "subject")) == [(contacts[0].pk, "New")]
    assert EmailMessage.objects.filter(message_id="<known@crm.test>").count() == 1
    assert Contact.objects.get(pk=contacts[1].pk).last_activity_at is None
