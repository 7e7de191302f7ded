"""Activity services (activities/services.py): what logging, changing and deleting an activity does, and
who may link it to what. The personas are those of tests/conftest.py."""

import datetime
import importlib

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Max
from django.utils import timezone

from activities.models import Activity, ActivityStatus
from activities.services import (
    activity_create,
    activity_delete,
    activity_update,
    every_last_activity_refresh,
    lead_last_activity_refresh,
)
from crm.actors import SYSTEM
from crm.models import Lead, ScoringRule
from crm.services import record_delete
from tests.factories import AccountFactory, ActivityFactory, ContactFactory, LeadFactory, OpportunityFactory

pytestmark = pytest.mark.django_db

LINKS = ("lead", "opportunity", "contact", "account")
# Leads and deals are seen by their owner's team only; accounts and contacts by everyone.
PRIVATE_LINKS = ("lead", "opportunity")
SHARED_LINKS = ("contact", "account")


def call(**data):
    return {"subject": "Call", "activity_type": "call", **data}


@pytest.fixture
def recent_activity_rule(db):
    """Only one scoring rule: 15 points for an activity in the last 7 days."""
    ScoringRule.objects.all().delete()
    ScoringRule.objects.create(criterion="recent_activity", value="7", points=15)


def test_a_new_activity_belongs_to_its_author(people):
    activity = activity_create(user=people.users["owner"], data=call(lead=people.records["owner"].lead))

    assert activity.owner == people.users["owner"]
    assert Activity.objects.get(pk=activity.pk).lead == people.records["owner"].lead


def test_a_new_activity_logged_as_completed_gets_its_completion_time(people):
    activity = activity_create(
        user=people.users["owner"],
        data=call(status=ActivityStatus.COMPLETED, lead=people.records["owner"].lead),
    )

    assert Activity.objects.get(pk=activity.pk).completed_at is not None


@pytest.mark.parametrize("link", PRIVATE_LINKS)
def test_an_activity_is_not_logged_on_a_record_its_author_cannot_see(people, link):
    foreign = getattr(people.records["outsider"], link)

    with pytest.raises(ValidationError) as refused:
        activity_create(user=people.users["owner"], data=call(**{link: foreign}))

    assert list(refused.value.error_dict) == [link]
    assert not Activity.objects.filter(subject="Call").exists()


@pytest.mark.parametrize("link", SHARED_LINKS)
def test_an_activity_may_be_logged_on_another_teams_account_or_contact(people, link):
    record = getattr(people.records["outsider"], link)

    activity = activity_create(user=people.users["owner"], data=call(**{link: record}))

    assert getattr(activity, f"{link}_id") == record.pk


@pytest.mark.parametrize("link", LINKS)
def test_a_manager_logs_activities_on_the_records_of_the_team(people, link):
    record = getattr(people.records["owner"], link)

    activity = activity_create(user=people.users["manager"], data=call(**{link: record}))

    assert getattr(activity, f"{link}_id") == record.pk


def test_the_system_may_link_any_record(people):
    activity = activity_create(user=SYSTEM, data=call(lead=people.records["outsider"].lead))

    assert (activity.lead, activity.owner) == (people.records["outsider"].lead, None)


def test_a_rep_may_not_give_a_new_activity_to_another_team(people):
    with pytest.raises(ValidationError) as refused:
        activity_create(user=people.users["owner"], data=call(owner=people.users["outsider"]))

    assert list(refused.value.error_dict) == ["owner"]


def test_reopening_a_completed_activity_clears_its_completion_time(people):
    activity = people.records["owner"].activity
    activity = activity_update(
        activity=activity, user=people.users["owner"], data={"status": ActivityStatus.COMPLETED}
    )
    assert activity.completed_at is not None

    activity = activity_update(
        activity=activity, user=people.users["owner"], data={"status": ActivityStatus.SCHEDULED}
    )

    assert Activity.objects.get(pk=activity.pk).completed_at is None


def test_reopening_keeps_a_completion_time_the_caller_gives(people):
    when = timezone.now().replace(microsecond=0)
    activity = activity_update(
        activity=people.records["owner"].activity,
        user=people.users["owner"],
        data={"status": ActivityStatus.COMPLETED, "completed_at": when},
    )

    activity = activity_update(
        activity=activity,
        user=people.users["owner"],
        data={"status": ActivityStatus.SCHEDULED, "completed_at": when},
    )

    assert Activity.objects.get(pk=activity.pk).completed_at == when


def test_the_manager_may_change_the_owners_activity(people):
    activity = activity_update(
        activity=people.records["owner"].activity, user=people.users["manager"], data={"description": "x"}
    )

    assert Activity.objects.get(pk=activity.pk).description == "x"


@pytest.mark.parametrize("persona", ["teammate", "outsider"])
def test_a_rep_may_not_change_an_activity_of_someone_else(people, persona):
    """A rep sees only their own activities (tests/security), so may change no one else's."""
    activity = people.records["owner"].activity

    with pytest.raises(PermissionDenied):
        activity_update(activity=activity, user=people.users[persona], data={"description": "x"})

    assert Activity.objects.get(pk=activity.pk).description != "x"


@pytest.mark.parametrize("link", PRIVATE_LINKS)
def test_an_activity_is_not_moved_onto_a_record_its_editor_cannot_see(people, link):
    activity = people.records["owner"].activity
    before = getattr(Activity.objects.get(pk=activity.pk), f"{link}_id")

    with pytest.raises(ValidationError) as refused:
        activity_update(
            activity=activity,
            user=people.users["owner"],
            data={link: getattr(people.records["outsider"], link)},
        )

    assert list(refused.value.error_dict) == [link]
    assert getattr(Activity.objects.get(pk=activity.pk), f"{link}_id") == before


def test_a_link_the_editor_cannot_see_may_stay_as_it_is(people):
    """Only a changed link is checked: the owner edits their activity that a CRM Admin logged on
    another team's lead, sending the form back with that lead unchanged."""
    foreign = people.records["outsider"].lead
    activity = activity_create(
        user=people.users["crm_admin"], data=call(lead=foreign, owner=people.users["owner"])
    )

    activity = activity_update(
        activity=activity, user=people.users["owner"], data={"lead": foreign, "description": "kept"}
    )

    assert (activity.lead_id, activity.description) == (foreign.pk, "kept")


def test_a_rep_may_not_give_an_activity_to_another_team(people):
    activity = people.records["owner"].activity

    with pytest.raises(ValidationError) as refused:
        activity_update(
            activity=activity, user=people.users["owner"], data={"owner": people.users["outsider"]}
        )

    assert list(refused.value.error_dict) == ["owner"]
    assert Activity.objects.get(pk=activity.pk).owner == people.users["owner"]


def test_logging_and_deleting_an_activity_rescore_its_lead(people, recent_activity_rule):
    lead = people.records["owner"].lead
    activity = activity_create(user=people.users["owner"], data=call(lead=lead))
    Activity.objects.exclude(pk=activity.pk).filter(lead=lead).delete()
    assert Lead.objects.get(pk=lead.pk).score == 15

    activity_delete(activity=activity, user=people.users["owner"])

    assert not Activity.objects.filter(pk=activity.pk).exists()
    assert Lead.objects.get(pk=lead.pk).score == 0


def test_deleting_an_activity_without_a_lead(people):
    activity = activity_create(user=people.users["owner"], data=call(account=people.records["owner"].account))

    activity_delete(activity=activity, user=people.users["owner"])

    assert not Activity.objects.filter(pk=activity.pk).exists()


@pytest.mark.parametrize("persona", ["teammate", "outsider"])
def test_a_rep_may_not_delete_an_activity_of_someone_else(people, persona):
    """The delete service checks the change rule itself, not only the API's and the admin's querysets."""
    activity = people.records["owner"].activity

    with pytest.raises(PermissionDenied):
        activity_delete(activity=activity, user=people.users[persona])

    assert Activity.objects.filter(pk=activity.pk).exists()


# --- the lead's last activity (Lead.last_activity_at, what scoring reads) ---------------------------


def stored_last_activity(lead) -> object:
    return Lead.objects.values_list("last_activity_at", flat=True).get(pk=lead.pk)


def newest_created(lead) -> object:
    """The rule the column stands for: when the lead's newest activity was logged."""
    return Activity.objects.filter(lead=lead).aggregate(last=Max("created_at"))["last"]


def test_logging_an_activity_makes_it_the_leads_last_activity(people):
    lead = people.records["owner"].lead

    activity = activity_create(user=people.users["owner"], data=call(lead=lead))

    assert stored_last_activity(lead) == Activity.objects.get(pk=activity.pk).created_at
    assert stored_last_activity(lead) == newest_created(lead)


def test_every_records_last_activity_recomputed_at_once_empties_it_where_no_activity_is_left(people):
    """The set-based form a seed and bulk loads use: a stale value without activities is emptied, a
    wrong one set to the newest activity's, whichever of the two statements runs first."""
    with_activities, without = people.records["owner"].lead, LeadFactory(owner=people.users["owner"])
    activity_create(user=people.users["owner"], data=call(lead=with_activities))
    stale = timezone.now() - datetime.timedelta(days=30)
    Lead.objects.filter(pk__in=[with_activities.pk, without.pk]).update(last_activity_at=stale)

    every_last_activity_refresh()

    assert stored_last_activity(with_activities) == newest_created(with_activities) != stale
    assert stored_last_activity(without) is None


def test_rescheduling_or_completing_an_activity_keeps_the_leads_last_activity(people):
    lead = people.records["owner"].lead
    activity = activity_create(user=people.users["owner"], data=call(lead=lead))
    before = stored_last_activity(lead)
    updated_at = Lead.objects.get(pk=lead.pk).updated_at

    activity_update(
        activity=activity,
        user=people.users["owner"],
        data={"due_date": timezone.now() + datetime.timedelta(days=3)},
    )
    activity_update(activity=activity, user=people.users["owner"], data={"status": ActivityStatus.COMPLETED})

    assert stored_last_activity(lead) == before == newest_created(lead)
    # A derived column: the lead itself did not change (no new version, the same ETag).
    assert Lead.objects.get(pk=lead.pk).updated_at == updated_at


def test_moving_an_activity_to_another_lead_moves_the_last_activity(people):
    first, second = people.records["owner"].lead, LeadFactory(owner=people.users["owner"])
    Activity.objects.filter(lead=first).delete()
    activity = activity_create(user=people.users["owner"], data=call(lead=first))

    activity_update(activity=activity, user=people.users["owner"], data={"lead": second})

    assert stored_last_activity(first) is None
    assert stored_last_activity(second) == Activity.objects.get(pk=activity.pk).created_at


def test_deleting_the_latest_activity_falls_back_to_the_one_before(people):
    lead = people.records["owner"].lead
    Activity.objects.filter(lead=lead).delete()
    older = activity_create(user=people.users["owner"], data=call(lead=lead))
    Activity.objects.filter(pk=older.pk).update(created_at=timezone.now() - datetime.timedelta(days=3))
    latest = activity_create(user=people.users["owner"], data=call(lead=lead))
    assert stored_last_activity(lead) == Activity.objects.get(pk=latest.pk).created_at

    activity_delete(activity=latest, user=people.users["owner"])

    assert stored_last_activity(lead) == Activity.objects.get(pk=older.pk).created_at == newest_created(lead)


def test_deleting_a_deal_that_takes_the_leads_activity_along_refreshes_the_lead(people, recent_activity_rule):
    """A cascade: the activity is deleted with the deal it is also linked to, not by activity_delete."""
    owner, lead = people.users["owner"], people.records["owner"].lead
    Activity.objects.filter(lead=lead).delete()
    deal = OpportunityFactory(owner=owner, stage=people.records["owner"].opportunity.stage)
    activity_create(user=owner, data=call(lead=lead, opportunity=deal))
    assert Lead.objects.get(pk=lead.pk).score == 15

    record_delete(instance=deal, user=owner)

    assert stored_last_activity(lead) is None
    assert Lead.objects.get(pk=lead.pk).score == 0


def test_recomputing_every_lead_matches_their_activities(people):
    """What the seed (and any bulk writer of activities) runs after writing activities around the
    services."""
    leads = [people.records[persona].lead for persona in ("owner", "outsider")]
    Lead.objects.update(last_activity_at=None)
    Activity.objects.filter(lead=leads[1]).delete()
    Lead.objects.filter(pk=leads[1].pk).update(last_activity_at=timezone.now())

    lead_last_activity_refresh()

    for lead in Lead.objects.all():
        assert stored_last_activity(lead) == newest_created(lead)
    assert stored_last_activity(leads[0]) is not None
    assert stored_last_activity(leads[1]) is None


# --- contacts' and accounts' last activity (issue 17: "N days without activity" on them) ---------------


def last_of(record) -> object:
    return type(record).objects.values_list("last_activity_at", flat=True).get(pk=record.pk)


def test_a_contacts_and_accounts_last_activity_follows_create_move_and_delete(owner):
    account, other_account = AccountFactory(owner=owner), AccountFactory(owner=owner)
    contact = ContactFactory(account=account, owner=owner)
    older = activity_create(user=owner, data=call(contact=contact, account=account))
    Activity.objects.filter(pk=older.pk).update(created_at=timezone.now() - datetime.timedelta(days=3))
    older.refresh_from_db()
    latest = activity_create(user=owner, data=call(contact=contact, account=account))
    assert last_of(contact) == last_of(account) == latest.created_at

    latest = activity_update(activity=latest, user=owner, data={"account": other_account})  # moved
    assert (last_of(account), last_of(other_account)) == (older.created_at, latest.created_at)

    activity_delete(activity=latest, user=owner)
    assert (last_of(contact), last_of(other_account)) == (older.created_at, None)


def test_deleting_a_lead_that_takes_a_contacts_activity_along_refreshes_the_contact(owner, stages):
    """A cascade: the activity goes with the lead it is also linked to, not through activity_delete."""
    contact, lead = ContactFactory(owner=owner), LeadFactory(owner=owner, stage=stages["New"])
    activity_create(user=owner, data=call(contact=contact, lead=lead))
    assert last_of(contact) is not None

    record_delete(instance=lead, user=owner)

    assert last_of(contact) is None


def test_the_migration_fills_contacts_and_accounts_from_the_activities_logged(owner):
    """activities.0018 sets each contact's and account's last activity from the activities already
    logged (run here on the current schema, as the migration runs it)."""
    from django.apps import apps

    backfill = importlib.import_module("activities.migrations.0018_contact_account_last_activity_backfill")
    account, contact, silent = AccountFactory(), ContactFactory(), ContactFactory()
    first = ActivityFactory(contact=contact, account=account)
    second = ActivityFactory(contact=contact)
    Activity.objects.filter(pk=first.pk).update(created_at=timezone.now() - datetime.timedelta(days=2))
    type(contact).objects.update(last_activity_at=None)
    type(account).objects.update(last_activity_at=None)

    backfill.backfill(apps, None)

    assert last_of(contact) == Activity.objects.get(pk=second.pk).created_at
    assert last_of(account) == Activity.objects.get(pk=first.pk).created_at
    assert last_of(silent) is None
