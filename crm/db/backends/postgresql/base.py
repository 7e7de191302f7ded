"""PostgreSQL through psycopg, with the hooks before commit and on rollback of crm.db.backends.hooks."""

from django.db.backends.postgresql import base

from crm.db.backends.hooks import TransactionHooksMixin


class DatabaseWrapper(TransactionHooksMixin, base.DatabaseWrapper):
    pass
