"""Hooks around a transaction's end, for the database backends of the project (``crm.db.backends.*``).

Django runs callbacks after a commit (``on_commit``) but none just before it, and none when a
transaction or a savepoint rolls back:

- **before commit** (``register_pre_commit``): the outbox keeps a transaction's events in memory
  as they are published and writes them in one INSERT there, still inside the transaction
  (crm.events.publishing); a failure rolls the transaction back;
- **on rollback** (``on_rollback``): what a rolled-back transaction leaves outside the database,
  a stored file, is undone (activities.services.attachments_create).

Both follow Django's own rules for ``on_commit``: a savepoint rolled back runs the rollback
callbacks registered inside it and only those; in a test case (whose transaction is never
committed) the release of the outermost block of the code itself stands for the commit, as
Django's ``durable`` check reads it.
"""

import logging
from collections.abc import Callable

from django.db import DEFAULT_DB_ALIAS, connections

logger = logging.getLogger("crm.db")

_pre_commit: list[Callable] = []


def register_pre_commit(hook: Callable) -> None:
    """``hook(connection)`` runs before each commit of a transaction on a project backend."""
    if hook not in _pre_commit:
        _pre_commit.append(hook)


def in_own_transaction(connection) -> bool:
    """In a transaction the code opened (a test case's blocks stand for autocommit)."""
    return connection.in_atomic_block and not all(
        getattr(block, "_from_testcase", False) for block in connection.atomic_blocks
    )


def on_rollback(func: Callable[[], None], using: str = DEFAULT_DB_ALIAS) -> None:
    """Run ``func`` if the current transaction, or the savepoint it was registered in, rolls back;
    forget it once the transaction commits. Outside a transaction nothing can roll back: no-op."""
    connection = connections[using]
    if not in_own_transaction(connection):
        return
    if not isinstance(connection, TransactionHooksMixin):
        return
    connection.run_on_rollback.append((set(connection.savepoint_ids), func))


def _run(callbacks) -> None:
    for _, func in callbacks:
        try:
            func()
        except Exception:
            logger.exception("A rollback callback failed: %r", func)


class TransactionHooksMixin:
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.run_on_rollback: list[tuple[set, Callable]] = []

    def commit(self):
        if not self.get_autocommit() and self.connection is not None:
            for hook in _pre_commit:
                hook(self)
        super().commit()
        self.run_on_rollback = []

    def rollback(self):
        callbacks, self.run_on_rollback = self.run_on_rollback, []
        try:
            super().rollback()
        finally:
            _run(callbacks)

    def savepoint_commit(self, sid):
        testcase_end = bool(self.atomic_blocks) and all(
            getattr(block, "_from_testcase", False) for block in self.atomic_blocks
        )
        if testcase_end:
            for hook in _pre_commit:
                hook(self)
        super().savepoint_commit(sid)
        if testcase_end:
            self.run_on_rollback = [entry for entry in self.run_on_rollback if sid not in entry[0]]

    def savepoint_rollback(self, sid):
        super().savepoint_rollback(sid)
        undone = [entry for entry in self.run_on_rollback if sid in entry[0]]
        self.run_on_rollback = [entry for entry in self.run_on_rollback if sid not in entry[0]]
        _run(undone)
