"""Lead scoring: each rule, the breakdown, kept current by the services, recomputed in bulk, shown."""

import datetime
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from activities import services as activity_services
from crm import services
from crm.actors import SYSTEM
from crm.importing import engine, import_file
from crm.models import Lead, ScoreBreakdown, ScoringRule
from crm.scoring import (
    lead_score,
    lead_score_refresh,
    lead_scores_refresh,
    new_lead_scorer,
    shown_breakdown,
    stored_breakdown,
)
from tests.crm.importing_helpers import csv_bytes
from tests.factories import LeadFactory

pytestmark = pytest.mark.django_db

NOW = timezone.now()


@pytest.fixture
def rules(db):
    """A small rule set of our own instead of the default one the migration loads."""
    ScoringRule.objects.all().delete()
    for criterion, value, points in [
        ("rating", "hot", 30),
        ("priority", "urgent", 20),
        ("source", "referral", 10),
        ("completeness", "email", 5),
        ("completeness", "phone", 5),
        ("recent_activity", "7", 15),
        ("recent_activity", "30", 5),
        ("expected_revenue", "10000", 10),
        ("expected_revenue", "50000", 25),
    ]:
        ScoringRule.objects.create(criterion=criterion, value=value, points=points)
    return list(ScoringRule.objects.all())


def score(rules, last_activity_days=None, **fields):
    values = {
        "name": "L",
        "status": "open",
        "email": "",
        "phone": "",
        "rating": "",
        "source": "",
        "priority": "low",
    }
    lead = Lead(**(values | fields))
    last = NOW - datetime.timedelta(days=last_activity_days) if last_activity_days is not None else None
    return lead_score(lead, rules, last_activity_at=last, now=NOW)


def test_each_rule_gives_its_points(rules):
    assert score(rules) == (0, [])
    assert score(rules, rating="hot")[0] == 30
    assert score(rules, rating="warm")[0] == 0
    assert score(rules, priority="urgent")[0] == 20
    assert score(rules, source="referral")[0] == 10
    assert score(rules, email="a@b.test", phone="1")[0] == 10
    assert score(rules, email="  ")[0] == 0


def test_only_the_nearest_activity_window_and_the_highest_revenue_count(rules):
    assert score(rules, last_activity_days=3)[0] == 15
    assert score(rules, last_activity_days=20)[0] == 5
    assert score(rules, last_activity_days=40)[0] == 0
    assert score(rules, expected_revenue=Decimal("9999.99"))[0] == 0
    assert score(rules, expected_revenue=Decimal("10000"))[0] == 10
    assert score(rules, expected_revenue=Decimal("80000"))[0] == 25


def test_the_breakdown_explains_the_score_and_it_is_capped_at_100(rules):
    total, breakdown = score(
        rules,
        last_activity_days=1,
        rating="hot",
        priority="urgent",
        source="referral",
        email="a@b.test",
        expected_revenue=Decimal("60000"),
    )
    assert total == 100  # 30 + 25 + 20 + 15 + 10 + 5 = 105
    assert breakdown == [
        {"criterion": "rating", "value": "hot", "points": 30, "label": "Rating is"},
        {
            "criterion": "expected_revenue",
            "value": "50000",
            "points": 25,
            "label": "Expected revenue at least",
        },
        {"criterion": "priority", "value": "urgent", "points": 20, "label": "Priority is"},
        {
            "criterion": "recent_activity",
            "value": "7",
            "points": 15,
            "label": "Activity logged within (days)",
        },
        {"criterion": "source", "value": "referral", "points": 10, "label": "Source is"},
        {"criterion": "completeness", "value": "email", "points": 5, "label": "Contact field filled in"},
    ]


def test_inactive_rules_give_nothing(rules, stages):
    ScoringRule.objects.filter(criterion="rating").update(is_active=False)
    lead = services.lead_create(data={"name": "L", "rating": "hot", "email": ""}, user=SYSTEM)
    assert lead.score == 0


def test_services_keep_the_score_current(rules, stages):
    lead = services.lead_create(data={"name": "L", "email": "a@b.test"}, user=SYSTEM)
    assert (Lead.objects.get(pk=lead.pk).score, lead.score) == (5, 5)
    lead = services.lead_update(lead=lead, data={"rating": "hot"}, user=SYSTEM)
    assert Lead.objects.get(pk=lead.pk).score == 35
    activity_services.activity_create(
        data={"subject": "Call", "activity_type": "call", "lead": lead}, user=SYSTEM
    )
    assert Lead.objects.get(pk=lead.pk).score == 50
    services.lead_mark_lost(lead=lead, user=SYSTEM)
    lost = Lead.objects.get(pk=lead.pk)
    assert (lost.score, lost.score_breakdown) == (None, None)
    services.lead_reopen(lead=lost, user=SYSTEM)
    assert Lead.objects.get(pk=lead.pk).score == 50


def _lead_row_writes(queries) -> list[str]:
    return [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].startswith(('INSERT INTO "crm_lead" ', 'UPDATE "crm_lead" '))
    ]


def test_a_leads_score_is_written_by_the_save_that_writes_the_lead(rules, stages):
    """No UPDATE after the save: the score is an indexed column, and a second write of the row writes
    every index of the leads again."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        lead = services.lead_create(data={"name": "L", "email": "a@b.test", "rating": "hot"}, user=SYSTEM)
    assert len(_lead_row_writes(queries)) == 1
    stored = Lead.objects.get(pk=lead.pk)
    assert (stored.score, lead.score, stored.score_breakdown_id) == (35, 35, lead.score_breakdown_id)
    assert [line["points"] for line in shown_breakdown(stored.score_breakdown)] == [30, 5]

    with CaptureQueriesContext(connection) as queries:
        lead = services.lead_move_stage(lead=lead, stage=stages["Qualified"], user=SYSTEM)
        lead = services.lead_update(
            lead=lead, data={"priority": "urgent", "phone": "+1 555 0100"}, user=SYSTEM
        )
    assert len(_lead_row_writes(queries)) == 2
    assert Lead.objects.get(pk=lead.pk).score == lead.score == 60

    # An activity logged on it: its last activity and the score that gives, in one write of the row.
    with CaptureQueriesContext(connection) as queries:
        activity = activity_services.activity_create(
            data={"subject": "Call", "activity_type": "call", "lead": lead}, user=SYSTEM
        )
    assert len(_lead_row_writes(queries)) == 1
    stored = Lead.objects.get(pk=lead.pk)
    assert (stored.score, stored.last_activity_at) == (75, activity.created_at)


def test_moving_an_activity_to_another_lead_rescores_both(rules, stages):
    first = services.lead_create(data={"name": "A", "email": ""}, user=SYSTEM)
    second = services.lead_create(data={"name": "B", "email": ""}, user=SYSTEM)
    call = activity_services.activity_create(
        data={"subject": "Call", "activity_type": "call", "lead": first}, user=SYSTEM
    )
    assert Lead.objects.get(pk=first.pk).score == 15
    activity_services.activity_update(activity=call, data={"lead": second}, user=SYSTEM)
    assert (Lead.objects.get(pk=first.pk).score, Lead.objects.get(pk=second.pk).score) == (0, 15)


def test_the_command_recomputes_every_lead(rules, stages, capsys):
    stale = LeadFactory(rating="hot", email="")  # written without the services: no score yet
    closed = LeadFactory(status="lost", rating="hot")
    call_command("crm_recompute_scores")
    assert Lead.objects.get(pk=stale.pk).score == 30
    assert Lead.objects.get(pk=closed.pk).score is None
    assert "Recomputed the scores of 2 leads." in capsys.readouterr().out


def test_imported_leads_are_scored(rules, stages):
    existing = services.lead_create(data={"name": "Old", "email": "old@x.test"}, user=SYSTEM)
    rows = [["name", "email", "rating"], ["Old", "old@x.test", "hot"], ["New", "new@x.test", ""]]
    result = import_file(kind="leads", data=csv_bytes(rows), filename="leads.csv", user=SYSTEM)
    assert result.committed, result.errors
    assert Lead.objects.get(pk=existing.pk).score == 35
    assert Lead.objects.get(email="new@x.test").score == 5


def test_new_lead_scorer_agrees_with_lead_score(rules):
    """The import's cached scorer gives what lead_score gives, across every combination it keys on
    (revenue on, between and past the thresholds; filled, blank and missing fields; closed leads)."""
    scorer = new_lead_scorer(rules, now=NOW)
    cases = []
    for status in ("open", "lost"):
        for rating in ("", "hot", "cold"):
            for source in ("", "referral"):
                for email in ("", "  ", "a@x.test"):
                    for revenue in (None, Decimal("9999.99"), Decimal("10000"), Decimal("60000")):
                        cases.append(
                            {
                                "status": status,
                                "rating": rating,
                                "source": source,
                                "email": email,
                                "expected_revenue": revenue,
                                "priority": "urgent" if revenue else "low",
                            }
                        )

    def stored(result):
        points, breakdown = result
        return points, stored_breakdown(breakdown)

    for values in cases * 2:  # the second pass answers from the cache
        assert scorer(values) == stored(score(rules, **values)), values
    # A field the row lacks takes the model's default (phone blank, priority "medium").
    assert scorer({"name": "L", "phone": "1"}) == stored(score(rules, phone="1", priority="medium"))


def test_imported_scores_equal_the_services_scores(rules, stages, monkeypatch):
    """Every new row of a file larger than one streamed batch is stored with the score and breakdown
    the services would store for it."""
    monkeypatch.setattr(engine, "STREAM_BATCH", 1000)  # three batches and a bit, in a small file
    rows = [["name", "email", "phone", "rating", "priority", "expected_revenue"]]
    for n in range(engine.STREAM_BATCH * 3 + 300):
        rows.append(
            [
                f"Lead {n}",
                f"lead{n}@x.test" if n % 3 else "",
                "555 0100" if n % 4 == 0 else "",
                ("hot", "warm", "")[n % 3],
                ("urgent", "low")[n % 2],
                str((n % 7) * 9000),
            ]
        )
    result = import_file(kind="leads", data=csv_bytes(rows), filename="leads.csv", user=SYSTEM)
    assert result.committed and result.new == engine.STREAM_BATCH * 3 + 300, result.errors
    stored = {
        pk: (score, breakdown)
        for pk, score, breakdown in Lead.objects.values_list("pk", "score", "score_breakdown")
    }
    for lead in Lead.objects.all():
        lead_score_refresh(lead=lead, rules=rules)
    recomputed = {
        pk: (score, breakdown)
        for pk, score, breakdown in Lead.objects.values_list("pk", "score", "score_breakdown")
    }
    assert stored == recomputed
    assert len({score for score, _ in stored.values()}) >= 6  # the file exercises many rules


def test_scorer_keys_on_the_activity_window(rules):
    """The cached scorer gives what lead_score gives for a last activity in each window, on a
    window's edge, past every window and never."""
    scorer = new_lead_scorer(rules, now=NOW)
    for days in (None, 0, 3, 7, 8, 29, 30, 31, 400):
        last = None if days is None else NOW - datetime.timedelta(days=days)
        for rating in ("", "hot"):
            values = {"status": "open", "rating": rating, "email": "", "phone": "", "priority": "low"}
            points, breakdown = score(rules, last_activity_days=days, **values)
            assert scorer(values, last) == (points, stored_breakdown(breakdown)), (days, rating)


def test_updated_leads_are_scored_with_their_activities_and_stored_fields(rules, stages):
    """More than 100 updated leads (the COPY path), some with recent activities, from a file that
    leaves out fields the rules read: each is stored with the score the services give it."""
    leads = [
        services.lead_create(
            data={"name": f"L{n}", "email": f"l{n}@x.test", "phone": "555" if n % 2 else "", "rating": "hot"},
            user=SYSTEM,
        )
        for n in range(120)
    ]
    for lead in leads[:40]:
        activity_services.activity_create(
            data={"subject": "Call", "activity_type": "call", "lead": lead}, user=SYSTEM
        )
    old = timezone.now() - datetime.timedelta(days=20)
    from activities.models import Activity

    for lead in leads[40:60]:
        activity = activity_services.activity_create(
            data={"subject": "Mail", "activity_type": "email", "lead": lead}, user=SYSTEM
        )
        Activity.objects.filter(pk=activity.pk).update(created_at=old)
    # Backdated behind the services: recomputed as any bulk writer of activities does.
    activity_services.lead_last_activity_refresh(lead_ids=[lead.pk for lead in leads[40:60]])
    # The file changes priority and revenue only: rating and phone come from the stored leads.
    rows = [["name", "email", "priority", "expected_revenue"]]
    rows += [[f"L{n}", f"L{n}@X.test", ("urgent", "low")[n % 2], str(n * 1000)] for n in range(120)]
    result = import_file(kind="leads", data=csv_bytes(rows), filename="leads.csv", user=SYSTEM)
    assert result.committed and result.updated == 120, result.errors
    stored = dict(Lead.objects.values_list("pk", "score"))
    breakdowns = dict(Lead.objects.values_list("pk", "score_breakdown"))
    for lead in Lead.objects.all():
        lead_score_refresh(lead=lead, rules=rules)
    assert stored == dict(Lead.objects.values_list("pk", "score"))
    assert breakdowns == dict(Lead.objects.values_list("pk", "score_breakdown"))
    # Hot (30) + urgent (20) + email (5) + phone (5) + an activity today (15) + 50,000 reached (25).
    assert stored[leads[51].pk] == 30 + 5 + 5 + 5 + 25  # low priority, last activity 20 days ago
    assert stored[leads[1].pk] == 30 + 5 + 5 + 15  # low priority, revenue 1,000, called today


def test_scores_from_the_stored_last_activity_equal_scores_from_the_activities(rules, stages):
    """Lead.last_activity_at stands for "the newest activity's created_at", the rule scoring used to
    aggregate itself: one lead, the bulk rescore and the import's lookup give the scores it gave."""
    from django.db.models import Max

    from activities.models import Activity

    leads = [services.lead_create(data={"name": f"L{n}", "email": ""}, user=SYSTEM) for n in range(5)]
    for lead, days_ago in zip(leads, (None, 1, 10, 40, (40, 2)), strict=True):
        for days in days_ago if isinstance(days_ago, tuple) else (days_ago,) if days_ago else ():
            activity = activity_services.activity_create(
                data={"subject": "Call", "activity_type": "call", "lead": lead}, user=SYSTEM
            )
            Activity.objects.filter(pk=activity.pk).update(created_at=NOW - datetime.timedelta(days=days))
    activity_services.lead_last_activity_refresh(lead_ids=[lead.pk for lead in leads])
    newest = dict(
        Activity.objects.filter(lead__in=leads).values_list("lead_id").annotate(last=Max("created_at"))
    )
    expected = {
        lead.pk: lead_score(Lead.objects.get(pk=lead.pk), rules, last_activity_at=newest.get(lead.pk))[0]
        for lead in leads
    }

    lead_scores_refresh()
    assert (
        dict(Lead.objects.values_list("pk", "score"))
        == expected
        == {
            leads[0].pk: 0,
            leads[1].pk: 15,
            leads[2].pk: 5,
            leads[3].pk: 0,
            leads[4].pk: 15,
        }
    )
    for lead in leads:
        assert lead_score_refresh(lead=Lead.objects.get(pk=lead.pk), rules=rules).score == expected[lead.pk]
    assert engine.last_activities([lead.pk for lead in leads]) == newest


def test_default_rules_are_installed():
    assert ScoringRule.objects.filter(criterion="rating", value="hot").exists()


# --- API and admin --------------------------------------------------------------------------------


def test_api_shows_filters_and_sorts_by_score(admin_client, rules, stages):
    hot = services.lead_create(data={"name": "Hot", "rating": "hot", "email": ""}, user=SYSTEM)
    services.lead_create(data={"name": "Cold", "email": ""}, user=SYSTEM)

    body = admin_client.get(f"/api/v1/crm/leads/{hot.pk}/").json()
    assert (body["score"], body["score_breakdown"][0]["value"]) == (30, "hot")
    listed = admin_client.get("/api/v1/crm/leads/?ordering=-score").json()["results"]
    assert [row["name"] for row in listed] == ["Hot", "Cold"]
    filtered = admin_client.get("/api/v1/crm/leads/?score_min=10").json()["results"]
    assert [row["name"] for row in filtered] == ["Hot"]
    response = admin_client.patch(
        f"/api/v1/crm/leads/{hot.pk}/", {"score": 99}, content_type="application/json"
    )
    assert response.status_code == 200 and response.json()["score"] == 30


def test_leads_with_the_same_reasons_share_one_breakdown_shown_whole(admin_client, rules, stages):
    lead = services.lead_create(data={"name": "Hot", "rating": "hot", "email": "a@b.test"}, user=SYSTEM)
    twin = services.lead_create(data={"name": "Twin", "rating": "hot", "email": "t@b.test"}, user=SYSTEM)
    other = services.lead_create(data={"name": "Cold", "email": "c@b.test"}, user=SYSTEM)
    nothing = services.lead_create(data={"name": "Nothing", "email": ""}, user=SYSTEM)
    stored = Lead.objects.select_related("score_breakdown").get(pk=lead.pk).score_breakdown
    assert stored.lines == [["rating", "hot", 30], ["completeness", "email", 5]]
    ids = dict(Lead.objects.values_list("pk", "score_breakdown"))
    assert ids[twin.pk] == ids[lead.pk] != ids[other.pk]
    assert ids[nothing.pk] is None  # no rule gave points
    assert ScoreBreakdown.objects.count() == 2
    whole = score(rules, rating="hot", email="a@b.test")[1]
    assert whole[0] == {"criterion": "rating", "value": "hot", "points": 30, "label": "Rating is"}
    assert shown_breakdown(stored) == whole
    body = admin_client.get(f"/api/v1/crm/leads/{lead.pk}/").json()
    assert body["score_breakdown"] == whole
    assert admin_client.get(f"/api/v1/crm/leads/{nothing.pk}/").json()["score_breakdown"] == []
    # Rescoring finds the stored breakdown instead of storing it again.
    lead_scores_refresh()
    assert dict(Lead.objects.values_list("pk", "score_breakdown")) == ids
    assert ScoreBreakdown.objects.count() == 2
    # A breakdown stored whole, as before they were compact, shows the same.
    ScoreBreakdown.objects.filter(pk=stored.pk).update(lines=whole)
    assert admin_client.get(f"/api/v1/crm/leads/{lead.pk}/").json()["score_breakdown"] == whole


def test_admin_list_sorts_and_filters_by_score_and_the_record_explains_it(admin_client, rules, stages):
    hot = services.lead_create(
        data={"name": "Hot", "rating": "hot", "priority": "urgent", "email": ""}, user=SYSTEM
    )
    services.lead_create(data={"name": "Cold", "email": ""}, user=SYSTEM)
    changelist = reverse("admin:crm_lead_changelist")
    score_column = admin_client.get(changelist).context["cl"].list_display.index("score")

    sorted_page = admin_client.get(f"{changelist}?o=-{score_column}")
    assert [lead.name for lead in sorted_page.context["cl"].result_list] == ["Hot", "Cold"]
    warm = admin_client.get(f"{changelist}?score_band=warm")
    assert [lead.name for lead in warm.context["cl"].result_list] == ["Hot"]

    page = admin_client.get(reverse("admin:crm_lead_change", args=[hot.pk])).content.decode()
    assert (
        "Rating is hot: <strong>+30</strong>" in page and "Priority is urgent: <strong>+20</strong>" in page
    )


def test_scoring_rules_are_editable_in_the_admin_and_scores_recompute_on_demand(admin_client, rules, stages):
    lead = services.lead_create(data={"name": "L", "rating": "hot", "email": ""}, user=SYSTEM)
    rule = ScoringRule.objects.get(criterion="rating", value="hot")
    response = admin_client.post(
        reverse("admin:crm_scoringrule_change", args=[rule.pk]),
        {"criterion": "rating", "value": "hot", "points": "40", "is_active": "on"},
    )
    assert response.status_code == 302
    admin_client.post(
        reverse("admin:crm_scoringrule_changelist"),
        {"action": "recompute_scores", "_selected_action": [rule.pk]},
    )
    assert Lead.objects.get(pk=lead.pk).score == 40
    bad = admin_client.post(
        reverse("admin:crm_scoringrule_add"), {"criterion": "recent_activity", "value": "soon", "points": "5"}
    )
    assert bad.status_code == 200 and "Enter a number" in bad.content.decode()


# --- activities from every entry point keep their lead's score current ----------------------------


def lead_change_data(lead, **activities):
    data = {
        "name": lead.name,
        "priority": lead.priority,
        "pipeline": lead.pipeline_id,
        "stage": lead.stage_id,
        "probability": lead.probability,
        "owner": lead.owner_id or "",
        "activities-TOTAL_FORMS": "0",
        "activities-INITIAL_FORMS": "0",
        "consents-TOTAL_FORMS": "0",
        "consents-INITIAL_FORMS": "0",
        "channel_preferences-TOTAL_FORMS": "0",
        "channel_preferences-INITIAL_FORMS": "0",
    }
    data.update(activities)
    return data


def test_admin_lead_page_activities_rescore_the_lead(admin_client, rules, stages):
    lead = services.lead_create(data={"name": "L", "email": ""}, user=SYSTEM)
    url = reverse("admin:crm_lead_change", args=[lead.pk])
    added = {
        "activities-TOTAL_FORMS": "1",
        "activities-0-subject": "Called back",
        "activities-0-activity_type": "call",
        "activities-0-status": "completed",
        "activities-0-priority": "medium",
    }
    response = admin_client.post(url, lead_change_data(lead, **added))
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert Lead.objects.get(pk=lead.pk).score == 15
    call = lead.activities.get()

    deleted = {
        "activities-TOTAL_FORMS": "1",
        "activities-INITIAL_FORMS": "1",
        "consents-TOTAL_FORMS": "0",
        "consents-INITIAL_FORMS": "0",
        "channel_preferences-TOTAL_FORMS": "0",
        "channel_preferences-INITIAL_FORMS": "0",
        "activities-0-id": call.pk,
        "activities-0-lead": lead.pk,
        "activities-0-subject": "Called back",
        "activities-0-activity_type": "call",
        "activities-0-status": "completed",
        "activities-0-priority": "medium",
        "activities-0-DELETE": "on",
    }
    response = admin_client.post(url, lead_change_data(Lead.objects.get(pk=lead.pk), **deleted))
    assert response.status_code == 302
    assert not lead.activities.exists()
    assert Lead.objects.get(pk=lead.pk).score == 0


def test_activity_admin_add_delete_and_bulk_delete_rescore_the_lead(admin_client, rules, stages):
    lead = services.lead_create(data={"name": "L", "email": ""}, user=SYSTEM)
    response = admin_client.post(
        reverse("admin:activities_activity_add"),
        {
            "subject": "Demo",
            "activity_type": "meeting",
            "status": "scheduled",
            "priority": "medium",
            "lead": lead.pk,
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert Lead.objects.get(pk=lead.pk).score == 15

    demo = lead.activities.get()
    response = admin_client.post(reverse("admin:activities_activity_delete", args=[demo.pk]), {"post": "yes"})
    assert response.status_code == 302
    assert Lead.objects.get(pk=lead.pk).score == 0

    calls = [
        activity_services.activity_create(
            data={"subject": f"Call {n}", "activity_type": "call", "lead": lead}, user=SYSTEM
        )
        for n in range(2)
    ]
    assert Lead.objects.get(pk=lead.pk).score == 15
    response = admin_client.post(
        reverse("admin:activities_activity_changelist"),
        {"action": "delete_selected", "_selected_action": [c.pk for c in calls], "post": "yes"},
    )
    assert response.status_code == 302
    assert not lead.activities.exists()
    assert Lead.objects.get(pk=lead.pk).score == 0


def test_api_deleting_an_activity_rescores_the_lead(admin_client, rules, stages):
    lead = services.lead_create(data={"name": "L", "email": ""}, user=SYSTEM)
    call = activity_services.activity_create(
        data={"subject": "Call", "activity_type": "call", "lead": lead}, user=SYSTEM
    )
    assert Lead.objects.get(pk=lead.pk).score == 15
    response = admin_client.delete(f"/api/v1/crm/activities/{call.pk}/")
    assert response.status_code == 204
    assert Lead.objects.get(pk=lead.pk).score == 0
