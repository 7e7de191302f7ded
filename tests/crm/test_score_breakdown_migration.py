"""Migration 0016: each lead's own stored breakdown becomes a shared ScoreBreakdown, and back."""

import json

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from crm.models import Lead, ScoreBreakdown
from tests.crm.migration_helpers import ROUNDTRIP_MARKS
from tests.factories import LeadFactory

pytestmark = ROUNDTRIP_MARKS

BEFORE = [("crm", "0015_lead_partial_fk_indexes")]
AFTER = [("crm", "0016_score_breakdown_shared")]
COMPACT = [["rating", "hot", 30], ["completeness", "email", 5]]
WHOLE = [  # how breakdowns were stored before they were compact: the same reasons
    {"criterion": "rating", "value": "hot", "points": 30, "label": "Rating is"},
    {"criterion": "completeness", "value": "email", "points": 5, "label": "Contact field filled in"},
]


def migrate(target):
    MigrationExecutor(connection).migrate(target)


@pytest.fixture(autouse=True)
def latest_schema_after():
    """Unapplying 0016 unapplies every later crm migration too (the outbox's, ...); put them all back,
    or the rest of this process's tests run on a database without their tables."""
    yield
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


def stored_json(pk):
    with connection.cursor() as cursor:
        cursor.execute("SELECT score_breakdown FROM crm_lead WHERE id = %s", [pk])
        value = cursor.fetchone()[0]
    return json.loads(value) if isinstance(value, str) else value


@pytest.mark.django_db(transaction=True)
def test_stored_breakdowns_become_shared_rows_and_back(stages):
    compact, whole, cold, empty, unscored = (LeadFactory() for _ in range(5))
    shared = ScoreBreakdown.objects.create(lines=[["source", "partner", 10]], digest="x" * 64)
    Lead.objects.filter(pk=cold.pk).update(score_breakdown=shared)

    migrate(BEFORE)
    assert stored_json(cold.pk) == [["source", "partner", 10]]  # unapplied: the lines are back on the lead
    cast = "%s::jsonb" if connection.vendor == "postgresql" else "%s"
    with connection.cursor() as cursor:
        for lead, value in [(compact, COMPACT), (whole, WHOLE), (empty, []), (unscored, None)]:
            text = None if value is None else json.dumps(value)
            cursor.execute(f"UPDATE crm_lead SET score_breakdown = {cast} WHERE id = %s", [text, lead.pk])
    migrate(AFTER)

    ids = dict(Lead.objects.values_list("pk", "score_breakdown"))
    assert ids[compact.pk] == ids[whole.pk]  # the same reasons, stored either way: one shared row
    assert ids[empty.pk] is None and ids[unscored.pk] is None
    assert ids[cold.pk] not in (None, ids[compact.pk])
    assert ScoreBreakdown.objects.get(pk=ids[compact.pk]).lines == COMPACT
    assert ScoreBreakdown.objects.get(pk=ids[cold.pk]).lines == [["source", "partner", 10]]
    assert ScoreBreakdown.objects.count() == 2
