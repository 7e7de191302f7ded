"""Statements on several connections at once: what ``crm_seed --jobs`` runs once its rows are committed.

PostgreSQL 15 builds a trigram (GIN) index with one process, and a seed of five million leads builds
dozens of them and a hundred B-tree indexes. Another connection cannot build an index on rows that are
not committed, so with ``--jobs`` the seed commits its rows first and builds the indexes the way
``pg_restore --jobs`` does: each ``CREATE INDEX`` in its own transaction, on ``jobs`` connections, the
biggest first. A table whose rows a later statement rewrites (a deal's last activity) is first given
those statements and its compaction as a chain, run in order on one connection, and its indexes are
queued once the chain has run. Then the foreign keys, added unvalidated by the seed's own connection
(adding one locks two tables, and two at once could deadlock), are validated here, beside each
table's statistics.
"""

import queue
import threading
from collections.abc import Callable, Iterable

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection, connections

# A trigram index costs several times a B-tree index of the same table (one process, many keys a row).
GIN_WEIGHT = 4


class StatementPool:
    """``jobs`` threads, each with its own database connection in autocommit, running the statements
    added, the costliest first. Use as a context manager: leaving it ends the threads, cancelling the
    statements they run if it is left by an exception. ``pending()`` lists what has not run."""

    def __init__(self, jobs: int, *, maintenance_work_mem: str = "1GB"):
        self.jobs = jobs
        self.maintenance_work_mem = maintenance_work_mem
        self._queue: queue.PriorityQueue = queue.PriorityQueue()
        self._lock = threading.Lock()
        self._added: list[str] = []
        self._done: set[str] = set()
        self._running: dict[int, str] = {}  # backend pid -> the statement it runs
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._order = 0
        self._ticked = 0  # statements done that a wait has counted
        self._threads = [threading.Thread(target=self._work, daemon=True) for _ in range(jobs)]

    def __enter__(self) -> "StatementPool":
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self._stop.set()
            self._cancel_running()
        for _ in self._threads:  # one end marker a thread, ranked after every statement
            self._queue.put((float("inf"), 0, None, (), {}))
        for thread in self._threads:
            thread.join()

    def add(self, statements: Iterable[tuple[str, str]], sizes: dict[str, float]) -> int:
        """Queue (statement, table) pairs, ranked by the table's size (a trigram index's by more);
        return how many."""
        return sum(self.add_chain([statement], table, sizes) for statement, table in statements)

    def add_chain(
        self,
        statements: list[str],
        table: str,
        sizes: dict[str, float],
        *,
        then: Iterable[tuple[str, str]] = (),
        first: bool = False,
    ) -> int:
        """Queue ``statements`` to run in order on one connection (each its own transaction), and once
        they all have, the (statement, table) pairs ``then``, ranked as ``add`` ranks them. ``first``:
        ahead of every statement queued without it (among those with it, in the order added). Return
        how many statements that is in all."""
        then = tuple(then)
        with self._lock:
            self._added.extend(statements)
            self._added.extend(statement for statement, _table in then)
        cost = float("inf") if first else self._cost(statements, table, sizes)
        self._put(cost, tuple(statements), then, sizes)
        return len(statements) + len(then)

    @staticmethod
    def _cost(statements, table: str, sizes: dict[str, float]) -> float:
        gin = any(" USING gin " in statement for statement in statements)
        return sizes.get(table, 0) * (GIN_WEIGHT if gin else 1)

    def _put(self, cost: float, statements: tuple[str, ...], then: tuple, sizes: dict[str, float]) -> None:
        with self._lock:
            self._order += 1
            order = self._order
        self._queue.put((-cost, order, statements, then, sizes))

    def wait(self, tick: Callable[[int], None]) -> None:
        """Block until every statement added so far has run, calling ``tick`` with how many more have
        (since the last wait); re-raise the first error a statement gave."""
        while True:
            with self._lock:
                done, remaining = len(self._done), len(self._added) - len(self._done)
            if done > self._ticked:
                tick(done - self._ticked)
                self._ticked = done
            self._raise()
            if not remaining:
                return
            self._stop.wait(0.2)

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def pending(self) -> list[str]:
        """The statements added that have not run (not started, cancelled or failed)."""
        with self._lock:
            return [statement for statement in self._added if statement not in self._done]

    def _work(self) -> None:
        db = connections[DEFAULT_DB_ALIAS]
        try:
            with db.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                (pid,) = cursor.fetchone()
                cursor.execute(f"SET maintenance_work_mem = '{self.maintenance_work_mem}'")
                # The jobs are the parallelism: a B-tree build's own workers would only compete with them.
                cursor.execute("SET max_parallel_maintenance_workers = 0")
                while not self._stop.is_set():
                    _cost, _order, statements, then, sizes = self._queue.get()
                    if statements is None or not self._run(cursor, pid, statements):
                        break
                    for statement, table in then:  # what waited for the chain
                        self._put(self._cost([statement], table, sizes), (statement,), (), sizes)
        except BaseException as exc:  # handed to the thread that waits
            with self._lock:
                if self._error is None and not self._stop.is_set():
                    self._error = exc
            self._stop.set()
            self._cancel_running()
        finally:
            db.close()

    def _run(self, cursor, pid: int, statements: tuple[str, ...]) -> bool:
        """Run ``statements`` in order; False if the pool stopped before all had run."""
        for statement in statements:
            with self._lock:
                if self._stop.is_set():
                    return False
                self._running[pid] = statement
            try:
                cursor.execute(statement)  # autocommit: each statement its own transaction
            finally:
                with self._lock:
                    self._running.pop(pid, None)
            with self._lock:
                self._done.add(statement)
        return True

    def _cancel_running(self) -> None:
        """Cancel the statements the threads are running (from the calling thread's connection)."""
        with self._lock:
            pids = list(self._running)
        if not pids:
            return
        try:
            with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
                for pid in pids:
                    cursor.execute("SELECT pg_cancel_backend(%s)", [pid])
        except DatabaseError:
            pass  # that connection is gone too: the statements end with the seed's process


def table_sizes(tables: Iterable[str]) -> dict[str, float]:
    """Each table's size in bytes on disk, what the pool ranks its statements by."""
    tables = list(tables)
    quoted = [connection.ops.quote_name(table) for table in tables]
    with connection.cursor() as cursor:
        cursor.execute("SELECT t, pg_relation_size(t::regclass) FROM unnest(%s::text[]) AS t", [quoted])
        sizes = dict(cursor.fetchall())
    return {table: sizes[name] for table, name in zip(tables, quoted, strict=True)}
