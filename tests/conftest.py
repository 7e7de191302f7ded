"""Shared fixtures: personas, the demo pipeline and API/admin clients."""

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache

from tests.factories import PipelineFactory, StageFactory

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


@pytest.fixture
def admin_user(db):
    return get_user_model().objects.create_superuser("boss", "boss@example.com", "pw-boss-123!")


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture
def pipeline(db):
    """A default pipeline with New → Qualified → Proposal → Won / Lost."""
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
    if database["ENGINE"].endswith("sqlite3") and any(
        item.get_closest_marker("celery_worker") for item in request.session.items
    ):
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        name = os.path.join(tempfile.gettempdir(), f"crm-test-{os.getpid()}-{worker}.sqlite3")
        database.setdefault("TEST", {})["NAME"] = name
