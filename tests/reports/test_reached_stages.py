"""Each lead's and deal's furthest stage (crm.reached): kept by every door, read by the funnel.

The funnel of leads read the stage history of every lead (1.5 s at a million leads); it now reads
``reached_sequence``, which the database's triggers keep. These tests hold the column to a recount of the
history and the funnel to what the history gives, through the doors that move records or their history.
"""

import datetime

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from crm.actors import SYSTEM
from crm.merging import record_merge
from crm.models import Lead, Pipeline
from crm.reached import LEAD_REACH, pipelines_rebuild, reached_differences
from crm.reports import ReportFilters
from crm.services import lead_move_stage, lead_update, stage_update
from sales.models import Opportunity
from sales.reports import funnel_report
from sales.rollups import OPPORTUNITY_REACH
from tests.factories import LeadFactory, PipelineFactory, StageFactory

Q1 = {"date_from": datetime.date(2026, 1, 1), "date_to": datetime.date(2026, 3, 31)}

pytestmark = pytest.mark.django_db


def reached(record) -> int | None:
    return type(record).objects.values_list("reached_sequence", flat=True).get(pk=record.pk)


def exact():
    for reach in (LEAD_REACH, OPPORTUNITY_REACH):
        assert reached_differences(reach) == (0, [])


def rows(result) -> list[tuple]:
    return [(row["cohort"], row["stage"], row["reached"]) for row in result.rows]


def test_moves_raise_the_furthest_stage_and_moving_back_or_losing_keeps_it(stages):
    lead = LeadFactory(stage=stages["New"])
    assert reached(lead) == stages["New"].sequence
    lead = lead_move_stage(lead=lead, stage=stages["Proposal"], user=SYSTEM)
    lead = lead_move_stage(lead=lead, stage=stages["Qualified"], user=SYSTEM)
    assert reached(lead) == stages["Proposal"].sequence
    lead_move_stage(lead=lead, stage=stages["Lost"], user=SYSTEM)
    assert reached(lead) == stages["Proposal"].sequence
    # A lead created straight into the lost stage got nowhere.
    assert reached(LeadFactory(stage=stages["Lost"])) is None
    exact()


def test_an_old_copy_saved_again_or_a_direct_write_cannot_lower_it(stages):
    lead = LeadFactory(stage=stages["New"])
    old_copy = Lead.objects.get(pk=lead.pk)
    lead_move_stage(lead=lead, stage=stages["Proposal"], user=SYSTEM)
    # The copy still says New and the old furthest stage: saving it moves the lead back, not its reach.
    old_copy.name = "Renamed"
    old_copy.save()
    assert reached(lead) == stages["Proposal"].sequence
    Lead.objects.filter(pk=lead.pk).update(reached_sequence=0)
    assert reached(lead) == stages["Proposal"].sequence
    exact()


def test_a_merge_gives_the_survivor_the_furthest_stage_of_the_merged_histories(stages):
    survivor = LeadFactory(stage=stages["New"])
    merged = LeadFactory(stage=stages["New"])
    merged = lead_move_stage(lead=merged, stage=stages["Proposal"], user=SYSTEM)
    lead_move_stage(lead=merged, stage=stages["New"], user=SYSTEM)
    assert reached(survivor) == stages["New"].sequence

    record_merge(records=[survivor, Lead.objects.get(pk=merged.pk)], survivor=survivor, user=SYSTEM)

    assert reached(survivor) == stages["Proposal"].sequence
    exact()


def test_a_move_to_another_pipeline_counts_that_pipelines_history_only(stages, pipeline):
    other = PipelineFactory(name="Partners")
    intro = StageFactory(pipeline=other, name="Intro", sequence=5)
    StageFactory(pipeline=other, name="Signed", sequence=9)
    lead = lead_move_stage(lead=LeadFactory(stage=stages["New"]), stage=stages["Proposal"], user=SYSTEM)

    lead = lead_update(lead=lead, user=SYSTEM, data={"pipeline": other})
    assert (lead.stage_id, reached(lead)) == (intro.pk, intro.sequence)
    lead = lead_update(lead=Lead.objects.get(pk=lead.pk), user=SYSTEM, data={"pipeline": pipeline})
    # Back in the first pipeline, in its first stage: the history remembers Proposal.
    assert (lead.stage_id, reached(lead)) == (stages["New"].pk, stages["Proposal"].sequence)
    exact()


def test_the_funnel_reads_the_column_and_answers_what_the_history_gives(report_world):
    manager = report_world.users["manager"]
    filters = ReportFilters(**Q1)
    with CaptureQueriesContext(connection) as queries:
        stored = funnel_report(user=manager, filters=filters)
    assert not any("stagechange" in query["sql"] for query in queries.captured_queries)

    Pipeline.objects.update(reach_stale=True)
    with CaptureQueriesContext(connection) as queries:
        from_history = funnel_report(user=manager, filters=filters)
    assert any("stagechange" in query["sql"] for query in queries.captured_queries)
    assert rows(stored) == rows(from_history)
    assert rows(stored)[-4:] == [
        ("All", "New", 4),
        ("All", "Qualified", 3),
        ("All", "Proposal", 2),
        ("All", "Won", 2),
    ]


def test_reordering_stages_marks_the_pipeline_until_its_records_are_recounted(report_world, stages):
    manager, pipeline = report_world.users["manager"], stages["New"].pipeline
    filters = ReportFilters(**Q1)
    # Proposal now comes before Qualified: D2 (Qualified, then lost) reached the later of the two.
    qualified, proposal = stages["Qualified"], stages["Proposal"]
    stage_update(stage=qualified, user=SYSTEM, data={"sequence": proposal.sequence})
    stage_update(stage=proposal, user=SYSTEM, data={"sequence": qualified.sequence})
    pipeline.refresh_from_db()
    assert pipeline.reach_stale
    exact()  # a stale pipeline's records wait for their recount
    while_stale = funnel_report(user=manager, filters=filters)
    assert rows(while_stale)[-4:] == [
        ("All", "New", 4),
        ("All", "Proposal", 3),
        ("All", "Qualified", 3),
        ("All", "Won", 2),
    ]

    assert pipelines_rebuild() > 0
    pipeline.refresh_from_db()
    assert not pipeline.reach_stale
    exact()
    assert rows(funnel_report(user=manager, filters=filters)) == rows(while_stale)
    # Renaming a stage leaves the order alone.
    stage_update(stage=Opportunity.objects.first().stage, user=SYSTEM, data={"name": "Renamed"})
    pipeline.refresh_from_db()
    assert not pipeline.reach_stale


def test_the_check_command_reports_a_wrong_furthest_stage_and_the_rebuild_repairs_it(stages, capsys):
    lead = lead_move_stage(lead=LeadFactory(stage=stages["New"]), stage=stages["Proposal"], user=SYSTEM)
    with connection.cursor() as cursor:  # what a restore of an old dump without its triggers could leave
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL crm.reach_rebuild = 'on'")
            cursor.execute("UPDATE crm_lead SET reached_sequence = 0 WHERE id = %s", [lead.pk])
            cursor.execute("SET LOCAL crm.reach_rebuild = 'off'")
        else:
            cursor.execute("DROP TRIGGER crm_lead_reach_update")
            cursor.execute("UPDATE crm_lead SET reached_sequence = 0 WHERE id = %s", [lead.pk])
    with pytest.raises(Exception, match="differ"):
        call_command("crm_rollups", "--check")
    assert f"record {lead.pk}: stored 0, counted {stages['Proposal'].sequence}" in capsys.readouterr().out
    call_command("crm_rollups", "--rebuild")
    call_command("crm_rollups")
    assert "furthest stages of leads: exact." in capsys.readouterr().out
    assert reached(lead) == stages["Proposal"].sequence
