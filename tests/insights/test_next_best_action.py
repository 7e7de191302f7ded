"""Next best action: each rule on a record made for it, the ranking, visibility, the API, the record page
and the dashboard, and a page of records at a fixed number of queries."""

import datetime
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import connection
from django.db.models.fields.json import KT
from django.db.models.functions import Cast
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format

from activities.models import Activity, ActivityStatus
from crm.models import Lead
from crm.next_actions import (
    Context,
    UnsupportedCondition,
    fires,
    next_action_rules,
    next_actions_for,
    next_actions_mine,
    next_actions_of,
)
from sales.models import Opportunity
from sales.models_quotes import Quote, QuoteStatus
from tests.factories import ActivityFactory, ContactFactory, LeadFactory, OpportunityFactory

pytestmark = pytest.mark.django_db
NOW = timezone.now()


def ago(days: float, hours: float = 0) -> datetime.datetime:
    return NOW - datetime.timedelta(days=days, hours=hours)


def make_lead(stage, *, created_days=0, last_activity_days=None, **fields) -> Lead:
    lead = LeadFactory(stage=stage, **fields)
    Lead.objects.filter(pk=lead.pk).update(
        created_at=ago(created_days),
        last_activity_at=None if last_activity_days is None else ago(last_activity_days),
    )
    return Lead.objects.get(pk=lead.pk)


def make_deal(stage, *, created_days=0, last_activity_days=None, **fields) -> Opportunity:
    deal = OpportunityFactory(stage=stage, **fields)
    Opportunity.objects.filter(pk=deal.pk).update(
        created_at=ago(created_days),
        last_activity_at=None if last_activity_days is None else ago(last_activity_days),
    )
    return Opportunity.objects.get(pk=deal.pk)


def planned(record, **fields):
    """An open task due tomorrow on ``record``: the next step is planned."""
    fk = record._meta.model_name
    return ActivityFactory(
        **{fk: record},
        activity_type="task",
        status=ActivityStatus.SCHEDULED,
        due_date=NOW + datetime.timedelta(days=1),
        **fields,
    )


def actions(user, record) -> dict:
    return {action.rule: action for action in next_actions_of(user=user, record=record, now=NOW)}


def quote(deal, *, status, number="Q-2026-0001", sent_days=None, created_days=0, **fields) -> Quote:
    made = Quote.objects.create(
        opportunity=deal,
        number=number,
        status=status,
        sent_at=None if sent_days is None else ago(sent_days),
        **fields,
    )
    Quote.objects.filter(pk=made.pk).update(created_at=ago(created_days))
    return made


# --- crm: leads ---------------------------------------------------------------------------------------


def test_hot_lead_without_owner(superuser, stages):
    lead = make_lead(stages["New"], rating="hot", last_activity_days=0)
    planned(lead)
    found = next_actions_of(user=superuser, record=lead, now=NOW)
    assert [(a.rule, a.reason, a.label) for a in found] == [
        ("lead_hot_unowned", "Hot lead without an owner", "Assign an owner")
    ]
    assert found[0].url == reverse("admin:crm_lead_change", args=[lead.pk]) + "#id_owner"
    lead.owner = superuser
    lead.save()
    assert next_actions_of(user=superuser, record=lead, now=NOW) == []


def test_new_lead_not_contacted_gets_a_call_link(superuser, stages):
    lead = make_lead(stages["New"], created_days=3, contact_name="Dana Smith")
    fresh = make_lead(stages["New"], created_days=0)
    planned(lead)
    planned(fresh)
    Lead.objects.filter(pk__in=[lead.pk, fresh.pk]).update(last_activity_at=None)

    found = actions(superuser, lead)
    action = found["lead_not_contacted"]
    assert (action.reason, action.label, action.kind) == (
        "New 3 days ago, not contacted yet",
        "Log a call",
        "call",
    )
    url = urlsplit(action.url)
    assert url.path == reverse("admin:activities_activity_add")
    query = parse_qs(url.query)
    assert query["lead"] == [str(lead.pk)] and query["activity_type"] == ["call"]
    assert query["subject"] == ["Call with Dana Smith"] and query["status"] == ["completed"]
    assert query["next"] == [reverse("admin:crm_lead_change", args=[lead.pk])]
    assert "lead_not_contacted" not in actions(superuser, fresh)


def test_lead_quiet_for_sixteen_days_in_its_stage(superuser, stages, settings):
    settings.CRM_NEXT_ACTION_QUIET_DAYS = 14
    quiet = make_lead(stages["Proposal"], created_days=40, last_activity_days=16)
    recent = make_lead(stages["Proposal"], created_days=40, last_activity_days=3)
    assert actions(superuser, quiet)["lead_quiet"].reason == "No activity for 16 days in Proposal"
    assert "lead_quiet" not in actions(superuser, recent)


# --- sales: deals and quotes ---------------------------------------------------------------------------


def test_deal_quiet_and_never_touched(superuser, stages):
    quiet = make_deal(stages["Proposal"], created_days=40, last_activity_days=16)
    untouched = make_deal(stages["Qualified"], created_days=20)
    assert actions(superuser, quiet)["deal_quiet"].reason == "No activity for 16 days in Proposal"
    assert actions(superuser, untouched)["deal_quiet"].reason == (
        "No activity since it was created 20 days ago, in Qualified"
    )
    assert actions(superuser, quiet)["deal_quiet"].label == "Log a call"


def test_close_date_passed_while_open(superuser, stages):
    today = timezone.localdate(NOW)
    late = make_deal(stages["New"], close_date=today - datetime.timedelta(days=3), last_activity_days=0)
    on_time = make_deal(stages["New"], close_date=today, last_activity_days=0)
    action = actions(superuser, late)["close_date_passed"]
    assert action.reason == (
        f"Close date {date_format(today - datetime.timedelta(days=3))} passed 3 days ago, still open"
    )
    assert action.url == reverse("admin:sales_opportunity_change", args=[late.pk]) + "#id_close_date"
    assert "close_date_passed" not in actions(superuser, on_time)


def test_quote_sent_seven_days_ago_without_answer(superuser, stages):
    deal = make_deal(stages["Proposal"], created_days=30, last_activity_days=7, contact=ContactFactory())
    sent = quote(deal, status=QuoteStatus.SENT, sent_days=7)
    found = next_actions_of(user=superuser, record=deal, now=NOW)
    # The quote's call ranks first and stands for the "no activity" call on the same deal.
    assert found[0].rule == "quote_unanswered"
    assert (found[0].reason, found[0].label) == (
        "Quote Q-2026-0001 sent 7 days ago, no answer",
        "Call about the quote",
    )
    assert (found[0].target_type, found[0].target_id) == ("quote", sent.pk)
    assert [a.kind for a in found].count("call") == 1

    # A call logged two days ago follows it up.
    Opportunity.objects.filter(pk=deal.pk).update(last_activity_at=ago(2))
    assert "quote_unanswered" not in actions(superuser, Opportunity.objects.get(pk=deal.pk))


def test_an_expired_unanswered_quote_is_revised(superuser, stages):
    deal = make_deal(stages["Proposal"], created_days=30, last_activity_days=10)
    expired = quote(
        deal,
        status=QuoteStatus.SENT,
        sent_days=10,
        valid_until=timezone.localdate(NOW) - datetime.timedelta(days=1),
    )
    action = actions(superuser, deal)["quote_unanswered"]
    assert action.label == "Revise the quote"
    assert action.url == reverse("admin:sales_quote_revise", args=[expired.pk])
    assert "expired on" in action.reason


def test_a_drafted_quote_not_sent(superuser, stages):
    deal = make_deal(stages["Proposal"], last_activity_days=0)
    draft = quote(deal, status=QuoteStatus.DRAFT, created_days=3)
    action = actions(superuser, deal)["quote_not_sent"]
    assert (action.reason, action.label) == (
        "Quote Q-2026-0001 drafted 3 days ago, not sent",
        "Send the quote",
    )
    assert action.url == reverse("admin:sales_quote_send", args=[draft.pk])
    Quote.objects.filter(pk=draft.pk).update(created_at=ago(0, hours=2))
    assert "quote_not_sent" not in actions(superuser, deal)


def test_an_accepted_quote_on_an_open_deal_comes_first(superuser, stages):
    deal = make_deal(stages["Proposal"], created_days=30, last_activity_days=20)
    quote(deal, status=QuoteStatus.ACCEPTED, sent_days=5, answered_at=ago(2))
    found = next_actions_of(user=superuser, record=deal, now=NOW)
    assert found[0].rule == "quote_accepted_deal_open"
    assert found[0].reason == "Quote Q-2026-0001 was accepted 2 days ago; the deal is still open"
    assert found[0].url == reverse("admin:sales_opportunity_mark_won", args=[deal.pk])
    assert [a.priority for a in found] == sorted((a.priority for a in found), reverse=True)


# --- activities: overdue, meetings without follow-up, no next step -----------------------------------


def test_overdue_activity_names_the_oldest_and_counts_the_rest(superuser, stages):
    lead = make_lead(stages["New"], last_activity_days=0)
    oldest = ActivityFactory(
        lead=lead, activity_type="task", subject="Send pricing", due_date=ago(2, hours=1)
    )
    ActivityFactory(lead=lead, activity_type="call", subject="Call back", due_date=ago(1))
    ActivityFactory(
        lead=lead,
        activity_type="task",
        subject="Done",
        due_date=ago(5),
        status=ActivityStatus.COMPLETED,
        completed_at=ago(5),
    )
    action = actions(superuser, lead)["activity_overdue"]
    assert action.reason == "Overdue task: “Send pricing”, due 2 days ago (and 1 more)"
    assert action.label == "Open the task"
    assert action.url == reverse("admin:activities_activity_change", args=[oldest.pk])
    assert "no_next_step" not in actions(superuser, lead)


def test_overdue_activity_a_rep_cannot_see_is_not_named(people, stages):
    owner, outsider = people.users["owner"], people.users["outsider"]
    deal = make_deal(stages["New"], owner=owner, last_activity_days=0)
    ActivityFactory(opportunity=deal, owner=outsider, subject="Secret", due_date=ago(3))
    assert "activity_overdue" not in actions(owner, deal)
    assert "Secret" in actions(people.users["superuser"], deal)["activity_overdue"].reason
    # The outsider's open task is still a next step: "no next step" is not said either.
    assert "no_next_step" not in actions(owner, deal)


def test_meeting_held_without_follow_up(superuser, stages):
    deal = make_deal(
        stages["Proposal"], last_activity_days=3, contact=ContactFactory(first_name="Ann", last_name="Lee")
    )
    meeting = ActivityFactory(
        opportunity=deal,
        activity_type="meeting",
        subject="Demo",
        status=ActivityStatus.COMPLETED,
        due_date=ago(3),
        completed_at=ago(3),
    )
    Activity.objects.filter(pk=meeting.pk).update(created_at=ago(4))
    action = actions(superuser, deal)["meeting_without_follow_up"]
    assert action.reason == f"Meeting “Demo” on {date_format(timezone.localtime(ago(3)))}, no follow-up since"
    assert action.label == "Schedule a follow-up"
    query = parse_qs(urlsplit(action.url).query)
    assert query["opportunity"] == [str(deal.pk)] and query["activity_type"] == ["task"]
    assert query["subject"] == ["Follow up with Ann Lee"] and query["status"] == ["scheduled"]
    # "No next step" says the same thing less precisely: one "schedule a task" per record.
    assert [a.kind for a in next_actions_of(user=superuser, record=deal, now=NOW)].count("task") == 1

    planned(deal)
    assert actions(superuser, deal) == {}


def test_a_call_logged_after_the_meeting_follows_it_up(superuser, stages):
    deal = make_deal(stages["Proposal"], last_activity_days=1)
    ActivityFactory(
        opportunity=deal,
        activity_type="meeting",
        status=ActivityStatus.COMPLETED,
        due_date=ago(3),
        completed_at=ago(3),
    )
    ActivityFactory(
        opportunity=deal,
        activity_type="call",
        status=ActivityStatus.COMPLETED,
        due_date=ago(1),
        completed_at=ago(1),
    )
    found = actions(superuser, deal)
    assert "meeting_without_follow_up" not in found
    assert found["no_next_step"].reason == "No next step planned: no open activity"


def test_no_next_step_on_lead_and_deal(superuser, stages):
    lead = make_lead(stages["New"], last_activity_days=1)
    deal = make_deal(stages["New"], last_activity_days=1)
    assert next_actions_of(user=superuser, record=lead, now=NOW)[0].rule == "no_next_step"
    assert next_actions_of(user=superuser, record=deal, now=NOW)[0].label == "Schedule a next step"
    planned(lead)
    planned(deal)
    assert actions(superuser, lead) == {} and actions(superuser, deal) == {}


# --- whether a rule fires: asked of the values read, as the database would answer ---------------------


def test_every_rule_fires_on_the_values_read_where_the_database_says_it_does(superuser, people, stages):
    """The rules' conditions are Q objects asked of the values a query read (``fires``), not a CASE in
    SQL: on records made so that each rule's values are there, missing (NULL) or on either side of its
    threshold, the answer must be the database's, rule by rule. A value a rule reads inside a JSON
    object (its ``parts``) is asked of the database as that key of the object, cast to its type."""
    owner = people.users["owner"]
    leads = [
        make_lead(stages["New"], rating="hot", created_days=5),  # unowned, hot, never contacted
        make_lead(stages["New"], owner=owner, created_days=40, last_activity_days=20),
        make_lead(stages["New"], owner=owner, created_days=40, last_activity_days=1),
        make_lead(stages["New"], owner=owner, created_days=0),
    ]
    planned(leads[1])
    ActivityFactory(lead=leads[2], activity_type="task", due_date=ago(2))
    ActivityFactory(
        lead=leads[3],
        activity_type="meeting",
        status=ActivityStatus.COMPLETED,
        due_date=ago(3),
        completed_at=ago(3),
    )
    # Logging those activities touched the leads: one has been quiet for 20 days, one for a day.
    Lead.objects.filter(pk=leads[1].pk).update(last_activity_at=ago(20))
    Lead.objects.filter(pk=leads[2].pk).update(last_activity_at=ago(1))
    deals = [
        make_deal(stages["Proposal"], owner=owner, created_days=30, last_activity_days=20),
        make_deal(stages["Proposal"], owner=owner, created_days=30, last_activity_days=0),
        make_deal(
            stages["New"], created_days=2, close_date=timezone.localdate(NOW) - datetime.timedelta(days=1)
        ),
        make_deal(stages["New"], owner=owner, created_days=30),
    ]
    quote(deals[0], status=QuoteStatus.SENT, number="Q-1", sent_days=10)
    quote(deals[1], status=QuoteStatus.ACCEPTED, number="Q-2", sent_days=3, answered_at=ago(1))
    quote(deals[2], status=QuoteStatus.DRAFT, number="Q-3", created_days=2)
    quote(deals[3], status=QuoteStatus.SENT, number="Q-4", sent_days=1)
    planned(deals[1])
    ActivityFactory(opportunity=deals[0], activity_type="task", due_date=ago(2))
    for deal in (deals[2], deals[3]):  # a meeting held; on the last deal, a call after it
        meeting = ActivityFactory(
            opportunity=deal,
            activity_type="meeting",
            status=ActivityStatus.COMPLETED,
            due_date=ago(5),
            completed_at=ago(5),
        )
        Activity.objects.filter(pk=meeting.pk).update(created_at=ago(6))
    ActivityFactory(
        opportunity=deals[3],
        activity_type="call",
        status=ActivityStatus.COMPLETED,
        due_date=ago(1),
        completed_at=ago(1),
    )
    context = Context(user=superuser, now=NOW)
    asked = {}
    for model, records in ((Lead, leads), (Opportunity, deals)):
        rules = next_action_rules(model._meta.label)
        fields = {field.name: field.attname for field in model._meta.concrete_fields}
        annotated = model.objects.filter(pk__in=[record.pk for record in records])
        for rule in rules:
            annotated = annotated.annotate(**rule.annotations(context))
        for rule in rules:
            annotated = annotated.annotate(
                **{
                    name: Cast(KT(f"{part.annotation}__{part.key}"), part.output_field)
                    for name, part in rule.parts.items()
                }
            )
        for rule in rules:
            condition = rule.condition(context)
            in_sql = set(annotated.filter(condition).values_list("pk", flat=True))
            in_python = {
                record.pk
                for record in annotated
                if fires(
                    condition,
                    lambda name, record=record, fields=fields, rule=rule: (
                        rule.parts[name].read(vars(record))
                        if name in rule.parts
                        else getattr(record, fields.get(name, name))
                    ),
                )
            }
            assert in_python == in_sql, rule.key
            asked[rule.key] = (len(in_sql), len(records) - len(in_sql))
    # Each rule was asked where it fires and where it does not.
    assert all(fired and not_fired for fired, not_fired in asked.values()), asked


def test_a_condition_the_values_cannot_answer_is_refused_not_guessed():
    from django.db.models import F, Q

    with pytest.raises(UnsupportedCondition):
        fires(Q(stage__is_won=True), lambda name: None)
    with pytest.raises(UnsupportedCondition):
        fires(Q(created_at__lt=F("updated_at")), lambda name: None)
    # NULL: unknown, whether asked or denied; IS NULL is a plain answer.
    assert not fires(Q(score__gt=1), lambda name: None)
    assert not fires(~Q(score__gt=1), lambda name: None)
    assert fires(Q(score__isnull=True) | Q(score__gt=1), lambda name: None)
    assert fires(Q(score=None), lambda name: None)


_SQL_OPERATORS = {"exact": "=", "lt": "<", "lte": "<=", "gt": ">", "gte": ">="}


def _as_sql(condition, params: list) -> str:
    """``condition`` written as plain SQL (no IS NOT NULL added to a negation, as Django's filter does),
    so the database answers it with its own three-valued logic."""
    from django.db.models import Q

    parts = []
    for child in condition.children:
        if isinstance(child, Q):
            parts.append(_as_sql(child, params))
            continue
        path, value = child
        column, _, lookup = path.partition("__")
        lookup = lookup or "exact"
        if lookup == "exact" and value is None:
            lookup, value = "isnull", True
        if lookup == "isnull":
            parts.append(f"({column} IS {'' if value else 'NOT '}NULL)")
        elif lookup == "in":
            params.extend(value)
            parts.append(f"({column} IN ({', '.join(['%s'] * len(value))}))")
        else:
            params.append(value)
            parts.append(f"({column} {_SQL_OPERATORS[lookup]} %s)")
    joined = f" {condition.connector} ".join(parts) or ("1 = 1" if condition.connector == "AND" else "1 = 0")
    return f"(NOT ({joined}))" if condition.negated else f"({joined})"


def test_a_compiled_condition_answers_and_or_and_not_as_the_database_does(stages):
    """``compile_condition`` builds each condition once for every record asked; its three-valued answer
    (True, False or unknown) must be the database's for nested AND, OR and NOT over values that are
    NULL, below, at or above a threshold, record by record."""
    from django.db.models import Q

    from crm.next_actions import compile_condition

    leads = [
        make_lead(stages["New"], score=score, rating=rating, probability=probability)
        for score in (None, 10, 50)
        for rating in ("hot", "cold")
        for probability in (None, 20, 80)
    ]
    conditions = [
        Q(score__gt=20),
        ~Q(score__gt=20),
        Q(score__gt=20, probability__lt=50),
        Q(score__gt=20) | Q(probability__lt=50),
        ~(Q(score__gt=20) | Q(probability__lt=50)),
        ~(Q(score__gt=20) & ~Q(probability__gte=50)),
        Q(rating="hot") & (Q(score__isnull=True) | ~Q(probability__in=[20, 30])),
        (Q(score__lte=10) | Q(score=None)) & ~Q(rating="cold", probability__gt=10),
        Q(probability=None) | (Q(score__gte=50) & Q(probability__lte=80)),
        ~Q(score__isnull=False, probability=None),
        Q(),
        ~Q(),
    ]
    ids = [lead.pk for lead in leads]
    rows = {lead.pk: lead for lead in Lead.objects.filter(pk__in=ids)}
    answered = set()
    for condition in conditions:
        params: list = []
        sql = _as_sql(condition, params)
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT id, {sql} FROM crm_lead WHERE id IN ({', '.join(['%s'] * len(ids))})",
                [*params, *ids],
            )
            in_sql = {pk: None if answer is None else bool(answer) for pk, answer in cursor.fetchall()}
        truth = compile_condition(condition)
        in_python = {pk: truth(lambda name, lead=lead: getattr(lead, name)) for pk, lead in rows.items()}
        assert in_python == in_sql, (condition, sql)
        answered |= set(in_sql.values())
    # Every answer was given somewhere, unknown included.
    assert answered == {True, False, None}


# --- closed and hidden records, my next actions -------------------------------------------------------


def test_closed_and_hidden_records_have_none(people, stages):
    owner = people.users["owner"]
    theirs = make_deal(stages["New"], owner=people.users["outsider"], created_days=30)
    won = make_deal(stages["Won"], owner=owner, created_days=30, status="won", closed_at=NOW, probability=100)
    assert next_actions_of(user=owner, record=theirs, now=NOW) == []
    assert next_actions_of(user=owner, record=won, now=NOW) == []


def test_my_next_actions_are_my_records_most_pressing_first(people, stages):
    owner = people.users["owner"]
    quiet_lead = make_lead(stages["New"], owner=owner, created_days=40, last_activity_days=20)
    planned(quiet_lead)
    Lead.objects.filter(pk=quiet_lead.pk).update(last_activity_at=ago(20))
    accepted = make_deal(stages["Proposal"], owner=owner, last_activity_days=0)
    planned(accepted)
    quote(accepted, status=QuoteStatus.ACCEPTED, sent_days=3, answered_at=ago(1))
    make_deal(stages["New"], owner=people.users["teammate"], created_days=40)

    mine = next_actions_mine(user=owner, now=NOW)
    ranked = [(item.record_type, item.record.pk, item.actions[0].rule) for item in mine]
    assert ranked[0] == ("opportunity", accepted.pk, "quote_accepted_deal_open")
    assert ("lead", quiet_lead.pk, "lead_quiet") in ranked
    assert all(item.record.owner_id == owner.pk for item in mine)
    assert len(next_actions_mine(user=owner, limit=1, now=NOW)) == 1


def test_a_page_of_records_costs_one_query_per_kind(superuser, stages, django_assert_max_num_queries):
    def page(count):
        deals = []
        for index in range(count):
            deal = make_deal(
                stages["Proposal"],
                created_days=30,
                last_activity_days=20,
                close_date=timezone.localdate(NOW) - datetime.timedelta(days=1),
            )
            quote(deal, status=QuoteStatus.SENT, number=f"Q-{count}-{index}", sent_days=10)
            ActivityFactory(opportunity=deal, activity_type="task", due_date=ago(2))
            deals.append(deal.pk)
        return deals

    small, large = page(2), page(12)
    with django_assert_max_num_queries(1):
        found = next_actions_for(user=superuser, model_label="sales.opportunity", ids=small, now=NOW)
    with django_assert_max_num_queries(1):
        found = next_actions_for(user=superuser, model_label="sales.opportunity", ids=large, now=NOW)
    assert len(found) == 12
    assert {a.rule for a in found[large[0]].actions} >= {
        "quote_unanswered",
        "close_date_passed",
        "activity_overdue",
    }
    # Mine: a kind of record the user owns none of costs one query (the permission checks of a
    # superuser need none), one they own three: the records scanned, the rules' values over them, and
    # the records shown.
    with django_assert_max_num_queries(2):
        assert next_actions_mine(user=superuser, limit=10, now=NOW) == []
    Opportunity.objects.update(owner=superuser)
    with django_assert_max_num_queries(4):
        assert len(next_actions_mine(user=superuser, limit=10, now=NOW)) == 10


# --- API ----------------------------------------------------------------------------------------------


def test_api_record_next_actions(api_as, people, stages):
    owner = people.users["owner"]
    deal = make_deal(stages["Proposal"], owner=owner, created_days=30, last_activity_days=16)
    response = api_as("owner").get(f"/api/v1/crm/opportunities/{deal.pk}/next-actions/")
    assert response.status_code == 200
    body = response.json()
    assert (body["record_type"], body["record_id"]) == ("opportunity", deal.pk)
    rules = {item["rule"]: item for item in body["results"]}
    assert rules["deal_quiet"]["reason"] == "No activity for 16 days in Proposal"
    assert rules["deal_quiet"]["url"].startswith(reverse("admin:activities_activity_add"))
    assert set(rules["deal_quiet"]) == {
        "rule",
        "priority",
        "reason",
        "label",
        "kind",
        "url",
        "target_type",
        "target_id",
    }

    lead = people.records["owner"].lead
    response = api_as("owner").get(f"/api/v1/crm/leads/{lead.pk}/next-actions/")
    assert response.status_code == 200 and response.json()["record_type"] == "lead"
    hidden = people.records["outsider"].opportunity
    assert api_as("owner").get(f"/api/v1/crm/opportunities/{hidden.pk}/next-actions/").status_code == 404
    assert api_as("owner").get("/api/v1/crm/leads/999999/next-actions/").status_code == 404


def test_api_my_next_actions(api_as, people, stages):
    owner = people.users["owner"]
    make_deal(stages["Proposal"], owner=owner, name="Quiet deal", created_days=30, last_activity_days=16)
    response = api_as("owner").get("/api/v1/crm/next-actions/?limit=5")
    assert response.status_code == 200
    results = response.json()["results"]
    assert results and all(item["record_type"] in ("lead", "opportunity") for item in results)
    names = {item["record_name"] for item in results}
    assert "Quiet deal" in names and "outsider_rep deal" not in names
    first = results[0]
    assert set(first) == {"record_type", "record_id", "record_name", "record_url", "actions"}
    assert first["actions"] and first["actions"][0]["url"]

    bad = api_as("owner").get("/api/v1/crm/next-actions/?limit=0")
    assert bad.status_code == 400 and "limit" in bad.json()
    assert api_as("owner").get("/api/v1/crm/next-actions/?limit=x").status_code == 400


# --- admin: the record page and the dashboard ---------------------------------------------------------


def test_record_page_shows_the_actions_with_their_links(admin_client, stages):
    deal = make_deal(stages["Proposal"], created_days=30, last_activity_days=16)
    draft = quote(deal, status=QuoteStatus.DRAFT, created_days=2)
    html = admin_client.get(reverse("admin:sales_opportunity_change", args=[deal.pk])).content.decode()
    assert 'id="next-actions"' in html
    assert "No activity for 16 days in Proposal" in html
    assert reverse("admin:sales_quote_send", args=[draft.pk]) in html and "Send the quote" in html
    lead = make_lead(stages["New"], rating="hot")
    html = admin_client.get(reverse("admin:crm_lead_change", args=[lead.pk])).content.decode()
    assert "Hot lead without an owner" in html and "#id_owner" in html


def test_dashboard_lists_my_next_actions(admin_client, admin_user, stages):
    make_deal(stages["Proposal"], owner=admin_user, name="Stale deal", created_days=30, last_activity_days=16)
    response = admin_client.get(reverse("admin:index"))
    html = response.content.decode()
    assert 'id="my-next-actions"' in html and "Stale deal" in html
    assert [item.record.name for item in response.context["my_next_actions"]] == ["Stale deal"]


def test_record_endpoint_and_page_cost_the_same_with_more_to_say(api_as, admin_client, people, stages):
    owner = people.users["owner"]
    deal = make_deal(stages["Proposal"], owner=owner, created_days=30, last_activity_days=20)
    client = api_as("owner")
    url = f"/api/v1/crm/opportunities/{deal.pk}/next-actions/"
    page = reverse("admin:sales_opportunity_change", args=[deal.pk])
    client.get(url)
    admin_client.get(page)
    with CaptureQueriesContext(connection) as api_before:
        client.get(url)
    with CaptureQueriesContext(connection) as page_before:
        admin_client.get(page)
    for index in range(6):
        ActivityFactory(opportunity=deal, owner=owner, activity_type="task", due_date=ago(index + 1))
        quote(deal, status=QuoteStatus.SENT, number=f"Q-2026-1{index}", sent_days=10)
    Opportunity.objects.filter(pk=deal.pk).update(last_activity_at=ago(20))
    with CaptureQueriesContext(connection) as api_after:
        body = client.get(url).json()
    with CaptureQueriesContext(connection) as page_after:
        admin_client.get(page)
    assert {item["rule"] for item in body["results"]} >= {"activity_overdue", "quote_unanswered"}
    assert len(api_after) == len(api_before)
    assert len(page_after) == len(page_before)
