"""The API's request budgets, counted in one step where the cache is Redis.

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

With another cache (the database cache, one process's memory) DRF's own way is kept.
"""

import secrets

from django.core.cache import cache as proxied_default_cache
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
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


def _redis_backend(cache):
    """The Redis cache behind ``cache`` (Django's default-cache proxy or a backend), or None."""
    backend = caches["default"] if cache is proxied_default_cache else cache
    return backend if isinstance(backend, RedisCache) else None


def _window_script(backend):
    """The window script registered with the backend's client (its SHA is sent after the first call)."""
    client = backend._cache.get_client(write=True)
    script = getattr(backend, "_crm_window_script", None)
    if script is None or script.registered_client is not client:
        script = backend._crm_window_script = client.register_script(WINDOW_SCRIPT)
    return script


class AtomicWindowMixin:
    """DRF's sliding window, kept and checked in one step in Redis (see the module's docstring)."""

    _refused = None  # (requests counted in the window, the oldest's time) when refused in Redis

    def allow_request(self, request, view):
        if self.rate is None:
            return True
        backend = _redis_backend(self.cache)
        if backend is None:
            return super().allow_request(request, view)
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        self.now = self.timer()
        answer = _window_script(backend)(
            keys=[backend.make_and_validate_key(self.key)],
            args=[repr(self.now), self.duration, self.num_requests, f"{self.now!r}:{secrets.token_hex(6)}"],
        )
        if answer[0] == 1:
            return True
        self._refused = (int(answer[1]), float(answer[2]))
        return self.throttle_failure()

    def wait(self):
        if self._refused is None:
            return super().wait()
        count, oldest = self._refused
        available = self.num_requests - count + 1
        if available <= 0:
            return None
        return (self.duration - (self.now - oldest)) / available


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
