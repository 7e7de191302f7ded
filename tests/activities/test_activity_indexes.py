"""The activities' type and status: one B-tree each, which their filters read, and no second index for
``LIKE 'prefix%'`` that every insert would keep up (migration activities 0027)."""

import pytest
from django.db import connection

from activities.models import Activity, ActivityStatus, ActivityType
from tests.factories import ActivityFactory, LeadFactory

pytestmark = pytest.mark.django_db


def _indexes_on(column: str) -> dict[str, str]:
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, Activity._meta.db_table)
    return {
        name: definition.get("type") or ""
        for name, definition in constraints.items()
        if definition["index"] and definition["columns"] == [column]
    }


@pytest.mark.parametrize("column, name", [("activity_type", "act_type"), ("status", "act_status")])
def test_a_choice_column_has_one_plain_index(column, name):
    assert list(_indexes_on(column)) == [name]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = %s", [name])
            (definition,) = cursor.fetchone()
        assert "pattern_ops" not in definition
        assert definition.endswith(f"USING btree ({column})")


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the plan is PostgreSQL's")
def test_a_filter_by_status_or_type_reads_its_index(stages):
    ActivityFactory.create_batch(
        3, lead=LeadFactory(), status=ActivityStatus.SCHEDULED, activity_type=ActivityType.CALL
    )
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
    for queryset, index in (
        (Activity.objects.filter(status=ActivityStatus.CANCELLED), "act_status"),
        (Activity.objects.filter(activity_type=ActivityType.NOTE), "act_type"),
    ):
        assert index in queryset.only("pk").explain()
