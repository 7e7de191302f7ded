"""A test process's database is a copy of one the migrations made once.

Running the 180 migrations takes about 45 s of Python (the migration state is rendered again and
again); each pytest-xdist process did it for its own database, and CI's two runs side by side did it
four times on two cores. Here the first process to need it migrates its database as before and then
copies it into a template named after a digest of what makes it (below); the other processes, and
later runs, start from a copy of that template:

* PostgreSQL: a template database, copied with ``CREATE DATABASE ... TEMPLATE`` (about a second);
* SQLite: a file in the temporary folder, copied into the test database (in memory, or a file for
  the tests that share it with Celery workers) with SQLite's backup as soon as it is opened.

The migrate command then finds nothing to apply. A change to any migration, to a module of the project
a migration takes code from, or to the project's database backends changes the digest, so a template
is never older than what would make it; older templates are removed when a new one is made. A
lock (an advisory lock on PostgreSQL, a file lock for SQLite) makes the processes take turns: one
migrates while the others wait for its template. ``--reuse-db`` keeps its own database as before.
"""

import ast
import contextlib
import fcntl
import hashlib
import importlib.util
import os
import sqlite3
import sys
import tempfile
from pathlib import Path

import django
from django.db import Error, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.signals import connection_created

PROJECT = Path(__file__).resolve().parent.parent
PREFIX = "_as_migrated_"
LOCK_KEY = 0x43524D54  # "CRMT": the advisory lock the test processes take turns with


def migration_sources() -> list[Path]:
    """Every migration file of every installed app, the project's modules those files import (the
    rollups' and search indexes' SQL, say) and the project's database backends."""
    from django.db.migrations.loader import MigrationLoader

    loader = MigrationLoader(None, ignore_no_migrations=True)
    migrations = [Path(sys.modules[m.__module__].__file__) for _, m in sorted(loader.disk_migrations.items())]
    imported = set(PROJECT.glob("crm/db/**/*.py"))
    for migration in migrations:
        for node in ast.walk(ast.parse(migration.read_bytes())):
            names = [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
            names += [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            for name in names:
                spec = importlib.util.find_spec(name)
                path = Path(spec.origin).resolve() if spec and spec.origin else PROJECT.parent
                if path.is_relative_to(PROJECT) and ".venv" not in path.parts and path.suffix == ".py":
                    imported.add(path)
    return migrations + sorted(imported)


def migrations_digest() -> str:
    """A digest of Django's version and of what ``migration_sources`` lists."""
    digest = hashlib.sha256(django.get_version().encode())
    for path in migration_sources():
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


@contextlib.contextmanager
def database_from_template(alias: str = "default"):
    """Yields whether the setup is to keep the test database as it is (made from the template on
    PostgreSQL); the test database is made from the template, or the template from the test database
    once the caller has migrated it."""
    connection = connections[alias]
    if connection.vendor == "postgresql":
        with _postgresql_from_template(connection) as keep:
            yield keep
    elif connection.vendor == "sqlite":
        with _sqlite_from_template(connection):
            yield False
    else:
        yield False


@contextlib.contextmanager
def _postgresql_from_template(connection):
    quote = connection.ops.quote_name
    test_name = connection.creation._get_test_db_name()
    base = f"test_{connection.settings_dict['NAME']}{PREFIX}"[:46]
    template = f"{base}{migrations_digest()}"
    with connection._nodb_cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s)", [LOCK_KEY])
        try:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [template])
            if cursor.fetchone():
                cursor.execute(f"DROP DATABASE IF EXISTS {quote(test_name)}")
                cursor.execute(f"CREATE DATABASE {quote(test_name)} TEMPLATE {quote(template)}")
                yield True
                return
            yield False
            # The copy needs the migrated database without a session.
            connection.close()
            cursor.execute(f"CREATE DATABASE {quote(template)} TEMPLATE {quote(test_name)}")
            cursor.execute(
                "SELECT datname FROM pg_database WHERE datname LIKE %s AND datname <> %s",
                [base.replace("_", r"\_") + "%", template],
            )
            for (older,) in cursor.fetchall():
                with contextlib.suppress(Error):  # in use by another run: left for later
                    cursor.execute(f"DROP DATABASE IF EXISTS {quote(older)}")
        finally:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [LOCK_KEY])


@contextlib.contextmanager
def _sqlite_from_template(connection):
    test_alias = connection.alias
    folder = Path(tempfile.gettempdir())
    template = folder / f"crm-test{PREFIX}{migrations_digest()}.sqlite3"
    with open(folder / f"crm-test{PREFIX}lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if template.exists():

                def load(sender, connection: BaseDatabaseWrapper, **kwargs):
                    if connection.alias == test_alias:
                        connection_created.disconnect(load)
                        source = sqlite3.connect(template)
                        try:
                            source.backup(connection.connection)
                        finally:
                            source.close()

                connection_created.connect(load, weak=False)
                try:
                    yield
                finally:
                    connection_created.disconnect(load)
                return
            yield
            partial = folder / f"{template.name}.{os.getpid()}.partial"
            target = sqlite3.connect(partial)
            try:
                connection.connection.backup(target)
            finally:
                target.close()
            os.replace(partial, template)
            for older in folder.glob(f"crm-test{PREFIX}*.sqlite3"):
                if older != template:
                    older.unlink(missing_ok=True)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
