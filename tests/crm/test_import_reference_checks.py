"""Bulk imports check foreign keys once per import, set-based, instead of with a trigger per row
(crm.importing.writing.ReferenceChecks): when they do, when they must not, and that a missing
reference still refuses the whole file."""

import pytest
from django.db import connection

from crm.actors import SYSTEM
from crm.importing import import_file
from crm.models import Lead
from tests.crm.importing_helpers import csv_bytes
from tests.factories import LeadFactory, UserFactory

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's triggers and roles"),
]


def replication_role() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW session_replication_role")
        return cursor.fetchone()[0]


def import_watching(rows, *, during=None):
    """Import ``rows``; returns (result, the session_replication_role seen while the rows were written).

    The engine reports progress while it writes the updated rows, after the new rows went out: the
    role is read there, and ``during`` (if given) runs there, inside the import's transaction.
    """
    seen = []

    def progress(phase, done, total):
        if phase == "writing" and done < total:
            seen.append(replication_role())
            if during is not None:
                during()

    result = import_file(
        kind="leads", data=csv_bytes(rows), filename="leads.csv", progress=progress, user=SYSTEM
    )
    return result, seen


@pytest.fixture
def file_rows(stages):
    """A file with an update (so the engine reports progress mid-write) and new leads owned by rep."""
    LeadFactory(email="old@x.test", pipeline=stages["New"].pipeline, stage=stages["New"])
    UserFactory(username="rep")
    rows = [["name", "email", "stage", "owner", "tags"], ["Old one", "old@x.test", "Qualified", "rep", "VIP"]]
    rows += [[f"Lead {n}", f"l{n}@x.test", "New", "rep", "VIP, Hot"] for n in range(30)]
    return rows


def test_foreign_keys_are_checked_once_per_import_and_the_triggers_come_back(file_rows):
    result, seen = import_watching(file_rows)
    assert result.committed, (result.errors, result.file_errors)
    assert seen and set(seen) == {"replica"}  # the per-row triggers were off while writing...
    assert replication_role() == "origin"  # ...and are on again before the transaction goes on
    assert Lead.objects.filter(owner__username="rep").count() == 31
    assert Lead.tags.through.objects.count() == 61


def test_a_reference_deleted_while_importing_refuses_the_file(file_rows):
    """The owner disappears between the lookups and the commit: the set-based check finds it, the
    import rolls back and says why."""

    def delete_owner():
        with connection.cursor() as cursor:
            # Raw SQL with the triggers off, as a concurrent session's delete that got in first would
            # leave it: the leads written so far name a user that no longer exists.
            cursor.execute("DELETE FROM auth_user WHERE username = 'rep'")

    result, _ = import_watching(file_rows, during=delete_owner)
    assert not result.committed
    assert any("auth_user id" in error and "no longer exists" in error for error in result.file_errors)
    assert Lead.objects.count() == 1 and Lead.tags.through.objects.count() == 0  # nothing written
    assert replication_role() == "origin"


def test_the_referenced_rows_are_locked_until_commit(file_rows):
    """Like the per-row triggers, the check locks what the rows name (FOR KEY SHARE), so another
    session cannot delete it before the import commits."""
    locks = []

    def after_write(phase, done, total):
        if phase == "writing" and done == total:  # after the check, before the commit
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                    "WHERE l.pid = pg_backend_pid() AND c.relname = 'auth_user' AND l.mode = 'RowShareLock'"
                )
                locks.append(cursor.fetchone()[0])

    result = import_file(
        kind="leads", data=csv_bytes(file_rows), filename="leads.csv", progress=after_write, user=SYSTEM
    )
    assert result.committed
    assert locks == [1]


def test_a_role_that_may_not_turn_triggers_off_keeps_the_row_checks(file_rows):
    with connection.cursor() as cursor:
        cursor.execute("CREATE ROLE crm_import_test_role NOSUPERUSER")
        cursor.execute("GRANT ALL ON ALL TABLES IN SCHEMA public TO crm_import_test_role")
        cursor.execute("GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO crm_import_test_role")
        cursor.execute("SET ROLE crm_import_test_role")
    try:
        result, seen = import_watching(file_rows)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET ROLE")
    assert result.committed, (result.errors, result.file_errors)
    assert set(seen) == {"origin"}
    assert Lead.objects.filter(owner__username="rep").count() == 31


def test_a_trigger_of_the_database_keeps_the_row_checks(file_rows):
    """A trigger someone added (an audit trigger, say) must still fire for every imported row."""
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE import_audit (lead_id bigint)")
        cursor.execute(
            "CREATE FUNCTION import_audit_row() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN INSERT INTO import_audit VALUES (NEW.id); RETURN NEW; END $$"
        )
        cursor.execute(
            "CREATE TRIGGER import_audit AFTER INSERT ON crm_lead "
            "FOR EACH ROW EXECUTE FUNCTION import_audit_row()"
        )
    result, seen = import_watching(file_rows)
    assert result.committed
    assert set(seen) == {"origin"}
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM import_audit")
        assert cursor.fetchone()[0] == 30


def test_the_setting_turns_the_set_based_check_off(file_rows, settings):
    settings.CRM_IMPORT_SET_BASED_REFERENCE_CHECKS = False
    result, seen = import_watching(file_rows)
    assert result.committed and set(seen) == {"origin"}
