"""Shared fixtures: the personas, the demo pipeline and API/admin clients.

The personas, one meaning each in every suite:

- ``owner`` and ``teammate``: Sales Reps of team West;
- ``manager``: the Sales Manager of team West (sees and changes what owner and teammate own);
- ``outsider``: a Sales Rep of team East (another team, managed by someone else);
- ``crm_admin``: in the CRM Admin group (sees and changes every record);
- ``superuser``: a Django superuser (``admin_user``, which ``admin_client`` logs in).

``people`` gives them all plus one record of every kind owned by each (but the superuser) and one
unowned; ``api_as(persona)`` and ``admin_as(persona)`` are API and admin clients logged in as one.
"""

import contextlib
import gc
from types import SimpleNamespace

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.utils import timezone
from rest_framework.test import APIClient

from crm_project.runtime import settle_after_startup
from tests.factories import (
    AccountFactory,
    ActivityFactory,
    ContactFactory,
    LeadFactory,
    OpportunityFactory,
    PipelineFactory,
    SalesTeam,
    StageFactory,
    UserFactory,
)
from tests.fast_reset import remember_as_migrated
from tests.template_db import database_from_template

# The roles (groups and their permissions) as the migrations made them, read once per test process.
_ROLES: dict[str, list[tuple[str, str]]] = {}
_TRANSACTIONAL_FIXTURES = {
    "transactional_db",
    "live_server",
    "django_db_reset_sequences",
    "django_db_serialized_rollback",
}


@pytest.fixture(scope="session")
def django_db_setup(
    request,
    django_test_environment,
    django_db_blocker,
    django_db_use_migrations,
    django_db_keepdb,
    django_db_createdb,
    django_db_modify_db_settings,
):
    """pytest-django's, but the database of each test process is copied from one the migrations made
    once (tests/template_db.py)."""
    from django.test.utils import setup_databases, teardown_databases
    from pytest_django.fixtures import _disable_migrations, _get_databases_for_setup

    if not django_db_use_migrations:
        _disable_migrations()
    keepdb = django_db_keepdb and not django_db_createdb
    aliases, serialized_aliases = _get_databases_for_setup(request.session.items)
    with django_db_blocker.unblock():
        copied = contextlib.nullcontext(False)
        if "default" in aliases and django_db_use_migrations and not keepdb:
            copied = database_from_template("default")
        with copied as from_template:
            db_cfg = setup_databases(
                verbosity=request.config.option.verbose,
                interactive=False,
                aliases=aliases,
                serialized_aliases=serialized_aliases,
                keepdb=keepdb or from_template,
            )
    yield
    if not django_db_keepdb:
        with django_db_blocker.unblock():
            try:
                teardown_databases(db_cfg, verbosity=request.config.option.verbose)
            except Exception as exc:
                request.node.warn(pytest.PytestWarning(f"The test databases were not dropped: {exc!r}"))


@pytest.fixture(scope="session", autouse=True)
def _roles_as_migrated(django_db_setup, django_db_blocker):
    from django.db import connection

    with django_db_blocker.unblock():
        # A run of tests that use no database sets none up (pytest-django reads the tests' markers).
        if Group._meta.db_table not in connection.introspection.table_names():
            return
        for group in Group.objects.prefetch_related("permissions__content_type"):
            _ROLES[group.name] = [(p.content_type.app_label, p.codename) for p in group.permissions.all()]
        remember_as_migrated()


# A test process makes and drops far more objects than a server (factories, test clients, whole pages
# kept for their assertions): with CPython's default first threshold (700 allocations) it collected
# some 4,000 times in tests/admin, and each full collection walked every object its imports and its
# database set-up had made: 6 s of the 70 s CPU that tests/admin takes on SQLite alone (14 s of 84 with
# the other core busy, as in CI), 2.5 s of the crawl's 49 s for three models. With these thresholds and
# that set-up frozen (below): 2.5 and 1.2 s. CI as a whole gained nothing it could show (1,215 and
# 1,242 s with it, 1,228 s without): much of its time is spent in PostgreSQL, browsers and workers.
# Cycles are collected all the same, in larger batches (the processes' peak memory did not change).
GC_THRESHOLDS = (20_000, 10, 10)


def pytest_configure(config):
    gc.set_threshold(*GC_THRESHOLDS)


@pytest.fixture(scope="session", autouse=True)
def _collector_settled(_roles_as_migrated):
    """After the test database is set up, freeze what the process has made so far, as a server does
    after its start-up (crm_project.runtime): a full collection no longer walks it."""
    settle_after_startup()


def _is_transactional(item) -> bool:
    marker = item.get_closest_marker("django_db")
    if marker is not None and marker.kwargs.get("transaction"):
        return True
    return bool(_TRANSACTIONAL_FIXTURES & set(getattr(item, "fixturenames", ())))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item, nextitem):
    """Where a transactional test ends with Django's flush (SQLite, or a test that resets sequences),
    every table is emptied, the roles that the migrations made included; put them back (committed), so
    the tests after it on the same process find them as a fresh database has them. Elsewhere
    tests/fast_reset.py has put the database back as the migrations left it, roles included."""
    yield
    # After the last test of a process its teardown has dropped the test database too: nothing to restore.
    if nextitem is None or not _ROLES or not _is_transactional(item):
        return
    from pytest_django.plugin import blocking_manager_key

    with item.config.stash[blocking_manager_key].unblock():
        roles_restore()


def roles_restore() -> None:
    """Make the roles again, with their permissions, unless they are there."""
    from django.contrib.auth.models import Permission

    if Group.objects.filter(name__in=list(_ROLES)).exists():
        return
    permissions = {
        (app_label, codename): pk
        for pk, app_label, codename in Permission.objects.values_list(
            "pk", "content_type__app_label", "codename"
        )
    }
    for name, codes in _ROLES.items():
        group = Group.objects.create(name=name)
        group.permissions.set([permissions[code] for code in codes if code in permissions])


# The personas that own records (the superuser owns none).
PERSONAS = ("owner", "teammate", "manager", "outsider", "crm_admin")


def _user(username: str, group: str):
    user = UserFactory(username=username)
    user.groups.add(Group.objects.get(name=group))
    return type(user).objects.get(pk=user.pk)


def make_personas() -> SimpleNamespace:
    """The record-owning personas and their teams (West: owner, teammate, managed by manager; East:
    outsider, managed by east_manager). A plain function so module-scoped fixtures can call it."""
    users = {
        "owner": _user("owner", "Sales Rep"),
        "teammate": _user("teammate", "Sales Rep"),
        "manager": _user("west_manager", "Sales Manager"),
        "outsider": _user("outsider_rep", "Sales Rep"),
        "crm_admin": _user("crm_admin", "CRM Admin"),
    }
    west = SalesTeam.objects.create(name="West", manager=users["manager"])
    west.members.add(users["owner"], users["teammate"])
    east = SalesTeam.objects.create(name="East", manager=UserFactory(username="east_manager"))
    east.members.add(users["outsider"])
    return SimpleNamespace(users=users, teams={"West": west, "East": east})


def make_records(owner, stages) -> SimpleNamespace:
    """One account, contact, lead, deal and activity owned by ``owner``."""
    account = AccountFactory(name=f"{owner.username} account", owner=owner)
    contact = ContactFactory(first_name=owner.username, account=account, owner=owner)
    lead = LeadFactory(name=f"{owner.username} lead", stage=stages["New"], owner=owner)
    opportunity = OpportunityFactory(
        name=f"{owner.username} deal", stage=stages["New"], account=account, owner=owner, amount=1000
    )
    activity = ActivityFactory(
        subject=f"{owner.username} call", lead=lead, owner=owner, due_date=timezone.now()
    )
    return SimpleNamespace(
        account=account, contact=contact, lead=lead, opportunity=opportunity, activity=activity
    )


# The backbone's real components (webhook receiver, Celery workers) and their fixtures.
pytest_plugins = ["tests.backbone"]


@pytest.fixture(autouse=True)
def fast_password_hasher(settings):
    """Tests create many users; the production hasher's deliberate slowness would dominate the suite."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def fresh_cache():
    """Each test starts with empty throttle counters (the cache outlives a test's database)."""
    cache.clear()


def make_superuser():
    return get_user_model().objects.create_superuser("boss", "boss@example.com", "pw-boss-123!")


@pytest.fixture
def admin_user(db):
    return make_superuser()


@pytest.fixture
def superuser(admin_user):
    return admin_user


@pytest.fixture
def personas(db):
    return make_personas()


@pytest.fixture
def owner(personas):
    return personas.users["owner"]


@pytest.fixture
def teammate(personas):
    return personas.users["teammate"]


@pytest.fixture
def manager(personas):
    return personas.users["manager"]


@pytest.fixture
def outsider(personas):
    return personas.users["outsider"]


@pytest.fixture
def crm_admin(personas):
    return personas.users["crm_admin"]


@pytest.fixture
def people(personas, superuser, stages):
    """``people.users[persona]`` (superuser included) and ``people.records[persona]`` (what that
    persona owns); ``people.unowned`` are records without an owner."""
    return make_people(personas, superuser, stages)


def make_people(personas, superuser, stages) -> SimpleNamespace:
    """What ``people`` gives; a plain function so module-scoped fixtures can call it."""
    records = {name: make_records(user, stages) for name, user in personas.users.items()}
    unowned = make_records(UserFactory(username="nobody"), stages)
    for record in vars(unowned).values():
        type(record).objects.filter(pk=record.pk).update(owner=None)
    users = {**personas.users, "superuser": superuser}
    return SimpleNamespace(users=users, records=records, unowned=unowned, stages=stages, teams=personas.teams)


@pytest.fixture
def api_as(people):
    def client_for(persona: str) -> APIClient:
        client = APIClient()
        client.force_authenticate(people.users[persona])
        return client

    return client_for


@pytest.fixture
def admin_as(people, client):
    def client_for(persona: str):
        client.force_login(people.users[persona])
        return client

    return client_for


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture
def pipeline(db):
    """A default pipeline with New → Qualified → Proposal → Won / Lost."""
    return make_pipeline()


def make_pipeline():
    pipeline = PipelineFactory(name="Sales", is_default=True)
    for seq, (name, prob, won, lost) in enumerate(
        [
            ("New", 10, False, False),
            ("Qualified", 30, False, False),
            ("Proposal", 60, False, False),
            ("Won", 100, True, False),
            ("Lost", 0, False, True),
        ]
    ):
        StageFactory(pipeline=pipeline, name=name, sequence=seq, probability=prob, is_won=won, is_lost=lost)
    return pipeline


@pytest.fixture
def stages(pipeline):
    return {stage.name: stage for stage in pipeline.stages.all()}


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix, request):
    """Tests that start a Celery worker (marked ``celery_worker``) share the test database with it:
    on SQLite it must then be a file, not the default in-memory database."""
    import os
    import tempfile

    from django.conf import settings

    database = settings.DATABASES["default"]
    if "postgresql" in database["ENGINE"]:
        # The suite commits often (transactional tests, workers): without waiting for each commit's WAL
        # flush (2 to 3 ms here) the tests read and write the same. Only a crash of the server could lose
        # the last commits, of a database dropped after the run anyway.
        options = database.setdefault("OPTIONS", {})
        options["options"] = f"{options.get('options', '')} -c synchronous_commit=off".strip()
    if database["ENGINE"].endswith("sqlite3") and any(
        item.get_closest_marker("celery_worker") for item in request.session.items
    ):
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        name = os.path.join(tempfile.gettempdir(), f"crm-test-{os.getpid()}-{worker}.sqlite3")
        database.setdefault("TEST", {})["NAME"] = name
    elif database["ENGINE"].endswith("sqlite3") and (database.get("TEST", {}).get("NAME") or "").startswith(
        "test_"
    ):
        # pytest-django gives each xdist worker "test_<NAME>_gwN" unless the engine is Django's own SQLite
        # one; ours wraps it (crm.db.backends.sqlite3), so that name would be a path that does not exist.
        # Without worker tests, SQLite's in-memory test database is the one to use.
        database["TEST"]["NAME"] = None
