"""PostgreSQL through psycopg, with the hooks before commit and on rollback of crm.db.backends.hooks,
and prepared statements.

With ``OPTIONS["server_side_binding"]`` (settings: ``DATABASE_PREPARED_STATEMENTS``, on by default)
the values travel apart from the SQL, and psycopg prepares a statement the ``prepare_threshold``-th time
a connection runs it: PostgreSQL then skips parsing it, and after five runs may keep a generic plan
instead of planning it again. The load test's PostgreSQL CPU a request fell by a third.

A statement matching text patterns (``LIKE``: the searches) is never prepared: its best plan depends
on the pattern (a rare name through the trigram indexes, a common fragment by reading the reader's rows
in order), and a generic plan made for one pattern is wrong for the other.

The protocol carries at most 65,535 values a statement, a limit client-side binding does not have: a
statement with more (a ``bulk_create`` of thousands of rows, an ``__in`` of a huge list) is sent with
its values written into the SQL by psycopg, as client-side binding does, and is not prepared.
"""

from django.db.backends.postgresql import base
from psycopg import ClientCursor

from crm.db.backends.hooks import TransactionHooksMixin

# The extended query protocol's limit: the count of values is a 16-bit integer.
MAX_BOUND_VALUES = 65_535


class ServerBindingCursor(base.ServerBindingCursor):
    def execute(self, query, params=None, *, prepare=None, binary=None):
        if params is not None and len(params) > MAX_BOUND_VALUES:
            query = ClientCursor(self.connection).mogrify(query, params)
            return super().execute(query, prepare=False, binary=binary)
        if prepare is None and isinstance(query, str) and "LIKE" in query:
            prepare = False
        return super().execute(query, params, prepare=prepare, binary=binary)


class DatabaseWrapper(TransactionHooksMixin, base.DatabaseWrapper):
    def get_connection_params(self):
        params = super().get_connection_params()
        if params.get("cursor_factory") is base.ServerBindingCursor:
            params["cursor_factory"] = ServerBindingCursor
        return params
