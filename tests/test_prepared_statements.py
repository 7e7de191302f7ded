"""Prepared statements on PostgreSQL (crm/db/backends/postgresql/base.py, settings'
DATABASE_PREPARED_STATEMENTS): a statement a connection runs again is prepared, a search's and an
existence check's are not, and a statement with more values than the protocol carries still runs, on
both databases."""

import os
import subprocess
import sys

import pytest
from django.conf import settings
from django.db import connection

from activities.selectors import activity_owns_any
from crm.models import Lead, Tag
from tests.factories import ActivityFactory, LeadFactory, UserFactory

on_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="PostgreSQL's prepared statements"
)


def prepared_statements(fragment: str) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [row[0] for row in cursor.fetchall() if fragment in row[0]]


@on_postgresql
@pytest.mark.django_db
def test_a_statement_a_connection_runs_again_is_prepared_with_its_values_apart(stages):
    owners = [UserFactory() for _ in range(3)]
    LeadFactory(owner=owners[0], stage=stages["New"], pipeline=stages["New"].pipeline)
    counts = [Lead.objects.filter(owner=owner).count() for owner in owners]
    assert counts == [1, 0, 0]
    (statement,) = prepared_statements('FROM "crm_lead" WHERE "crm_lead"."owner_id" = $1')
    assert statement.startswith("SELECT COUNT(*)")


@on_postgresql
@pytest.mark.django_db
def test_a_search_is_planned_for_its_own_pattern_each_time(stages):
    LeadFactory(name="Anderson and Sons", stage=stages["New"], pipeline=stages["New"].pipeline)
    found = [Lead.objects.filter(name__icontains=term).count() for term in ("son", "zzq", "and", "an")]
    assert found == [1, 0, 1, 1]
    assert prepared_statements('FROM "crm_lead"') == []
    assert prepared_statements("LIKE") == []


@on_postgresql
@pytest.mark.django_db
def test_an_existence_check_is_planned_for_its_own_key_each_time(stages):
    """A generic plan of ``exists()`` expects a match early in a sequential scan, and reads the whole
    table for a key without rows: the admin dashboard's "does this user own any activity"."""
    owners = [UserFactory() for _ in range(4)]
    lead = LeadFactory(stage=stages["New"], pipeline=stages["New"].pipeline)
    ActivityFactory(owner=owners[0], lead=lead)
    answers = [activity_owns_any(user=owner) for owner in owners * 2]
    assert answers == [True, False, False, False] * 2
    assert prepared_statements('AS "a" FROM "activities_activity"') == []
    # The statements around it still are.
    assert [Lead.objects.filter(owner=owner).count() for owner in owners] == [0] * 4
    assert prepared_statements('FROM "crm_lead" WHERE "crm_lead"."owner_id" = $1')


@pytest.mark.django_db
def test_a_statement_with_more_values_than_the_protocol_carries_still_runs(stages):
    """PostgreSQL's extended protocol takes at most 65,535 values a statement: a longer ``__in`` and
    a ``bulk_create`` of 17,000 rows of four columns are sent with their values in the SQL."""
    leads = [LeadFactory(stage=stages["New"], pipeline=stages["New"].pipeline) for _ in range(2)]
    ids = [lead.pk for lead in leads] + list(range(-70_000, 0))
    for _ in range(3):  # again: such a statement is not prepared either
        assert Lead.objects.filter(pk__in=ids).count() == 2
    created = Tag.objects.bulk_create(Tag(name=f"bulk-{n}") for n in range(17_000))
    assert len(created) == 17_000
    assert Tag.objects.filter(name__startswith="bulk-").count() == 17_000


@on_postgresql
def test_prepared_statements_are_on_by_default_and_off_when_the_setting_says_so():
    assert settings.DATABASES["default"]["OPTIONS"]["server_side_binding"] is True
    assert settings.DATABASES["default"]["OPTIONS"]["prepare_threshold"] == 2
    script = (
        "import django; django.setup(); from django.conf import settings; "
        "options = settings.DATABASES['default']['OPTIONS']; "
        "print(options.get('server_side_binding'), options.get('prepare_threshold'))"
    )
    env = {
        **os.environ,
        "DATABASE_PREPARED_STATEMENTS": "false",
        "DJANGO_SETTINGS_MODULE": "crm_project.settings",
    }
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.split() == ["None", "None"]


@on_postgresql
@pytest.mark.django_db
def test_timestamps_are_read_by_the_c_loader_as_django_reads_them():
    """A ``timestamptz`` comes back as Django's own loader gives it (the instant, in UTC with
    ``datetime.timezone.utc``; naive in the connection's zone without USE_TZ), parsed by psycopg's C
    loader where psycopg has its C module."""
    import datetime

    from django.db.backends.postgresql.psycopg_any import get_adapters_template
    from psycopg import _cmodule, adapters
    from psycopg.pq import Format

    from crm.db.backends.postgresql import base

    timestamptz = (adapters.types["timestamptz"].oid, Format.TEXT)

    texts = [
        "2026-01-01 10:00:00.5+02",
        "0001-01-01 00:00:00+00",
        "9999-12-31 23:59:59.999999+00",
        "2026-06-01 12:00:00+05:30",
        "2026-03-29 01:30:00.000123-09:30",
    ]
    sql = "SELECT " + ", ".join(f"'{text}'::timestamptz" for text in texts)
    with connection.cursor() as cursor:
        cursor.execute(sql)
        ours = cursor.fetchone()
        loader = cursor.cursor.adapters.get_loader(*timestamptz)
    assert issubclass(loader, base.TimestamptzLoader)
    assert (base._CLoader is not None) == (_cmodule._psycopg is not None)
    assert [value.tzinfo for value in ours] == [datetime.UTC] * len(texts)
    assert ours[0] == datetime.datetime(2026, 1, 1, 8, 0, 0, 500000, tzinfo=datetime.UTC)
    assert ours[3] == datetime.datetime(2026, 6, 1, 6, 30, tzinfo=datetime.UTC)
    # Django's own loader on the same connection reads the same values.
    raw = connection.connection
    django_adapters = get_adapters_template(True, datetime.UTC)
    with raw.cursor() as cursor:
        cursor.adapters.register_loader("timestamptz", django_adapters.get_loader(*timestamptz))
        assert not issubclass(cursor.adapters.get_loader(*timestamptz), base.TimestamptzLoader)
        cursor.execute(sql)
        assert cursor.fetchone() == ours
    # Without time zones, Django's create_cursor() registers its loader for the connection's zone.
    loader = base.adapters_template(django_adapters, None).get_loader(*timestamptz)
    with raw.cursor() as cursor:
        cursor.adapters.register_loader("timestamptz", loader)
        cursor.execute(sql)
        naive = cursor.fetchone()
    assert [value.tzinfo for value in naive] == [None] * len(texts)
    assert naive[0] == datetime.datetime(2026, 1, 1, 8, 0, 0, 500000)
