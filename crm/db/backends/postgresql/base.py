"""PostgreSQL through psycopg, with the hooks before commit and on rollback of crm.db.backends.hooks,
and prepared statements.

With ``OPTIONS["server_side_binding"]`` (settings: ``DATABASE_PREPARED_STATEMENTS``, on by default)
the values travel apart from the SQL, and psycopg prepares a statement the ``prepare_threshold``-th time
a connection runs it: PostgreSQL then skips parsing it, and after five runs may keep a generic plan
instead of planning it again. The load test's PostgreSQL CPU a request fell by a third.

A statement matching text patterns (``LIKE``: the searches) is never prepared: its best plan depends
on the pattern (a rare name through the trigram indexes, a common fragment by reading the reader's rows
in order), and a generic plan made for one pattern is wrong for the other. Nor is an existence check
(Django's ``exists()``, ``SELECT 1 AS "a" … LIMIT 1``): its answer is often "none", and a generic plan,
made for a key of average frequency, expects a match within the first rows of a sequential scan, so
for a key without rows it reads the whole table. Whether the admin's user owns any activity (the
dashboard asks it) took 300 ms on two million activities that way, against a fraction of a
millisecond through the owner index when planned for the user.

The protocol carries at most 65,535 values a statement, a limit client-side binding does not have: a
statement with more (a ``bulk_create`` of thousands of rows, an ``__in`` of a huge list) is sent with
its values written into the SQL by psycopg, as client-side binding does, and is not prepared.

Django reads every ``timestamptz`` through psycopg's pure-Python loader (its loader subclasses it to
set the time zone, and psycopg's C loaders cannot be subclassed), about 5 µs a value: a page of 100
leads holds several hundred. ``TimestamptzLoader`` here parses with psycopg's C loader where psycopg
has its C module and sets the time zone as Django's does: the same datetimes, in a third of the time.
"""

from functools import lru_cache

from django.db.backends.postgresql import base
from psycopg import ClientCursor, _cmodule, adapt
from psycopg.types.datetime import TimestamptzLoader as PythonTimestamptzLoader

from crm.db.backends.hooks import TransactionHooksMixin

# The extended query protocol's limit: the count of values is a 16-bit integer.
MAX_BOUND_VALUES = 65_535
# How Django's QuerySet.exists() starts its statement (its 1 a value of its own with server-side binding).
EXISTS = ('SELECT %s AS "a" ', 'SELECT 1 AS "a" ')


class ServerBindingCursor(base.ServerBindingCursor):
    def execute(self, query, params=None, *, prepare=None, binary=None):
        if params is not None and len(params) > MAX_BOUND_VALUES:
            query = ClientCursor(self.connection).mogrify(query, params)
            return super().execute(query, prepare=False, binary=binary)
        if prepare is None and isinstance(query, str) and ("LIKE" in query or query.startswith(EXISTS)):
            prepare = False
        return super().execute(query, params, prepare=prepare, binary=binary)


_CLoader = getattr(_cmodule._psycopg, "TimestamptzLoader", None) if _cmodule._psycopg else None


class TimestamptzLoader(adapt.Loader):
    """Django's ``timestamptz`` loader (the value in ``timezone``, or naive when it is None), parsing
    with psycopg's C loader when there is one."""

    timezone = None  # Django's create_cursor() compares it with the connection's

    def __init__(self, oid, context=None):
        super().__init__(oid, context)
        self._parse = (_CLoader or PythonTimestamptzLoader)(oid, context).load

    def load(self, data):
        return self._parse(data).replace(tzinfo=self.timezone)


@lru_cache
def adapters_template(template: adapt.AdaptersMap, timezone) -> adapt.AdaptersMap:
    """Django's adapters for a connection, with ``TimestamptzLoader`` for ``timezone``."""
    adapters = adapt.AdaptersMap(template)
    adapters.register_loader(
        "timestamptz", type("TimestamptzLoader", (TimestamptzLoader,), {"timezone": timezone})
    )
    return adapters


class DatabaseWrapper(TransactionHooksMixin, base.DatabaseWrapper):
    def get_connection_params(self):
        params = super().get_connection_params()
        if params.get("cursor_factory") is base.ServerBindingCursor:
            params["cursor_factory"] = ServerBindingCursor
        if "context" in params:
            params["context"] = adapters_template(params["context"], self.timezone)
        return params
