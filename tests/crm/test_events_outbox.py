"""Issue 16, domain events with a transactional outbox: one event per service call, with the record
as the API shows it and the changes; nothing from a rolled-back transaction; the relay and consumers."""

import datetime

import pytest
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from rest_framework.test import APIClient

from activities import services as activity_services
from crm import services as crm_services
from crm.actors import SYSTEM
from crm.events.relay import outbox_relay
from crm.models import Lead, OutboxEvent, OutboxStatus
from sales import services as sales_services
from tests.factories import LostReasonFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(admin_user):
    client = APIClient()
    client.force_authenticate(admin_user)
    return client


def events():
    return list(OutboxEvent.objects.order_by("id"))


def types():
    return [event.type for event in events()]


def parse_time(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_lead_create_publishes_lead_created_with_the_record_as_the_api_shows_it(admin_user, stages, api):
    before = timezone.now()
    lead = crm_services.lead_create(user=admin_user, data={"name": "Acme deal", "email": "ann@acme.test"})

    (event,) = events()
    assert event.payload == {
        "id": str(event.event_id),
        "type": "lead.created",
        "occurred_at": event.payload["occurred_at"],
        "actor": {"id": admin_user.pk, "username": "boss"},
        "record": api.get(f"/api/v1/crm/leads/{lead.pk}/").json(),
    }
    assert before <= parse_time(event.payload["occurred_at"]) <= timezone.now()
    assert (event.status, event.record_type, event.record_id, event.pipeline_id) == (
        OutboxStatus.PENDING,
        "lead",
        lead.pk,
        lead.pipeline_id,
    )


def test_lead_update_publishes_the_changed_fields_with_old_and_new_values(admin_user, stages, api):
    lead = crm_services.lead_create(user=admin_user, data={"name": "Acme deal", "company_name": "Acme"})
    old_score = lead.score
    OutboxEvent.objects.all().delete()

    lead = crm_services.lead_update(
        lead=lead, user=admin_user, data={"name": "Acme renewal", "expected_revenue": "1500", "rating": "hot"}
    )

    (event,) = events()
    record = api.get(f"/api/v1/crm/leads/{lead.pk}/").json()
    changes = {
        "name": {"old": "Acme deal", "new": "Acme renewal"},
        "expected_revenue": {"old": None, "new": "1500.00"},
        "rating": {"old": "", "new": "hot"},
    }
    if lead.score != old_score:
        changes["score"] = {"old": old_score, "new": lead.score}
    assert event.payload == {
        "id": str(event.event_id),
        "type": "lead.updated",
        "occurred_at": event.payload["occurred_at"],
        "actor": {"id": admin_user.pk, "username": "boss"},
        "record": record,
        "changes": changes,
    }


def test_lead_transitions_publish_their_own_types(admin_user, stages):
    lead = crm_services.lead_create(user=admin_user, data={"name": "Deal"})
    lead = crm_services.lead_move_stage(lead=lead, stage=stages["Qualified"], user=admin_user)
    lead = crm_services.lead_mark_lost(lead=lead, user=admin_user, lost_reason=LostReasonFactory())
    lead = crm_services.lead_reopen(lead=lead, user=admin_user)

    assert types() == ["lead.created", "lead.stage_changed", "lead.lost", "lead.reopened"]
    moved = events()[1].payload["changes"]
    assert moved["stage_id"] == {"old": stages["New"].pk, "new": stages["Qualified"].pk}
    assert moved["probability"] == {"old": 10, "new": 30}
    assert events()[2].payload["changes"]["status"] == {"old": "open", "new": "lost"}


def test_converting_a_lead_publishes_what_it_creates_and_lead_converted(admin_user, stages):
    lead = crm_services.lead_create(
        user=admin_user, data={"name": "Deal", "company_name": "Acme", "contact_name": "Ann Lee"}
    )
    OutboxEvent.objects.all().delete()

    result = sales_services.lead_convert(lead=lead, user=admin_user)

    assert types() == ["account.created", "contact.created", "opportunity.created", "lead.converted"]
    converted = events()[-1].payload
    assert converted["record"]["converted_opportunity_id"] == result.opportunity.pk
    assert converted["changes"]["status"] == {"old": "open", "new": "converted"}


def test_opportunity_transitions_and_delete_publish_events(admin_user, stages):
    deal = sales_services.opportunity_create(user=admin_user, data={"name": "Big deal", "amount": "100"})
    deal = sales_services.opportunity_move_stage(opportunity=deal, stage=stages["Proposal"], user=admin_user)
    deal = sales_services.opportunity_mark_won(opportunity=deal, user=admin_user)
    deal = sales_services.opportunity_reopen(opportunity=deal, user=admin_user)
    deal = sales_services.opportunity_mark_lost(opportunity=deal, user=admin_user)
    deal = sales_services.opportunity_update(opportunity=deal, user=admin_user, data={"description": "Lost"})
    pk = deal.pk
    crm_services.record_delete(instance=deal, user=admin_user)

    assert types() == [
        "opportunity.created",
        "opportunity.stage_changed",
        "opportunity.won",
        "opportunity.reopened",
        "opportunity.lost",
        "opportunity.updated",
        "opportunity.deleted",
    ]
    deleted = events()[-1]
    assert deleted.payload["record"]["id"] == pk
    assert deleted.payload["record"]["description"] == "Lost"
    assert "changes" not in deleted.payload
    assert events()[2].payload["changes"]["status"] == {"old": "open", "new": "won"}


def test_accounts_contacts_and_activities_publish_events(admin_user, stages):
    account = crm_services.account_create(user=admin_user, data={"name": "Acme"})
    account = crm_services.account_update(
        account=account, user=admin_user, data={"website": "https://acme.test"}
    )
    contact = crm_services.contact_create(user=admin_user, data={"first_name": "Ann", "account": account})
    contact = crm_services.contact_update(contact=contact, user=admin_user, data={"last_name": "Lee"})
    call = activity_services.activity_create(
        user=admin_user, data={"subject": "Call", "activity_type": "call", "account": account}
    )
    call = activity_services.activity_update(activity=call, user=admin_user, data={"subject": "Call Ann"})
    call = activity_services.activity_update(activity=call, user=admin_user, data={"status": "completed"})
    activity_services.activity_delete(activity=call, user=admin_user)
    crm_services.record_delete(instance=contact, user=admin_user)

    assert types() == [
        "account.created",
        "account.updated",
        "contact.created",
        "contact.updated",
        "activity.created",
        "activity.updated",
        "activity.completed",
        "activity.deleted",
        "contact.deleted",
    ]
    assert events()[1].payload["changes"] == {"website": {"old": "", "new": "https://acme.test"}}
    completed = events()[6].payload["changes"]
    assert completed["status"] == {"old": "scheduled", "new": "completed"}
    assert completed["completed_at"]["old"] is None and completed["completed_at"]["new"]


def test_tag_changes_are_listed_as_id_lists(admin_user, stages):
    from tests.factories import TagFactory

    hot, vip = TagFactory(name="Hot"), TagFactory(name="VIP")
    lead = crm_services.lead_create(user=admin_user, data={"name": "Deal", "tags": [hot]})
    OutboxEvent.objects.all().delete()

    crm_services.lead_update(lead=lead, user=admin_user, data={"tags": [hot, vip]})

    assert events()[0].payload["changes"] == {"tags": {"old": [hot.pk], "new": sorted([hot.pk, vip.pk])}}


def test_an_update_that_changes_nothing_publishes_nothing(admin_user, stages):
    lead = crm_services.lead_create(user=admin_user, data={"name": "Deal"})
    OutboxEvent.objects.all().delete()

    crm_services.lead_update(lead=lead, user=admin_user, data={"name": "Deal"})

    assert events() == []


def test_the_system_actor_is_named_system(stages):
    crm_services.lead_create(user=SYSTEM, data={"name": "From a command"})

    assert events()[0].payload["actor"] == {"id": None, "username": "system"}
    assert events()[0].actor is None


def test_a_rolled_back_transaction_emits_nothing(admin_user, stages):
    lead = crm_services.lead_create(user=admin_user, data={"name": "Deal"})
    OutboxEvent.objects.all().delete()

    with pytest.raises(RuntimeError), transaction.atomic():
        crm_services.lead_update(lead=lead, user=admin_user, data={"name": "Renamed"})
        crm_services.account_create(user=admin_user, data={"name": "Acme"})
        raise RuntimeError("the caller fails after the services wrote")

    assert events() == []


def test_a_refused_service_call_emits_nothing(admin_user, stages):
    lead = crm_services.lead_create(user=admin_user, data={"name": "Deal"})
    lead = crm_services.lead_mark_lost(lead=lead, user=admin_user)
    OutboxEvent.objects.all().delete()

    with pytest.raises(ValidationError):
        crm_services.lead_move_stage(lead=lead, stage=stages["Qualified"], user=admin_user)

    assert events() == []


def test_the_relay_is_kicked_once_per_transaction_and_only_after_commit(
    admin_user, stages, django_capture_on_commit_callbacks
):
    lead = crm_services.lead_create(user=SYSTEM, data={"name": "Deal", "company_name": "Acme"})
    with django_capture_on_commit_callbacks() as callbacks:
        # One transaction, four events (account, contact, opportunity, lead.converted), one kick.
        sales_services.lead_convert(lead=lead, user=admin_user)
    from crm.events.dispatch import kick_relay

    assert [cb for cb in callbacks if cb is kick_relay] == [kick_relay]


def test_with_events_off_nothing_is_published(admin_user, stages, settings):
    settings.CRM_EVENTS_ENABLED = False

    crm_services.lead_create(user=admin_user, data={"name": "Deal"})

    assert events() == []


# --- the relay and in-process consumers -------------------------------------------------------------


def test_the_relay_hands_each_event_to_matching_consumers_and_marks_it_delivered(
    admin_user, stages, consumers
):
    seen = []
    consumers("opportunity.*", lambda event: seen.append(event.type), name="test-opportunities")
    sales_services.opportunity_create(user=admin_user, data={"name": "Deal", "amount": "1"})
    crm_services.account_create(user=admin_user, data={"name": "Acme"})

    assert outbox_relay() == 2

    assert seen == ["opportunity.created"]
    assert {e.status for e in events()} == {OutboxStatus.DELIVERED}
    assert outbox_relay() == 0  # nothing left: delivered events are not handed over again


def test_a_failing_consumer_leaves_the_event_pending_then_failed(admin_user, stages, consumers, settings):
    settings.CRM_OUTBOX_MAX_ATTEMPTS = 2

    def broken(event):
        raise RuntimeError("consumer down")

    consumers("*", broken, name="test-broken")
    crm_services.account_create(user=admin_user, data={"name": "Acme"})

    outbox_relay()
    (event,) = events()
    assert (event.status, event.attempts) == (OutboxStatus.PENDING, 1)
    assert "consumer down" in event.last_error

    outbox_relay()
    event.refresh_from_db()
    assert (event.status, event.attempts) == (OutboxStatus.FAILED, 2)


def test_the_api_and_the_admin_publish_through_the_same_services(admin_user, admin_client, stages, api):
    from tests.admin.test_admin_services import lead_change_form

    created = api.post("/api/v1/crm/leads/", {"name": "From the API"}).json()
    api.patch(f"/api/v1/crm/leads/{created['id']}/", {"name": "Renamed in the API"})
    lead = Lead.objects.get(pk=created["id"])
    response = admin_client.post(
        f"/admin/crm/lead/{lead.pk}/change/", lead_change_form(lead, stage=stages["Qualified"].pk)
    )

    assert response.status_code == 302
    assert types() == ["lead.created", "lead.updated", "lead.stage_changed"]
    assert events()[1].payload["record"]["name"] == "Renamed in the API"
    assert events()[2].payload["record"] == api.get(f"/api/v1/crm/leads/{lead.pk}/").json()
    assert {e.payload["actor"]["id"] for e in events()} == {admin_user.pk}


def test_payloads_built_from_the_saved_instance_are_what_a_read_again_gives(admin_user, stages):
    """The services publish the record from the instance they saved (no read of it again); each
    event's record is exactly what the selector and serializer give for that record right after."""
    from crm.events.registry import source_for
    from tests.factories import TagFactory, UserFactory

    rep = UserFactory(username="rep")
    hot, vip = TagFactory(name="Hot"), TagFactory(name="VIP")
    checked = []

    def check(instance):
        event = OutboxEvent.objects.order_by("-id").first()
        source = source_for(type(instance))
        assert event.payload["record"] == source.serialize(instance.pk), event.type
        checked.append(event.type)
        return instance

    lead = check(
        crm_services.lead_create(
            user=admin_user,
            data={"name": "Deal", "company_name": "Acme", "tags": [vip, hot], "expected_revenue": "12.5"},
        )
    )
    lead = check(crm_services.lead_update(lead=lead, user=admin_user, data={"rating": "hot", "owner": rep}))
    lead = check(crm_services.lead_update(lead=lead, user=admin_user, data={"tags": [hot]}))
    lead = check(crm_services.lead_move_stage(lead=lead, stage=stages["Qualified"], user=admin_user))
    lead = check(crm_services.lead_mark_lost(lead=lead, user=admin_user, lost_reason=LostReasonFactory()))
    lead = check(crm_services.lead_reopen(lead=lead, user=admin_user))
    result = sales_services.lead_convert(lead=lead, user=admin_user)
    lead = check(Lead.objects.get(pk=lead.pk))
    assert events()[-1].payload["record"]["converted_opportunity_id"] == result.opportunity.pk
    deal = check(
        sales_services.opportunity_update(
            opportunity=result.opportunity, user=admin_user, data={"amount": "99.9", "tags": [vip]}
        )
    )
    check(sales_services.opportunity_mark_won(opportunity=deal, user=admin_user))
    account = check(crm_services.account_update(account=result.account, user=admin_user, data={"phone": "1"}))
    contact = check(
        crm_services.contact_create(user=admin_user, data={"first_name": "Bo", "account": account})
    )
    check(crm_services.contact_update(contact=contact, user=admin_user, data={"last_name": "Lee"}))
    call = check(
        activity_services.activity_create(
            user=admin_user, data={"subject": "Call", "activity_type": "call", "lead": lead}
        )
    )
    check(activity_services.activity_update(activity=call, user=admin_user, data={"status": "completed"}))

    assert checked[:6] == [
        "lead.created",
        "lead.updated",
        "lead.updated",
        "lead.stage_changed",
        "lead.lost",
        "lead.reopened",
    ]
    assert (
        events()[1].payload["record"]["score_breakdown"]
        and events()[1].payload["record"]["owner_username"] == "rep"
    )


def test_a_lead_update_reads_nothing_of_the_lead_again_for_its_event(admin_user, stages, settings):
    """With events on, an update adds the outbox INSERT and the reads of what the saved instance
    cannot hold (its tags, the selector's annotations, the pipeline's win model), not a read of the
    lead and the records it joins."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    lead = crm_services.lead_create(user=admin_user, data={"name": "Deal"})
    queries = {}
    for enabled in (False, True):
        settings.CRM_EVENTS_ENABLED = enabled
        with CaptureQueriesContext(connection) as captured:
            lead = crm_services.lead_update(lead=lead, user=admin_user, data={"name": f"Deal {enabled}"})
        queries[enabled] = [q["sql"] for q in captured.captured_queries]

    added = queries[True][len(queries[False]) - 1 : -1]  # both end with the savepoint's release
    assert len(queries[True]) - len(queries[False]) == 4, added
    assert not any('INNER JOIN "crm_pipeline"' in sql and 'FROM "crm_lead"' in sql for sql in added)


def test_a_transactions_events_are_written_in_one_insert_just_before_it_commits(admin_user, stages):
    """Converting a lead publishes four events: the outbox gets them in one INSERT, in the order
    published, at the end of the service's transaction (not one INSERT per event as they happen)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    lead = crm_services.lead_create(
        user=SYSTEM, data={"name": "Deal", "company_name": "Acme", "contact_name": "Ann Lee"}
    )
    OutboxEvent.objects.all().delete()
    with CaptureQueriesContext(connection) as captured:
        sales_services.lead_convert(lead=lead, user=admin_user)

    inserts = [
        n for n, q in enumerate(captured.captured_queries) if 'INSERT INTO "crm_outboxevent"' in q["sql"]
    ]
    assert len(inserts) == 1
    # Nothing but the savepoint's release (the transaction's end in a test) follows it.
    assert [q["sql"] for q in captured.captured_queries[inserts[0] + 1 :]] == [
        captured.captured_queries[-1]["sql"]
    ]
    assert captured.captured_queries[-1]["sql"].startswith("RELEASE SAVEPOINT")
    assert types() == ["account.created", "contact.created", "opportunity.created", "lead.converted"]
    assert [e.id for e in events()] == sorted(e.id for e in events())


def test_a_rolled_back_savepoint_drops_its_events_and_keeps_the_others(admin_user, stages):
    with transaction.atomic():
        crm_services.lead_create(user=admin_user, data={"name": "Kept"})
        try:
            with transaction.atomic():
                crm_services.lead_create(user=admin_user, data={"name": "Dropped"})
                raise RuntimeError("undo the inner block")
        except RuntimeError:
            pass
        crm_services.account_create(user=admin_user, data={"name": "Acme"})

    assert [(e.type, e.payload["record"]["name"]) for e in events()] == [
        ("lead.created", "Kept"),
        ("account.created", "Acme"),
    ]


@pytest.mark.django_db(transaction=True)
def test_events_reach_the_outbox_with_a_real_commit_and_not_with_a_real_rollback(admin_user, stages):
    """Outside a test case's transaction: the pre-commit hook of the database backend writes them."""
    with transaction.atomic():
        crm_services.lead_create(user=admin_user, data={"name": "Committed"})
        crm_services.lead_create(user=admin_user, data={"name": "Committed too"})
    with pytest.raises(RuntimeError), transaction.atomic():
        crm_services.lead_create(user=admin_user, data={"name": "Rolled back"})
        raise RuntimeError("roll back")

    assert [e.payload["record"]["name"] for e in events()] == ["Committed", "Committed too"]
    assert Lead.objects.filter(name="Rolled back").count() == 0
