"""SQLite, with the hooks before commit and on rollback of crm.db.backends.hooks."""

from django.db.backends.sqlite3 import base

from crm.db.backends.hooks import TransactionHooksMixin


class DatabaseWrapper(TransactionHooksMixin, base.DatabaseWrapper):
    pass
