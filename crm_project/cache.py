"""Django's Redis cache with one Redis client per connection pool, made once.

Django's ``RedisCacheClient.get_client`` makes a new ``redis.Redis`` for every cache operation, and
redis-py's client fills a case-insensitive table of some 170 response callbacks each time it is made:
the API's throttle (two operations a request) paid for two of them on every request. A client is
thread-safe and its pool knows when the process has forked, so one per pool serves the process.
"""

from django.core.cache.backends import redis


class RedisCacheClient(redis.RedisCacheClient):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._clients = {}

    def get_client(self, key=None, *, write=False):
        index = self._get_connection_pool_index(write)
        client = self._clients.get(index)
        if client is None:
            client = self._clients[index] = self._client(connection_pool=self._get_connection_pool(write))
        return client


class RedisCache(redis.RedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = RedisCacheClient
