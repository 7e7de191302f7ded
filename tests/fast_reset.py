"""A transactional test ends by putting the database back as the migrations left it, on both databases.

Django's flush empties every table, then makes the content types and permissions again (the suite's
hook in tests/conftest.py makes the roles again), and the other rows the migrations made (the default
scoring rules) are gone: a test found them or not depending on whether a transactional test had run
before it on the same process.

On PostgreSQL the flush truncates all 130 tables, 0.8 s whatever they hold. Here instead one statement
finds the tables that hold rows; those are emptied, and the few tables the migrations filled are
restored, if they changed, from a copy taken when the test database was made (in a schema of its own,
out of the application's sight). Triggers (the rollups') and foreign-key checks are off while it runs,
as for a TRUNCATE. A test that resets sequences or uses serialized rollback keeps Django's flush.

On SQLite Django's flush stays (a DELETE a table costs little there), and the rows the migrations
made that it does not make again are put back after it.

The sequences are not reset, as Django's flush does not reset them either.
"""

from django.contrib.contenttypes.models import ContentType
from django.db import connection, transaction
from django.test import TransactionTestCase

COPY_SCHEMA = "test_as_migrated"
# The tables the migrations left rows in, when the test database was made (PostgreSQL).
AS_MIGRATED: list[str] = []
# SQLite: the rows the migrations made that Django's flush and the roles' hook do not make again, as
# (table, columns, rows).
SAVED_ROWS: list[tuple[str, list[str], list[tuple]]] = []
# Made again after a flush: the content types and permissions by post_migrate, the roles by the hook.
REMADE = {"django_content_type", "auth_permission", "auth_group", "auth_group_permissions"}
_django_fixture_teardown = TransactionTestCase._fixture_teardown


def _tables_holding_rows(cursor, tables: list[str]) -> list[str]:
    quote = connection.ops.quote_name
    cursor.execute(
        " UNION ALL ".join(f"SELECT %s WHERE EXISTS (SELECT 1 FROM {quote(t)})" for t in tables), tables
    )
    return sorted(row[0] for row in cursor.fetchall())


def remember_as_migrated() -> None:
    """Note what the migrations made: on PostgreSQL a copy of the tables they filled, in a schema of
    its own, once per test database (one kept with ``--reuse-db`` keeps the copy taken when it was
    made); on SQLite the rows a flush loses."""
    quote = connection.ops.quote_name
    tables = connection.introspection.django_table_names(only_existing=True, include_views=False)
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            for table in _tables_holding_rows(cursor, tables):
                if table not in REMADE:
                    cursor.execute(f"SELECT * FROM {quote(table)}")
                    columns = [column[0] for column in cursor.description]
                    SAVED_ROWS.append((table, columns, cursor.fetchall()))
            return
        if connection.vendor != "postgresql":
            return
        # Turning triggers and foreign-key checks off takes a superuser; others keep Django's flush.
        cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        if not cursor.fetchone()[0]:
            return
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s", [COPY_SCHEMA])
        copied = sorted(row[0] for row in cursor.fetchall())
        if not copied:
            copied = _tables_holding_rows(cursor, tables)
            cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {COPY_SCHEMA}")
            for table in copied:
                cursor.execute(f"CREATE TABLE {COPY_SCHEMA}.{quote(table)} AS TABLE {quote(table)}")
    AS_MIGRATED[:] = copied


def _fingerprint(schema: str, table: str) -> str:
    quote = connection.ops.quote_name
    rows = "coalesce(string_agg(t::text, ',' ORDER BY t::text), '')"
    return f"(SELECT md5({rows}) FROM {schema}.{quote(table)} t)"


def put_back_as_migrated() -> None:
    """PostgreSQL: empty the tables that hold rows and restore those the migrations filled, in one
    transaction. The rollups' triggers fire on a DELETE whatever the session's replication role (they
    keep the rollups during an import too): what they write while the records go is emptied after."""
    quote = connection.ops.quote_name
    tables = connection.introspection.django_table_names(only_existing=True, include_views=False)
    checks = [
        f"SELECT %s WHERE {_fingerprint('public', t)} IS DISTINCT FROM {_fingerprint(COPY_SCHEMA, t)}"
        if t in AS_MIGRATED
        else f"SELECT %s WHERE EXISTS (SELECT 1 FROM {quote(t)})"
        for t in tables
    ]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(checks), tables)
        written = [row[0] for row in cursor.fetchall()]
        if not written:
            return
        cursor.execute("SET LOCAL session_replication_role = replica")
        for table in written:
            cursor.execute(f"DELETE FROM {quote(table)}")
            if table in AS_MIGRATED:
                cursor.execute(f"INSERT INTO {quote(table)} TABLE {COPY_SCHEMA}.{quote(table)}")
        _empty_what_triggers_wrote(cursor, [t for t in tables if t not in AS_MIGRATED])
    if ContentType._meta.db_table in written:
        ContentType.objects.clear_cache()


def _empty_what_triggers_wrote(cursor, tables: list[str]) -> None:
    for table in _tables_holding_rows(cursor, tables):
        cursor.execute(f"DELETE FROM {connection.ops.quote_name(table)}")


def put_back_saved_rows() -> None:
    """SQLite, after Django's flush: what the rollups' triggers wrote while it emptied the records'
    tables goes, and the rows the migrations made that the flush does not make again come back."""
    quote = connection.ops.quote_name
    tables = connection.introspection.django_table_names(only_existing=True, include_views=False)
    saved = {table for table, _columns, _rows in SAVED_ROWS}
    with transaction.atomic(), connection.cursor() as cursor:
        _empty_what_triggers_wrote(cursor, [t for t in tables if t not in REMADE | saved])
        for table, columns, rows in SAVED_ROWS:
            marks = ", ".join(["%s"] * len(columns))
            names = ", ".join(quote(column) for column in columns)
            cursor.execute(f"DELETE FROM {quote(table)}")
            cursor.executemany(f"INSERT INTO {quote(table)} ({names}) VALUES ({marks})", rows)


def _fixture_teardown(self):
    default_only = list(self._databases_names(include_mirrors=False)) == ["default"]
    if (
        connection.vendor == "postgresql"
        and AS_MIGRATED
        and not self.serialized_rollback
        and not self.reset_sequences
        and self.available_apps is None
        and default_only
    ):
        put_back_as_migrated()
        return
    _django_fixture_teardown(self)
    if connection.vendor == "sqlite" and default_only:
        put_back_saved_rows()


TransactionTestCase._fixture_teardown = _fixture_teardown
