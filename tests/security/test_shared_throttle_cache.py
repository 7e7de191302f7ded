"""The API throttles count in a cache that every worker shares: Redis when CACHE_URL says so, the
database by default in production, never one process's memory without a warning (issue 14 finding 8)."""

import json
import os
import secrets
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.apps import apps
from django.core.cache.backends.db import DatabaseCache
from django.core.cache.backends.locmem import LocMemCache
from django.db import connection as db_connection
from django.db.models.signals import post_migrate
from rest_framework.throttling import UserRateThrottle

from tests.backbone import test_redis_db

BASE_DIR = Path(__file__).resolve().parents[2]
# A database of its own on the machine's Redis, emptied before and after each test.
REDIS_URL = os.environ.get("CRM_TEST_REDIS_URL", f"redis://127.0.0.1:6379/{test_redis_db(2)}")

# What one worker does: N requests of one user through DRF's user throttle, with the settings'
# default cache; it prints the cache backend and whether each request was allowed.
WORKER = """
import json, sys
from types import SimpleNamespace
import django
django.setup()
from django.core.cache import caches
from rest_framework.throttling import UserRateThrottle
request = SimpleNamespace(user=SimpleNamespace(is_authenticated=True, pk=4242), META={})
allowed = [UserRateThrottle().allow_request(request, None) for _ in range(int(sys.argv[1]))]
print(json.dumps({"backend": type(caches["default"]).__name__, "allowed": allowed}))
"""


def production_env(**overrides) -> dict[str, str]:
    """The environment of a production worker: DEBUG off, a key, no test-only variables."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"CACHE_URL", "DEBUG", "SECRET_KEY", "API_RATE_USER"}
    }
    env.update(
        DEBUG="false", SECRET_KEY=secrets.token_urlsafe(50), DJANGO_SETTINGS_MODULE="crm_project.settings"
    )
    env.update(overrides)
    return env


def run_python(script: str, *args: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=BASE_DIR,
        env=production_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def worker(requests: int, **env) -> dict:
    result = run_python(WORKER, str(requests), **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture
def redis_db():
    """The test's Redis database, empty; the test is skipped when no Redis answers."""
    redis = pytest.importorskip("redis", reason="the redis client (requirements.txt) is not installed")
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.exceptions.ConnectionError as exc:
        pytest.skip(f"Redis is not reachable at {REDIS_URL}: {exc}")
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


def test_two_worker_processes_share_one_throttle_budget_through_redis(redis_db):
    """Issue 14 finding 8: with CACHE_URL=redis://…, two gunicorn workers (two processes) draw on one
    budget: 3 requests a minute in all, not 3 each."""
    env = {"CACHE_URL": REDIS_URL, "API_RATE_USER": "3/minute"}

    first = worker(2, **env)
    second = worker(2, **env)

    assert first == {"backend": "RedisCache", "allowed": [True, True]}
    assert second == {"backend": "RedisCache", "allowed": [True, False]}
    assert redis_db.dbsize() == 1  # one counter, kept in Redis


def test_production_without_cache_url_counts_in_the_database_not_in_memory():
    """Issue 14 finding 8: with DEBUG off and no CACHE_URL, the counters are in the database (shared
    by every worker), not in each process's memory."""
    result = run_python(
        "import django; django.setup(); from django.core.cache import caches; "
        "print(type(caches['default']).__name__, caches['default']._table)"
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["DatabaseCache", "crm_cache"]


def test_development_keeps_the_counters_in_memory():
    """Development (DEBUG on, one server process) needs neither Redis nor a cache table."""
    result = run_python(
        "import django; django.setup(); from django.core.cache import caches; "
        "print(type(caches['default']).__name__)",
        DEBUG="true",
    )

    assert result.stdout.split() == ["LocMemCache"], result.stderr


@pytest.mark.django_db
def test_two_workers_share_one_throttle_budget_through_the_database_cache(settings):
    """Issue 14 finding 8: the database cache's counters are shared too: two cache clients, as two
    workers have, draw on one budget. ``migrate`` makes its table (its post_migrate signal); the
    table goes with the test's transaction."""
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "crm_cache"}
    }
    crm_app = apps.get_app_config("crm")
    post_migrate.send(
        sender=crm_app,
        app_config=crm_app,
        verbosity=0,
        interactive=False,
        using="default",
        apps=apps,
        plan=[],
    )
    workers = [DatabaseCache("crm_cache", {}), DatabaseCache("crm_cache", {})]
    request = SimpleNamespace(user=SimpleNamespace(is_authenticated=True, pk=7), META={})

    def allow(cache) -> bool:
        throttle = UserRateThrottle()
        throttle.cache = cache
        throttle.num_requests, throttle.duration = 3, 60
        return throttle.allow_request(request, None)

    allowed = [allow(workers[n % 2]) for n in range(4)]

    assert allowed == [True, True, True, False]


def test_the_deploy_check_warns_about_a_per_process_cache_in_production():
    """Issue 14 finding 8: `check --deploy` (the README's production step) fails on a cache that
    each worker keeps to itself."""
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING", "--tag", "caches"],
        cwd=BASE_DIR,
        env=production_env(CACHE_URL="locmemcache://crm", ALLOWED_HOSTS="crm.example.com"),
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode != 0
    assert "crm.W001" in result.stderr + result.stdout


def test_the_deploy_check_accepts_redis():
    """Redis (or the database default) passes the deploy check."""
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING", "--tag", "caches"],
        cwd=BASE_DIR,
        env=production_env(CACHE_URL=REDIS_URL, ALLOWED_HOSTS="crm.example.com"),
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr


def test_the_redis_cache_makes_one_client_for_all_its_operations(redis_db):
    """CACHE_URL=redis://… is Django's Redis cache with its client made once per connection pool
    (crm_project/cache.py), not once per operation: the values are Django's, the client is reused."""
    from crm_project.cache import RedisCache

    cache = RedisCache(REDIS_URL, {"KEY_PREFIX": "t"})
    cache.set("answer", {"n": 42}, 60)
    assert cache.add("answer", 1, 60) is False
    assert cache.add("hits", 1, 60) is True
    assert cache.incr("hits") == 2
    assert cache.get_many(["answer", "hits", "none"]) == {"answer": {"n": 42}, "hits": 2}
    client = cache._cache.get_client(write=True)
    assert cache._cache.get_client() is client
    assert cache._cache.get_client("answer", write=False) is client
    cache.delete("answer")
    assert cache.get("answer") is None
    # The settings pick it for a redis:// CACHE_URL.
    result = run_python(
        "import django; django.setup(); from django.core.cache import caches; "
        "print(type(caches['default']).__module__)",
        CACHE_URL=REDIS_URL,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["crm_project.cache"]


def _throttle(throttle_class, cache, rate: str):
    throttle = throttle_class()
    throttle.cache = cache
    throttle.rate = rate
    throttle.num_requests, throttle.duration = throttle.parse_rate(rate)
    return throttle


def test_concurrent_requests_of_one_user_never_exceed_the_budget(redis_db):
    """Requests of one user that arrive at once, as several workers and threads serve them, draw on one
    budget exactly: a read of the window and its write are one step, so none is lost between them.
    DRF's throttle reads the list of timestamps and writes it back, and 40 requests at once at 10 a
    minute were nearly all let through."""
    from crm.api.throttling import UserRateThrottle
    from crm_project.cache import RedisCache

    caches_ = [RedisCache(REDIS_URL, {}), RedisCache(REDIS_URL, {})]  # two workers' clients
    request = SimpleNamespace(user=SimpleNamespace(is_authenticated=True, pk=9), META={})
    start = threading.Barrier(40)

    def send(n: int) -> bool:
        throttle = _throttle(UserRateThrottle, caches_[n % 2], "10/minute")
        start.wait()
        return throttle.allow_request(request, None)

    with ThreadPoolExecutor(max_workers=40) as pool:
        allowed = list(pool.map(send, range(40)))

    assert allowed.count(True) == 10
    assert redis_db.dbsize() == 1


def test_a_refused_request_is_told_when_the_window_frees_a_request(redis_db):
    """Retry-After: the oldest counted request leaves the window ``duration`` after it was made; the
    budget is the window's, whichever worker counted the requests."""
    from crm.api.throttling import UserRateThrottle
    from crm_project.cache import RedisCache

    cache = RedisCache(REDIS_URL, {})
    request = SimpleNamespace(user=SimpleNamespace(is_authenticated=True, pk=10), META={})
    clock = iter([1000.0, 1010.0, 1020.0, 1030.0, 1061.0, 1062.0])
    throttles = []
    for _ in range(6):
        throttle = _throttle(UserRateThrottle, cache, "3/minute")
        throttle.timer = lambda: next(clock)
        throttles.append(throttle)

    allowed = [throttle.allow_request(request, None) for throttle in throttles]

    # At 1030 the three of 1000–1020 fill the minute: refused, free again at 1060 (30 s to wait).
    # At 1061 the one of 1000 has left; at 1062 the window holds 1010, 1020 and 1061 again.
    assert allowed == [True, True, True, False, True, False]
    assert throttles[3].wait() == pytest.approx(30.0)
    assert throttles[5].wait() == pytest.approx(8.0)


def test_without_redis_the_throttle_is_djangos_cache_as_before(settings):
    """One process's memory keeps DRF's list of times in the cache."""
    from crm.api.throttling import UserRateThrottle

    cache = LocMemCache("throttle-test", {})
    request = SimpleNamespace(user=SimpleNamespace(is_authenticated=True, pk=11), META={})
    allowed = [_throttle(UserRateThrottle, cache, "2/minute").allow_request(request, None) for _ in range(3)]

    assert allowed == [True, True, False]
    assert len(cache.get("throttle_user_11")) == 2


def test_concurrent_requests_in_one_process_memory_never_exceed_the_budget():
    """Development (one server, its threads) counts in the process's memory: requests of one user
    served at once by its threads draw on one budget exactly, DRF's read and write of the window made
    one step by a lock of the process's. Twenty bursts of 40 at 10 a minute: DRF's class let 11 and
    20 through in two of twenty here (the race needs a thread switch between its read and write)."""
    from crm.api.throttling import UserRateThrottle

    switching = sys.getswitchinterval()

    def burst(pk: int) -> tuple[int, int]:
        cache = LocMemCache(f"throttle-threads-test-{pk}", {})
        request = SimpleNamespace(user=SimpleNamespace(is_authenticated=True, pk=pk), META={})
        start = threading.Barrier(40)

        def send(n: int) -> bool:
            throttle = _throttle(UserRateThrottle, cache, "10/minute")
            start.wait()
            return throttle.allow_request(request, None)

        with ThreadPoolExecutor(max_workers=40) as pool:
            allowed = list(pool.map(send, range(40)))
        return allowed.count(True), len(cache.get(f"throttle_user_{pk}"))

    sys.setswitchinterval(1e-6)  # threads take turns as often as they can: a read-then-write race shows
    try:
        bursts = [burst(1300 + n) for n in range(20)]
    finally:
        sys.setswitchinterval(switching)

    assert set(bursts) == {(10, 10)}


# Worker processes of a production on SQLite (DEBUG off, no CACHE_URL: the database cache), each
# sending N requests of one user at an agreed moment, for three users one second apart; each prints
# which were allowed.
SQLITE_WORKER = """
import json, sys, time
from types import SimpleNamespace
import django
django.setup()
from django.core.cache import caches
from crm.api.throttling import UserRateThrottle
allowed = {}
for user in range(3):
    request = SimpleNamespace(user=SimpleNamespace(is_authenticated=True, pk=4343 + user), META={})
    throttles = [UserRateThrottle() for _ in range(int(sys.argv[1]))]
    time.sleep(max(0.0, float(sys.argv[2]) + user - time.time()))
    allowed[user] = [throttle.allow_request(request, None) for throttle in throttles]
print(json.dumps({"backend": type(caches["default"]).__name__, "allowed": allowed}))
"""


def test_worker_processes_on_sqlite_never_exceed_the_budget_together(tmp_path):
    """A production on SQLite without CACHE_URL counts in the database cache: four worker processes
    sending ten requests of one user each at the same moment allow ten in all (the budget), each
    window read and written in a transaction that holds SQLite's write lock from its start. Three
    users, one after the other: DRF's read and write let 16 to 30 of 40 through in five bursts of six here."""
    import time

    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'crm.sqlite3'}", "API_RATE_USER": "10/minute"}
    made = run_python(
        "import django; django.setup(); from django.core.management import call_command; "
        "call_command('createcachetable', verbosity=0)",
        **env,
    )
    assert made.returncode == 0, made.stderr
    at = str(time.time() + 8)  # after every worker has started
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", SQLITE_WORKER, "10", at],
            cwd=BASE_DIR,
            env=production_env(**env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    results = []
    for process in workers:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))

    assert {result["backend"] for result in results} == {"DatabaseCache"}
    allowed = [sum(result["allowed"][str(user)].count(True) for result in results) for user in range(3)]
    assert allowed == [10, 10, 10]


@pytest.mark.postgres_only
@pytest.mark.skipif(
    db_connection.vendor != "postgresql",
    reason="SQLite's test database is in memory, its locks shared without waiting: the worker processes' "
    "test above runs SQLite's database cache",
)
@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_through_the_database_cache_never_exceed_the_budget(settings):
    """Production without CACHE_URL counts in the database cache: there too, requests of one user
    arriving at once at several workers (threads, each with its own connection) draw on one budget
    exactly, the row locked while its list is read and written back. DRF's class let all 30 through at
    5 a minute here."""
    from django.core.management import call_command
    from django.db import connection, connections

    from crm.api.throttling import UserRateThrottle

    table = "crm_throttle_test_cache"
    backend = "django.core.cache.backends.db.DatabaseCache"
    settings.CACHES = {"default": {"BACKEND": backend, "LOCATION": table}}
    call_command("createcachetable", verbosity=0)
    request = SimpleNamespace(user=SimpleNamespace(is_authenticated=True, pk=12), META={})
    start = threading.Barrier(30)

    def send(n: int) -> bool:
        try:
            throttle = _throttle(UserRateThrottle, DatabaseCache(table, {}), "5/minute")
            start.wait()
            return throttle.allow_request(request, None)
        finally:
            connections.close_all()

    try:
        with ThreadPoolExecutor(max_workers=30) as pool:
            allowed = list(pool.map(send, range(30)))
        assert allowed.count(True) == 5
        # The list is the cache's value, as DRF keeps it: the five times, newest first.
        history = DatabaseCache(table, {}).get("throttle_user_12")
        assert len(history) == 5 and history == sorted(history, reverse=True)
        refused = _throttle(UserRateThrottle, DatabaseCache(table, {}), "5/minute")
        assert refused.allow_request(request, None) is False
        assert 0 < refused.wait() <= 60
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {table}")
