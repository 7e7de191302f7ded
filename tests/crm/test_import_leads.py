"""Importing leads: upsert by email, relations and tags by name, pipeline defaults, all or nothing."""

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from crm.actors import SYSTEM
from crm.importing import engine, import_file
from crm.models import Lead, Tag
from tests.crm.importing_helpers import csv_bytes, xlsx_bytes
from tests.factories import (
    LeadFactory,
    LostReasonFactory,
    PipelineFactory,
    StageFactory,
    TagFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def small_batches(monkeypatch):
    """Stream in batches of 1,000 rows, so a small file spans several."""
    monkeypatch.setattr(engine, "STREAM_BATCH", 1000)


def run(rows, *, dry_run=False, filename="leads.csv", **kwargs):
    kwargs.setdefault("user", SYSTEM)  # a system import unless a test names the importer
    return import_file(kind="leads", data=csv_bytes(rows), filename=filename, dry_run=dry_run, **kwargs)


def test_new_leads_get_relations_by_name_and_tags(stages):
    alice = UserFactory(username="alice")
    vip = TagFactory(name="VIP")
    result = run(
        [
            ["Name", " Email ", "STAGE", "owner", "tags", "expected_revenue", "source", "priority"],
            [
                "Acme deal",
                "buyer@acme.test",
                "qualified",
                "Alice",
                "vip, Fresh",
                "1500.50",
                "Cold call",
                "HIGH",
            ],
        ]
    )
    assert result.ok, result.errors
    assert (result.new, result.updated, result.unchanged, result.committed) == (1, 0, 0, True)
    lead = Lead.objects.get()
    assert lead.stage == stages["Qualified"] and lead.pipeline == stages["Qualified"].pipeline
    assert lead.probability == 30  # the stage's, as Lead.save() would give
    assert lead.owner == alice
    assert lead.expected_revenue == Decimal("1500.50")
    assert (lead.source, lead.priority) == ("cold_call", "high")
    assert sorted(lead.tags.values_list("name", flat=True)) == ["Fresh", "VIP"]
    assert Tag.objects.get(name="VIP") == vip  # existing tag reused, not duplicated
    assert result.new_tags == ["Fresh"]


def test_lead_without_pipeline_or_stage_gets_the_same_defaults_as_the_model(stages):
    result = run([["name", "email"], ["Inbound", "in@x.test"]])
    assert result.ok
    imported = Lead.objects.get()
    saved = Lead.objects.create(name="Saved in code")
    assert (imported.pipeline_id, imported.stage_id, imported.probability) == (
        saved.pipeline_id,
        saved.stage_id,
        saved.probability,
    )


def test_email_case_variants_update_the_one_existing_lead(stages):
    lead = LeadFactory(name="Old name", email="Buyer@Acme.test", stage=stages["New"])
    result = run([["name", "email", "stage"], ["New name", "BUYER@acme.TEST", "Proposal"]])
    assert result.ok and (result.new, result.updated) == (0, 1)
    assert Lead.objects.count() == 1
    lead.refresh_from_db()
    assert (lead.name, lead.stage, lead.probability) == ("New name", stages["Proposal"], 60)
    assert lead.email == "BUYER@acme.TEST"  # the file's spelling is written, like any other cell
    again = run([["name", "email", "stage"], ["New name", "buyer@ACME.test", "Proposal"]])
    assert (again.new, again.updated, again.unchanged) == (0, 1, 0)
    assert Lead.objects.count() == 1


def test_reimporting_the_same_file_changes_nothing(stages):
    rows = [["name", "email", "tags", "probability"], ["A", "a@x.test", "one, two", "40"]]
    assert run(rows).new == 1
    again = run(rows)
    assert (again.new, again.updated, again.unchanged) == (0, 0, 1)


def test_unknown_names_are_reported_with_row_column_and_value(stages):
    UserFactory(username="alice")
    result = run(
        [
            ["name", "email", "owner", "stage", "pipeline", "lost_reason"],
            ["Good", "good@x.test", "alice", "New", "", ""],
            ["Bad owner", "b1@x.test", "mallory", "New", "", ""],
            ["Bad stage", "b2@x.test", "", "Nowhere", "", ""],
            ["Bad pipeline", "b3@x.test", "", "", "Imaginary", ""],
            ["Bad reason", "b4@x.test", "", "", "", "Too cheap"],
        ]
    )
    assert not result.ok and not result.committed
    found = {(e.row, e.column, e.value) for e in result.errors}
    assert found == {
        (3, "owner", "mallory"),
        (4, "stage", "Nowhere"),
        (5, "pipeline", "Imaginary"),
        (6, "lost_reason", "Too cheap"),
    }
    assert "No user is named “mallory”" in result.errors[0].message
    assert not Lead.objects.exists()


def test_stage_is_looked_up_in_the_rows_pipeline(stages):
    enterprise = PipelineFactory(name="Enterprise")
    discovery = StageFactory(pipeline=enterprise, name="Discovery", probability=5)
    result = run(
        [
            ["name", "email", "pipeline", "stage"],
            ["In enterprise", "e@x.test", "enterprise", "discovery"],
            ["Wrong pipeline", "w@x.test", "Sales", "Discovery"],
        ]
    )
    assert [(e.row, e.column) for e in result.errors] == [(3, "stage")]
    assert "“Sales” has no stage" in result.errors[0].message
    result = run(
        [["name", "email", "pipeline", "stage"], ["In enterprise", "e@x.test", "enterprise", "discovery"]]
    )
    assert result.ok
    assert Lead.objects.get().stage == discovery


def test_one_bad_row_among_many_writes_nothing(stages):
    rows = [["name", "email", "probability", "expected_revenue"]]
    rows += [[f"Lead {i}", f"l{i}@x.test", "50", "10.00"] for i in range(200)]
    rows[150][2] = "150"
    result = run(rows)
    assert not result.committed
    assert [(e.row, e.column, e.value) for e in result.errors] == [(151, "probability", "150")]
    assert result.error_rows == 1 and result.new == 199
    assert not Lead.objects.exists() and not Tag.objects.exists()


def test_every_bad_cell_is_reported(stages):
    result = run(
        [
            ["name", "email", "expected_revenue", "probability", "priority", "rating"],
            ["", "not-an-email", "12.345", "ten", "Sometimes", "boiling"],
            ["Negative", "n@x.test", "-5", "", "", ""],
            ["Thousands", "t@x.test", "1,000", "", "", ""],
        ]
    )
    found = {(e.row, e.column) for e in result.errors}
    assert found == {
        (2, "name"),
        (2, "email"),
        (2, "expected_revenue"),
        (2, "probability"),
        (2, "priority"),
        (2, "rating"),
        (3, "expected_revenue"),
        (4, "expected_revenue"),
    }
    assert result.error_rows == 3
    assert not Lead.objects.exists()


def test_two_rows_with_the_same_email_are_reported(stages):
    result = run([["name", "email"], ["One", "same@x.test"], ["Other", "x@x.test"], ["Two", "SAME@x.test"]])
    assert [(e.row, e.column) for e in result.errors] == [(4, "email")]
    assert "Row 2 has the same email" in result.errors[0].message
    assert not Lead.objects.exists()


def test_two_stored_leads_with_the_imported_email_are_reported_not_guessed(stages):
    LeadFactory(email="twin@x.test", stage=stages["New"])
    LeadFactory(email="TWIN@x.test", stage=stages["New"])
    result = run([["name", "email"], ["Twin", "twin@x.test"]])
    assert [(e.row, e.column) for e in result.errors] == [(2, "email")]
    assert "2 leads already have this email" in result.errors[0].message


def test_dry_run_counts_but_writes_nothing(stages):
    LeadFactory(email="old@x.test", name="Old", stage=stages["New"])
    result = run(
        [["name", "email", "tags"], ["Old 2", "old@x.test", ""], ["Fresh", "new@x.test", "brand new"]],
        dry_run=True,
    )
    assert result.ok and not result.committed
    assert (result.new, result.updated, result.unchanged) == (1, 1, 0)
    assert result.new_tags == ["brand new"]
    assert Lead.objects.count() == 1 and not Tag.objects.exists()
    assert [(p.row, p.action) for p in result.preview] == [(2, "updated"), (3, "new")]


def test_tags_column_replaces_the_tags_and_empty_keeps_or_clears_them(stages):
    lead = LeadFactory(email="t@x.test", stage=stages["New"])
    lead.tags.set([TagFactory(name="Old"), TagFactory(name="Keep")])
    assert run([["name", "email", "tags"], ["T", "t@x.test", "keep, NEW"]]).ok
    assert sorted(lead.tags.values_list("name", flat=True)) == ["Keep", "NEW"]
    assert run([["name", "email", "tags"], ["T", "t@x.test", ""]]).ok
    assert sorted(lead.tags.values_list("name", flat=True)) == ["Keep", "NEW"]
    assert run([["name", "email", "tags"], ["T", "t@x.test", ""]], clear_empty=True).ok
    assert not lead.tags.exists()


def test_columns_left_out_keep_their_values(stages):
    owner = UserFactory(username="alice")
    lead = LeadFactory(
        email="k@x.test", stage=stages["Proposal"], owner=owner, priority="urgent", probability=77
    )
    assert run([["name", "email"], ["Renamed", "k@x.test"]]).ok
    lead.refresh_from_db()
    assert (lead.name, lead.stage, lead.owner, lead.priority, lead.probability) == (
        "Renamed",
        stages["Proposal"],
        owner,
        "urgent",
        77,
    )


def test_lost_stage_and_lost_reason(stages):
    reason = LostReasonFactory(name="Too expensive")
    assert run([["name", "email", "stage", "lost_reason"], ["L", "l@x.test", "Lost", "too expensive"]]).ok
    lead = Lead.objects.get()
    assert (lead.status, lead.lost_reason, lead.probability) == ("lost", reason, 0)


def test_xlsx_file_with_typed_cells(stages):
    content = xlsx_bytes(
        [
            ["name", "email", "expected_revenue", "probability", "stage"],
            ["Typed", "typed@x.test", 1234.5, 45, "New"],
            ["Text", "text@x.test", "99.99", "20", None],
        ]
    )
    result = import_file(kind="leads", data=content, filename="leads.xlsx", user=SYSTEM)
    assert result.ok, result.errors
    typed = Lead.objects.get(email="typed@x.test")
    assert (typed.expected_revenue, typed.probability) == (Decimal("1234.50"), 45)
    assert Lead.objects.get(email="text@x.test").expected_revenue == Decimal("99.99")


def test_xlsx_row_numbers_are_the_sheets(stages):
    content = xlsx_bytes([["name", "email"], ["Good", "g@x.test"], [None, None], ["", "bad@x.test"]])
    result = import_file(kind="leads", data=content, filename="leads.xlsx", user=SYSTEM)
    assert [(e.row, e.column) for e in result.errors] == [(4, "name")]


def test_new_records_belong_to_the_default_owner_when_the_file_names_none(stages):
    boss = UserFactory(username="boss")
    assert run([["name", "email"], ["Mine", "m@x.test"]], default_owner=boss).ok
    assert Lead.objects.get().owner == boss


def test_a_bad_row_after_thousands_of_streamed_rows_still_writes_nothing(stages, small_batches):
    # On PostgreSQL new rows are written in batches while later rows are still being read:
    # a bad row at the end must roll all of them back.
    rows = [["name", "email", "stage", "tags"]]
    rows += [[f"Lead {i}", f"l{i}@x.test", "New", "bulk"] for i in range(12_000)]
    rows.append(["Late and bad", "late@x.test", "No such stage", ""])
    result = run(rows)
    assert [(e.row, e.column) for e in result.errors] == [(12_002, "stage")]
    assert not result.committed
    assert not Lead.objects.exists() and not Tag.objects.exists()


def test_many_updates_and_new_rows_in_one_file(stages, small_batches):
    for i in range(150):
        LeadFactory(email=f"u{i}@x.test", name=f"Old {i}", stage=stages["New"])
    rows = [["name", "email", "stage", "tags", "expected_revenue"]]
    rows += [[f"Updated {i}", f"U{i}@x.test", "Qualified", "a, b", "10.50"] for i in range(150)]
    rows += [[f"New {i}", f"n{i}@x.test", "", "b", ""] for i in range(6_000)]
    result = run(rows)
    assert result.ok and (result.new, result.updated) == (6_000, 150)
    assert Lead.objects.count() == 6_150
    updated = Lead.objects.get(email="U7@x.test")
    assert (updated.name, updated.stage, updated.probability, updated.expected_revenue) == (
        "Updated 7",
        stages["Qualified"],
        30,
        Decimal("10.50"),
    )
    assert sorted(updated.tags.values_list("name", flat=True)) == ["a", "b"]
    assert Lead.tags.through.objects.count() == 150 * 2 + 6_000
    assert set(Lead.objects.filter(email__startswith="n").values_list("stage", flat=True)) == {
        stages["New"].pk
    }


def test_each_batch_matches_its_rows_and_creates_the_tags_it_names(stages, small_batches):
    """A file read and written in batches: stored leads matched in every batch, tags first named in a
    late batch created, the first row's score and stage kept, a key repeated across batches reported."""
    for i in range(0, 3000, 500):
        LeadFactory(email=f"l{i}@x.test", name=f"Old {i}", stage=stages["New"])
    rows = [["name", "email", "stage", "tags"]]
    rows += [
        [f"Lead {i}", f"l{i}@x.test", "Qualified", "early" if i < 2500 else f"late {i % 3}"]
        for i in range(3000)
    ]
    result = run(rows)
    assert result.committed, result.errors[:3]
    assert (result.new, result.updated) == (2994, 6)
    assert result.new_tags == ["early", "late 0", "late 1", "late 2"]
    assert Lead.objects.get(email="l2500@x.test").name == "Lead 2500"  # matched in the third batch
    assert sorted(Lead.objects.get(email="l2999@x.test").tags.values_list("name", flat=True)) == ["late 2"]
    assert Lead.tags.through.objects.count() == 3000
    assert Lead.objects.filter(stage=stages["Qualified"]).count() == 3000

    # Row 3,002 names the email of row 2, whose batch was written long before: reported, and the
    # whole file rolled back.
    result = run([*rows, ["Twice", "L0@x.test", "New", ""]])
    assert [(e.row, e.column) for e in result.errors] == [(3002, "email")]
    assert not result.committed
    assert Lead.objects.get(email="l0@x.test").stage == stages["Qualified"]
    assert Lead.objects.count() == 3000


def test_the_history_of_an_import_is_found_by_the_written_records_keys(stages):
    """Each record an import writes gets one version in its audit trail, found by its key: found by
    the import's ``updated_at`` stamp, which no index answers, it read every lead of the table (180 ms
    at a million leads, for a file of 100 rows)."""
    kept = LeadFactory(name="Old name", email="buyer@acme.test", stage=stages["New"])
    bystander = LeadFactory(name="Not in the file", email="other@acme.test", stage=stages["New"])
    versions = {lead.pk: lead.history.count() for lead in (kept, bystander)}
    rows = [["name", "email"], ["New name", "buyer@acme.test"], ["A", "a@x.test"], ["B", "b@x.test"]]
    with CaptureQueriesContext(connection) as ctx:
        result = run(rows)
    assert (result.new, result.updated) == (2, 1)
    assert kept.history.count() == versions[kept.pk] + 1
    assert bystander.history.count() == versions[bystander.pk]
    for lead in Lead.objects.filter(email__in=["a@x.test", "b@x.test"]):
        (version,) = lead.history.all()
        assert (version.history_type, version.history_change_reason) == ("+", "Imported from a file")
    history = 'INSERT INTO "crm_historicallead"'
    inserts = [q["sql"] for q in ctx.captured_queries if q["sql"].startswith(history)]
    assert len(inserts) == 1
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            # Three leads would be read faster without an index: ask what the planner can use.
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute(f"EXPLAIN {inserts[0]}")
            plan = "\n".join(row[0] for row in cursor.fetchall())
        assert "Seq Scan on crm_lead" not in plan, plan
