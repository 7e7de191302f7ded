"""The API's request budgets, counted in one step where the cache is Redis or PostgreSQL.

DRF's throttles keep a list of the timestamps of the last ``duration`` seconds' requests in the cache:
they read it, drop what has left the window, and write it back with the new request. Between the read
and the write another worker's request of the same user reads the same list, and one of the two writes
is lost, so requests arriving together were let through beyond the rate (40 at once at 10 a minute:
nearly all), and each request carried the whole list (up to the rate's number of floats) both ways.

With Redis as the cache (``CACHE_URL=redis://``, as production runs) the window is a sorted set of
the requests' timestamps, and one script drops what has left it, counts, and adds the request if the
budget allows: Redis runs a script alone, so no request is lost and none is let through beyond the
rate, whatever the number of workers and machines; and a request costs one round trip instead of two.
The rules are DRF's: at most ``num_requests`` in any ``duration`` seconds, a refused request is not
counted, and ``wait()`` is the time until the oldest counted request leaves the window. The time is
the web process's (``timer``), as in DRF: the machines' clocks are assumed to agree (NTP).

With the database cache (production without ``CACHE_URL``) the window is DRF's list, kept in the
cache's row as the cache keeps it, but read and written back inside one transaction that holds the
row's lock: ``SELECT … FOR UPDATE`` on PostgreSQL; on SQLite the transaction begins IMMEDIATE (the
settings' ``transaction_mode``), holding the database's write lock from its start. A request of the
same user at another worker waits for the lock, then reads the list with this request in it. In one
process's memory (development: one server, its threads) DRF's read and write are made one step by a
lock of the process's.
"""

import base64
import pickle
import secrets
import threading
from datetime import UTC, datetime

from django.core.cache import cache as proxied_default_cache
from django.core.cache import caches
from django.core.cache.backends.db import DatabaseCache
from django.core.cache.backends.locmem import LocMemCache
from django.core.cache.backends.redis import RedisCache
from django.db import connections, models, router, transaction
from rest_framework import throttling

# KEYS[1] the window; ARGV: now, duration (s), the budget, a member unique to this request.
# Answers {1} when the request is counted, {0, count, oldest} when it is refused.
WINDOW_SCRIPT = """
local now = tonumber(ARGV[1])
local duration = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - duration)
local count = redis.call('ZCARD', KEYS[1])
if count < tonumber(ARGV[3]) then
    redis.call('ZADD', KEYS[1], now, ARGV[4])
    redis.call('PEXPIRE', KEYS[1], math.ceil(duration * 1000))
    return {1}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {0, count, oldest[2]}
"""


def _backend(cache):
    """The cache backend behind ``cache`` (Django's default-cache proxy or a backend)."""
    return caches["default"] if cache is proxied_default_cache else cache


def _locking_database(backend) -> str | None:
    """The database alias of a database cache whose row can be held while its window is read and
    written: PostgreSQL's (a row lock), SQLite's when its transactions begin IMMEDIATE (the database's
    write lock, as the settings make them); else None."""
    if not isinstance(backend, DatabaseCache):
        return None
    db = router.db_for_write(backend.cache_model_class)
    connection = connections[db]
    if connection.vendor == "postgresql":
        return db
    # The settings' option: the connection reads it only when it connects.
    mode = connection.settings_dict.get("OPTIONS", {}).get("transaction_mode") or ""
    if connection.vendor == "sqlite" and mode.upper() == "IMMEDIATE":
        return db
    return None


# One process's memory is one process's: its lock makes DRF's read and write of a window one step for
# the threads that serve its requests.
_MEMORY_LOCK = threading.Lock()


def _window_script(backend):
    """The window script registered with the backend's client (its SHA is sent after the first call)."""
    client = backend._cache.get_client(write=True)
    script = getattr(backend, "_crm_window_script", None)
    if script is None or script.registered_client is not client:
        script = backend._crm_window_script = client.register_script(WINDOW_SCRIPT)
    return script


class AtomicWindowMixin:
    """DRF's sliding window, kept and checked in one step in Redis, under a row lock in the database
    cache on PostgreSQL (see the module's docstring)."""

    _refused = None  # (requests counted in the window, the oldest's time) when refused in Redis

    def allow_request(self, request, view):
        if self.rate is None:
            return True
        backend = _backend(self.cache)
        in_redis = isinstance(backend, RedisCache)
        db = None if in_redis else _locking_database(backend)
        if not in_redis and db is None:
            if isinstance(backend, LocMemCache):
                with _MEMORY_LOCK:
                    return super().allow_request(request, view)
            return super().allow_request(request, view)
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        self.now = self.timer()
        return self._redis_window(backend) if in_redis else self._database_window(backend, db)

    def _redis_window(self, backend) -> bool:
        """The window's sorted set, trimmed, counted and added to by one script."""
        answer = _window_script(backend)(
            keys=[backend.make_and_validate_key(self.key)],
            args=[repr(self.now), self.duration, self.num_requests, f"{self.now!r}:{secrets.token_hex(6)}"],
        )
        if answer[0] == 1:
            return True
        self._refused = (int(answer[1]), float(answer[2]))
        return self.throttle_failure()

    def _database_window(self, backend, db: str) -> bool:
        """DRF's list of times in the database cache's row, read and written while the row is held
        (see ``_locking_database``)."""
        connection = connections[db]
        table, key = connection.ops.quote_name(backend._table), backend.make_and_validate_key(self.key)
        # As DatabaseCache writes a value and its expiry (whole seconds).
        expires = connection.ops.adapt_datetimefield_value(
            datetime.fromtimestamp(int(self.now + self.duration) + 1, tz=UTC)
        )
        # SQLite's transaction holds the database's write lock from its BEGIN IMMEDIATE.
        held = " FOR UPDATE" if connection.vendor == "postgresql" else ""

        def encoded(value) -> str:
            return base64.b64encode(pickle.dumps(value, backend.pickle_protocol)).decode("latin1")

        with transaction.atomic(using=db), connection.cursor() as cursor:
            # The row exists (an empty window if it did not), then is held and read.
            cursor.execute(
                f"INSERT INTO {table} (cache_key, value, expires) VALUES (%s, %s, %s) "
                "ON CONFLICT (cache_key) DO NOTHING",
                [key, encoded([]), expires],
            )
            cursor.execute(f"SELECT value, expires FROM {table} WHERE cache_key = %s{held}", [key])
            value, until = cursor.fetchone()
            until = _as_datetime(connection, until)
            history = pickle.loads(base64.b64decode(value.encode())) if until.timestamp() > self.now else []
            self.history = [moment for moment in history if moment > self.now - self.duration]
            if len(self.history) >= self.num_requests:
                return self.throttle_failure()  # the row is left as it was
            # Newest first, as DRF keeps it (a request that waited for the lock may be older).
            self.history = sorted([*self.history, self.now], reverse=True)
            cursor.execute(
                f"UPDATE {table} SET value = %s, expires = %s WHERE cache_key = %s",
                [encoded(self.history), expires, key],
            )
        return True

    def wait(self):
        if self._refused is None:
            return super().wait()
        count, oldest = self._refused
        available = self.num_requests - count + 1
        if available <= 0:
            return None
        return (self.duration - (self.now - oldest)) / available


def _as_datetime(connection, value) -> datetime:
    """A cache row's expiry as the database cache reads it (SQLite gives it back as text)."""
    expression = models.Expression(output_field=models.DateTimeField())
    for converter in connection.ops.get_db_converters(expression) + expression.get_db_converters(connection):
        value = converter(value, expression, connection)
    return value


class SimpleRateThrottle(AtomicWindowMixin, throttling.SimpleRateThrottle):
    pass


# DRF's classes first: their own allow_request (the scoped one sets the rate from the view) calls on
# to SimpleRateThrottle's, which is the window's here.
class AnonRateThrottle(throttling.AnonRateThrottle, SimpleRateThrottle):
    pass


class UserRateThrottle(throttling.UserRateThrottle, SimpleRateThrottle):
    pass


class ScopedRateThrottle(throttling.ScopedRateThrottle, SimpleRateThrottle):
    pass
