"""The test databases: each starts as a copy of a template the migrations made (tests/template_db.py),
and the end of a transactional test (tests/fast_reset.py) puts the database back as the migrations left it,
on both databases: what it wrote is gone and what the migrations made (the roles and their permissions,
the content types, the default scoring rules) is there again, whatever the test did to it."""

import pytest
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.test import TransactionTestCase

from crm.models import ScoringRule
from tests.conftest import roles_restore
from tests.factories import LeadFactory, OpportunityFactory, PipelineFactory, StageFactory
from tests.fast_reset import REMADE
from tests.template_db import PROJECT, migration_sources


def contents() -> dict[str, list[tuple]]:
    """Every table's rows, ordered; on SQLite the tables a flush makes again are compared by what their
    rows say, not by their ids."""
    quote = connection.ops.quote_name
    tables = connection.introspection.django_table_names(only_existing=True, include_views=False)
    rows = {}
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"SELECT * FROM {quote(table)} ORDER BY 1")
            rows[table] = cursor.fetchall()
    if connection.vendor == "sqlite":
        for table in REMADE:
            rows[table] = len(rows[table])
        rows["roles"] = sorted(
            (group.name, codename)
            for group in Group.objects.all()
            for codename in group.permissions.values_list("codename", flat=True)
        )
    return rows


class _Case(TransactionTestCase):
    """A transactional test case, whose end the test runs on its own."""

    __test__ = False
    databases = {"default"}

    def runTest(self):
        pass


@pytest.mark.django_db(transaction=True)
def test_a_transactional_test_leaves_the_database_as_the_migrations_made_it():
    as_migrated = contents()
    assert as_migrated["crm_scoringrule"], "the migrations make the default scoring rules"
    stage = StageFactory(pipeline=PipelineFactory(name="Written by a test"), name="New", probability=10)
    LeadFactory(name="Written by a test", stage=stage)
    OpportunityFactory(name="Written by a test", stage=stage)  # the rollups' triggers write too
    ScoringRule.objects.all()[0].delete()
    Group.objects.get(name="Sales Rep").permissions.remove(Permission.objects.get(codename="view_lead"))
    Group.objects.create(name="Made by a test")
    assert contents() != as_migrated

    _Case()._fixture_teardown()
    if connection.vendor == "sqlite":
        roles_restore()  # the suite's hook, after every transactional test

    assert contents() == as_migrated


def test_the_template_of_the_test_databases_is_named_after_every_migration_and_the_code_they_import():
    """A template older than what the migrations would make now is never used: its name changes with
    any migration file, with the project's modules a migration imports, and with the backends."""
    paths = migration_sources()
    sources = {str(p.relative_to(PROJECT)) if p.is_relative_to(PROJECT) else str(p) for p in paths}
    assert {
        "crm/migrations/0001_initial.py",
        "crm/rollups.py",
        "sales/rollups.py",
        "crm/search_indexes.py",
        "crm/reached.py",
        "crm/db/backends/postgresql/base.py",
        "crm/db/backends/sqlite3/base.py",
    } <= sources
    assert len([s for s in sources if "/migrations/" in s]) >= 170  # the project's and the libraries'
