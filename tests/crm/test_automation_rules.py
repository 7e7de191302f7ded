"""Issue 17 item 1: automation rules in process — validation naming the field, "changed to B" firing
once, loop protection and chain depth, round robin fairness, time triggers under a controlled clock,
and the preview that writes nothing."""

import datetime

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import Q
from django.db.models.functions import Coalesce
from django.db.models.lookups import GreaterThan, LessThanOrEqual
from django.utils import timezone

from activities.services import activities_create_bulk, activity_create
from crm import services as crm_services
from crm.actors import SYSTEM
from crm.automation import engine
from crm.models import AutomationRun, Lead, RunStatus, SalesTeam
from sales import services as sales_services
from sales.models import Opportunity
from tests.crm.automation_helpers import database_fingerprint, rule, settle
from tests.factories import (
    AccountFactory,
    ContactFactory,
    LeadFactory,
    OpportunityFactory,
    TagFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


def test_a_condition_on_a_field_that_does_not_exist_is_refused_naming_it():
    with pytest.raises(ValidationError) as refused:
        rule(
            trigger={"events": ["created"]},
            conditions=[{"field": "industy", "op": "eq", "value": "technology"}],
        )
    message = " ".join(refused.value.message_dict["conditions"])
    assert "“industy” does not exist on lead" in message


def test_an_operator_that_does_not_fit_the_field_is_refused_naming_both():
    with pytest.raises(ValidationError) as refused:
        rule(trigger={"events": ["created"]}, conditions=[{"field": "name", "op": "gt", "value": "x"}])
    assert (
        "The operator “gt” does not apply to the field “name”" in refused.value.message_dict["conditions"][0]
    )


def test_a_related_field_path_is_checked_through_the_relations():
    with pytest.raises(ValidationError) as refused:
        rule(
            model="sales.Opportunity",
            trigger={"events": ["created"]},
            conditions=[{"field": "account__industri", "op": "eq", "value": "technology"}],
        )
    assert "“industri” does not exist on account (in “account__industri”)" in str(refused.value)


def test_trigger_and_actions_are_validated_against_the_model():
    with pytest.raises(ValidationError) as refused:
        rule(
            trigger={"events": ["won"], "field": "colour"},
            actions=[{"kind": "update_fields", "params": {"values": {"stauts": "x"}}}, {"kind": "fly"}],
        )
    errors = refused.value.message_dict
    assert any("won is not an event of lead" in m for m in errors["trigger"])
    assert any("“colour” does not exist on lead" in m for m in errors["trigger"])
    assert any("the field “stauts” does not exist on lead" in m for m in errors["actions"])
    assert any("“fly” is not an action for lead" in m for m in errors["actions"])


def test_changed_to_b_fires_once_when_the_value_becomes_b(stages):
    vip = TagFactory(name="VIP")
    lead = LeadFactory(stage=stages["New"], priority="low")
    the_rule = rule(
        trigger={"events": ["updated"], "field": "priority", "to": "urgent"},
        actions=[{"kind": "add_tags", "params": {"tag_ids": [vip.pk]}}],
    )

    crm_services.lead_update(lead=lead, user=SYSTEM, data={"priority": "urgent"})
    settle()
    crm_services.lead_update(lead=Lead.objects.get(pk=lead.pk), user=SYSTEM, data={"name": "Renamed"})
    crm_services.lead_update(lead=Lead.objects.get(pk=lead.pk), user=SYSTEM, data={"description": "x"})
    settle()

    (run,) = AutomationRun.objects.filter(rule=the_rule)
    assert run.status == RunStatus.SUCCEEDED and run.trigger == "lead.updated"
    assert list(lead.tags.values_list("name", flat=True)) == ["VIP"]

    # Away from B and back: a new crossing, a new run.
    crm_services.lead_update(lead=Lead.objects.get(pk=lead.pk), user=SYSTEM, data={"priority": "low"})
    crm_services.lead_update(lead=Lead.objects.get(pk=lead.pk), user=SYSTEM, data={"priority": "urgent"})
    settle()
    assert AutomationRun.objects.filter(rule=the_rule).count() == 2


def test_changed_from_a_needs_the_old_value(stages):
    lead = LeadFactory(stage=stages["New"], priority="medium")
    the_rule = rule(
        trigger={"events": ["updated"], "field": "priority", "from": "low"},
        actions=[{"kind": "update_fields", "params": {"values": {"rating": "hot"}}}],
    )
    crm_services.lead_update(lead=lead, user=SYSTEM, data={"priority": "high"})
    settle()
    assert not AutomationRun.objects.filter(rule=the_rule).exists()
    crm_services.lead_update(lead=Lead.objects.get(pk=lead.pk), user=SYSTEM, data={"priority": "low"})
    crm_services.lead_update(lead=Lead.objects.get(pk=lead.pk), user=SYSTEM, data={"priority": "high"})
    settle()
    assert AutomationRun.objects.get(rule=the_rule).status == RunStatus.SUCCEEDED
    assert Lead.objects.get(pk=lead.pk).rating == "hot"


def test_an_actions_own_change_does_not_retrigger_its_rule(stages):
    lead = LeadFactory(stage=stages["New"], description="")
    the_rule = rule(
        trigger={"events": ["updated"]},
        actions=[{"kind": "update_fields", "params": {"values": {"description": "touched"}}}],
    )
    crm_services.lead_update(lead=lead, user=SYSTEM, data={"name": "Go"})
    settle()
    assert AutomationRun.objects.filter(rule=the_rule).count() == 1
    assert Lead.objects.get(pk=lead.pk).description == "touched"


def test_a_chain_of_rules_stops_at_the_depth_limit_with_a_logged_reason(stages, settings):
    settings.CRM_AUTOMATION_MAX_DEPTH = 2
    lead = LeadFactory(stage=stages["New"], priority="low", rating="", source="")
    first = rule(
        name="priority → rating",
        trigger={"events": ["updated"], "field": "priority"},
        actions=[{"kind": "update_fields", "params": {"values": {"rating": "hot"}}}],
    )
    second = rule(
        name="rating → source",
        trigger={"events": ["updated"], "field": "rating"},
        actions=[{"kind": "update_fields", "params": {"values": {"source": "partner"}}}],
    )
    third = rule(
        name="source → priority",
        trigger={"events": ["updated"], "field": "source"},
        actions=[{"kind": "update_fields", "params": {"values": {"priority": "urgent"}}}],
    )

    crm_services.lead_update(lead=lead, user=SYSTEM, data={"priority": "high"})
    settle()

    assert AutomationRun.objects.get(rule=first).status == RunStatus.SUCCEEDED
    assert AutomationRun.objects.get(rule=second).chain == [first.pk]
    stopped = AutomationRun.objects.get(rule=third)
    assert stopped.status == RunStatus.STOPPED and stopped.chain == [first.pk, second.pk]
    assert "depth limit CRM_AUTOMATION_MAX_DEPTH=2" in stopped.reason
    assert Lead.objects.get(pk=lead.pk).priority == "high"  # the third rule did not act


def test_round_robin_is_fair_over_100_assignments(stages):
    members = [UserFactory(username=f"rr{n}") for n in range(4)]
    team = SalesTeam.objects.create(name="Inbound")
    team.members.add(*members)
    the_rule = rule(
        trigger={"events": ["created"]},
        actions=[{"kind": "assign_owner", "params": {"team_id": team.pk, "strategy": "round_robin"}}],
    )
    for n in range(100):
        crm_services.lead_create(user=SYSTEM, data={"name": f"Lead {n}"})
    settle()

    assert AutomationRun.objects.filter(rule=the_rule, status=RunStatus.SUCCEEDED).count() == 100
    counts = {m.username: Lead.objects.filter(owner=m).count() for m in members}
    assert counts == {"rr0": 25, "rr1": 25, "rr2": 25, "rr3": 25}
    # In turn: consecutive leads go to consecutive members.
    owners = list(Lead.objects.order_by("pk").values_list("owner__username", flat=True)[:8])
    assert owners == ["rr0", "rr1", "rr2", "rr3"] * 2


def test_least_loaded_picks_the_member_with_the_fewest_open_records(stages):
    busy, free = UserFactory(username="busy"), UserFactory(username="free")
    team = SalesTeam.objects.create(name="Pool")
    team.members.add(busy, free)
    LeadFactory.create_batch(3, stage=stages["New"], owner=busy)
    rule(
        trigger={"events": ["created"]},
        actions=[{"kind": "assign_owner", "params": {"team_id": team.pk, "strategy": "least_loaded"}}],
    )
    for n in range(4):
        crm_services.lead_create(user=SYSTEM, data={"name": f"New {n}"})
        settle()
    # free takes the first three (0, 1, 2 open leads against 3); at 3 each, the tie goes to the
    # earlier member (busy).
    assert Lead.objects.filter(owner=free).count() == 3
    assert Lead.objects.filter(owner=busy).count() == 4


def test_conditions_on_related_fields_and_tags_and_groups(stages, personas):
    vip = TagFactory(name="VIP")
    owner = personas.users["owner"]  # a member of the team West
    the_rule = rule(
        trigger={"events": ["updated"]},
        conditions={
            "all": [
                {"field": "owner__sales_teams__name", "op": "eq", "value": "West"},
                {"field": "tags", "op": "contains", "value": "VIP"},
                {
                    "any": [
                        {"field": "priority", "op": "eq", "value": "urgent"},
                        {"field": "expected_revenue", "op": "gte", "value": "5000"},
                    ]
                },
            ]
        },
        actions=[{"kind": "update_fields", "params": {"values": {"rating": "hot"}}}],
    )
    matching = LeadFactory(stage=stages["New"], owner=owner, expected_revenue=9000)
    matching.tags.add(vip)
    untagged = LeadFactory(stage=stages["New"], owner=owner, priority="urgent")
    other_team = LeadFactory(stage=stages["New"], owner=personas.users["outsider"], priority="urgent")
    other_team.tags.add(vip)
    for lead in (matching, untagged, other_team):
        crm_services.lead_update(lead=lead, user=SYSTEM, data={"name": lead.name + "!"})
    settle()
    assert list(AutomationRun.objects.filter(rule=the_rule).values_list("record_id", flat=True)) == [
        matching.pk
    ]


def test_a_time_trigger_fires_once_per_record_per_threshold_crossing(stages):
    start = datetime.datetime(2026, 12, 1, 9, 0, tzinfo=datetime.UTC)
    with time_machine.travel(start, tick=False) as clock:
        deals = {
            days: OpportunityFactory(
                stage=stages["New"], close_date=start.date() + datetime.timedelta(days=days)
            )
            for days in (2, 4, 6, 30)
        }
        the_rule = rule(
            model="sales.Opportunity",
            trigger_kind="time",
            trigger={"date_field": "close_date", "days": 3, "when": "before"},
            actions=[{"kind": "update_fields", "params": {"values": {"priority": "urgent"}}}],
        )
        fired_by_day = []
        for _day in range(6):
            engine.time_scan()
            engine.time_scan()  # two scans (two beats) the same day fire nothing more
            fired_by_day.append(
                sorted(AutomationRun.objects.filter(rule=the_rule).values_list("record_id", flat=True))
            )
            clock.shift(datetime.timedelta(days=1))
        settle()

    # Saved on day 0: the deal closing on day 2 crossed "3 days before" on day -1, before the rule
    # existed, so it never fires; the others fire on the day they cross, once.
    assert fired_by_day[0] == []
    assert fired_by_day[1] == fired_by_day[2] == [deals[4].pk]
    assert fired_by_day[3] == fired_by_day[4] == sorted([deals[4].pk, deals[6].pk])
    assert fired_by_day[5] == fired_by_day[3]  # never twice, and the deal in 30 days not yet
    assert Opportunity.objects.get(pk=deals[4].pk).priority == "urgent"


def test_a_moved_date_crosses_the_threshold_again(stages):
    start = datetime.datetime(2026, 12, 1, 9, 0, tzinfo=datetime.UTC)
    with time_machine.travel(start, tick=False) as clock:
        deal = OpportunityFactory(stage=stages["New"], close_date=start.date() + datetime.timedelta(days=1))
        the_rule = rule(
            model="sales.Opportunity",
            trigger_kind="time",
            trigger={"date_field": "close_date", "days": 1, "when": "after"},
            actions=[],
        )
        clock.shift(datetime.timedelta(days=2))
        engine.time_scan()
        assert AutomationRun.objects.filter(rule=the_rule).count() == 1
        sales_services.opportunity_update(
            opportunity=deal,
            user=SYSTEM,
            data={"close_date": timezone.localdate() + datetime.timedelta(days=1)},
        )
        clock.shift(datetime.timedelta(days=1))
        engine.time_scan()
        assert AutomationRun.objects.filter(rule=the_rule).count() == 1
        clock.shift(datetime.timedelta(days=1))
        engine.time_scan()
        assert AutomationRun.objects.filter(rule=the_rule).count() == 2


def test_no_activity_for_n_days(stages):
    start = datetime.datetime(2026, 12, 1, 9, 0, tzinfo=datetime.UTC)
    with time_machine.travel(start, tick=False) as clock:
        quiet = LeadFactory(stage=stages["New"])
        the_rule = rule(trigger_kind="time", trigger={"no_activity_days": 7}, actions=[])
        clock.shift(datetime.timedelta(days=6))
        engine.time_scan()
        assert not AutomationRun.objects.filter(rule=the_rule).exists()
        clock.shift(datetime.timedelta(days=2))
        engine.time_scan()
        engine.time_scan()
        assert list(AutomationRun.objects.filter(rule=the_rule).values_list("record_id", flat=True)) == [
            quiet.pk
        ]


def test_a_deal_without_activity_for_n_days_fires_once_per_quiet_spell(stages):
    """Opportunities (registered from sales) have the trigger too, read from their last activity,
    which the activity services keep: each deal fires once per threshold crossing."""
    start = datetime.datetime(2026, 12, 1, 9, 0, tzinfo=datetime.UTC)

    def fired():
        runs = AutomationRun.objects.filter(rule=the_rule).order_by("id")
        return list(runs.values_list("record_id", flat=True))

    with time_machine.travel(start, tick=False) as clock:
        quiet = OpportunityFactory(stage=stages["New"])
        busy = OpportunityFactory(stage=stages["New"])
        the_rule = rule(
            model="sales.Opportunity", trigger_kind="time", trigger={"no_activity_days": 7}, actions=[]
        )
        clock.shift(datetime.timedelta(days=3))
        activity_create(user=SYSTEM, data={"subject": "Call", "activity_type": "call", "opportunity": busy})
        assert Opportunity.objects.get(pk=busy.pk).last_activity_at == timezone.now()
        clock.shift(datetime.timedelta(days=3))  # day 6
        engine.time_scan()
        assert fired() == []
        clock.shift(datetime.timedelta(days=2))  # day 8: the deal never touched crossed on day 7
        engine.time_scan()
        engine.time_scan()
        assert fired() == [quiet.pk]
        clock.shift(datetime.timedelta(days=3))  # day 11: the other one crossed on day 10
        engine.time_scan()
        assert fired() == [quiet.pk, busy.pk]
        activity_create(user=SYSTEM, data={"subject": "Mail", "activity_type": "email", "opportunity": quiet})
        clock.shift(datetime.timedelta(days=6))  # day 17: quiet again for 6 days only
        engine.time_scan()
        assert fired() == [quiet.pk, busy.pk]
        clock.shift(datetime.timedelta(days=2))  # day 19: a second quiet spell, a second run
        engine.time_scan()
        engine.time_scan()
        assert fired() == [quiet.pk, busy.pk, quiet.pk]


@pytest.mark.parametrize(
    "model, factory, link",
    [("crm.Contact", ContactFactory, "contact"), ("crm.Account", AccountFactory, "account")],
    ids=["contact", "account"],
)
def test_a_contact_or_account_without_activity_for_n_days_fires_once_per_quiet_spell(model, factory, link):
    """Contacts and accounts have the trigger too, read from their last activity, which the activity
    services keep (one logged alone, several in bulk): each fires once per threshold crossing."""
    start = datetime.datetime(2026, 12, 1, 9, 0, tzinfo=datetime.UTC)

    def fired():
        runs = AutomationRun.objects.filter(rule=the_rule).order_by("id")
        return list(runs.values_list("record_id", flat=True))

    with time_machine.travel(start, tick=False) as clock:
        quiet, busy = factory(), factory()
        the_rule = rule(model=model, trigger_kind="time", trigger={"no_activity_days": 7}, actions=[])
        clock.shift(datetime.timedelta(days=3))
        activities_create_bulk(user=SYSTEM, rows=[{"subject": "Call", "activity_type": "call", link: busy}])
        assert type(busy).objects.get(pk=busy.pk).last_activity_at == timezone.now()
        clock.shift(datetime.timedelta(days=3))  # day 6
        engine.time_scan()
        assert fired() == []
        clock.shift(datetime.timedelta(days=2))  # day 8: the one never touched crossed on day 7
        engine.time_scan()
        engine.time_scan()
        assert fired() == [quiet.pk]
        clock.shift(datetime.timedelta(days=3))  # day 11: the other one crossed on day 10
        engine.time_scan()
        assert fired() == [quiet.pk, busy.pk]
        activity_create(user=SYSTEM, data={"subject": "Mail", "activity_type": "email", link: quiet})
        clock.shift(datetime.timedelta(days=6))  # day 17: quiet again for 6 days only
        engine.time_scan()
        assert fired() == [quiet.pk, busy.pk]
        clock.shift(datetime.timedelta(days=2))  # day 19: a second quiet spell, a second run
        engine.time_scan()
        assert fired() == [quiet.pk, busy.pk, quiet.pk]


@pytest.mark.postgres_only
@pytest.mark.skipif(connection.vendor != "postgresql", reason="the plan of PostgreSQL")
@pytest.mark.parametrize(
    "factory, index",
    [(ContactFactory, "crm_contact_quiet_since"), (AccountFactory, "crm_account_quiet_since")],
    ids=["contact", "account"],
)
def test_the_quiet_contacts_and_accounts_are_found_through_their_index(factory, index):
    records = factory.create_batch(3)
    now = timezone.now()
    quiet_since = Coalesce("last_activity_at", "created_at")
    window = type(records[0]).objects.filter(
        Q(GreaterThan(quiet_since, now - datetime.timedelta(days=8)))
        & Q(LessThanOrEqual(quiet_since, now - datetime.timedelta(days=7)))
    )
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
    assert index in window.explain()


@pytest.mark.postgres_only
@pytest.mark.skipif(connection.vendor != "postgresql", reason="the plan of PostgreSQL")
def test_the_quiet_deals_are_found_through_their_index(stages):
    OpportunityFactory.create_batch(3, stage=stages["New"])
    now = timezone.now()
    quiet_since = Coalesce("last_activity_at", "created_at")
    window = Opportunity.objects.filter(
        Q(GreaterThan(quiet_since, now - datetime.timedelta(days=8)))
        & Q(LessThanOrEqual(quiet_since, now - datetime.timedelta(days=7)))
    )
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
    assert "sales_opp_quiet_since" in window.explain()


def test_the_preview_says_what_would_happen_and_writes_nothing(stages, personas):
    vip = TagFactory(name="VIP")
    lead = LeadFactory(stage=stages["New"], priority="high", owner=personas.users["owner"])
    team = personas.teams["West"]
    the_rule = rule(
        trigger={"events": ["updated"]},
        conditions=[
            {"field": "priority", "op": "eq", "value": "high"},
            {"field": "tags", "op": "not_contains", "value": "VIP"},
            {"field": "rating", "op": "eq", "value": "hot"},
        ],
        actions=[
            {"kind": "update_fields", "params": {"values": {"rating": "hot"}}},
            {"kind": "assign_owner", "params": {"team_id": team.pk, "strategy": "round_robin"}},
            {"kind": "add_tags", "params": {"tag_ids": [vip.pk]}},
            {"kind": "move_stage", "params": {"stage_id": stages["Qualified"].pk}},
            {"kind": "notify", "params": {"record_owner": True, "title": "Look at {{ record.name }}"}},
            {"kind": "create_opportunity", "params": {}},
            {"kind": "create_activity", "params": {"subject": "Call {{ record.name }}", "due_in_days": 2}},
            {"kind": "stop", "params": {}},
        ],
    )
    before = database_fingerprint()

    preview = engine.rule_preview(rule=the_rule, record_id=lead.pk)

    assert database_fingerprint() == before
    assert preview["matches"] is False
    assert [c["matches"] for c in preview["conditions"]] == [True, True, False]
    would = [a["would"] for a in preview["actions"]]
    assert would[0].startswith("Would set rating: '' → 'hot'")
    assert would[1].startswith("Would assign to owner")
    assert would[2] == "Would add the tags VIP"
    assert would[3] == "Would move from New to Qualified"
    assert would[4] == f"Would notify owner: “Look at {lead.name}”"
    assert would[5] == f"Would convert the lead into an opportunity “{lead.name}”"
    assert would[6] == f"Would create a task “Call {lead.name}” due in 2 days, owned by owner"
    assert would[7] == "Would stop here"
