"""Bulk writers: PostgreSQL's COPY where it is available, batched executemany everywhere else."""

from collections.abc import Callable, Iterable, Sequence
from itertools import islice

from django.core.management.color import no_style
from django.db.backends.base.base import BaseDatabaseWrapper

from crm.seeding.share import RowShare


def _batches(rows: Iterable[tuple], size: int) -> Iterable[list[tuple]]:
    iterator = iter(rows)
    while batch := list(islice(iterator, size)):
        yield batch


class RowWriter:
    """Writes generated rows to one table; ``tick(n)`` is called after every batch of ``n`` rows."""

    # Timestamps are written as text; PostgreSQL needs the zone, SQLite stores naive UTC text.
    utc_suffix = ""
    batch_size = 5000
    # Whether ``write`` takes a share of the rows drawn by another process (crm.seeding.share).
    shares = False

    def __init__(self, connection: BaseDatabaseWrapper):
        self.connection = connection

    def write(
        self,
        table: str,
        columns: Sequence[str],
        rows: Iterable[tuple],
        tick: Callable[[int], None],
        share: RowShare | None = None,
    ) -> int:
        """``rows``, then with ``share`` (where ``shares``) the rest, drawn by another process; return how
        many rows were written."""
        raise NotImplementedError

    def insert_select(self, table: str, columns: Sequence[str], select: str, params: Sequence) -> int:
        """``INSERT INTO table (columns) <select>``, run by the database alone: rows derived from rows
        already written (the first history version of each seeded record)."""
        qn = self.connection.ops.quote_name
        sql = f"INSERT INTO {qn(table)} ({', '.join(qn(column) for column in columns)}) {select}"
        with self.connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.rowcount

    def reset_sequences(self, models: Sequence[type]) -> None:
        """Make the next id the database hands out follow the ids the generator chose."""
        statements = self.connection.ops.sequence_reset_sql(no_style(), models)
        with self.connection.cursor() as cursor:
            for sql in statements:
                cursor.execute(sql)

    def begin(self) -> None:
        """Prepare the transaction the rows are written in."""

    def indexes_to_rebuild(self, table: str) -> int:
        """How many index or constraint builds ``write`` left for ``rebuild_indexes`` (by table)."""
        return 0

    def rebuild_indexes(self, table: str, tick: Callable[[int], None]) -> None:
        """Make the indexes and constraints that ``write`` set aside for the load."""

    def take_rebuild(self, table: str) -> tuple[list[str], list[str]]:
        """The statements that make ``table``'s set-aside indexes, then its constraints (unique ones
        before foreign keys), handed to the caller to run elsewhere (``crm.seeding.parallel``)."""
        return [], []

    def finish(self, tables: Sequence[str]) -> None:
        """Bring the planner's statistics up to date with the new rows."""

    def compact(self, table: str) -> None:
        """Rewrite ``table`` without the dead row versions an UPDATE of its rows left behind."""
        if statement := self.compaction(table):
            with self.connection.cursor() as cursor:
                cursor.execute(statement)

    def compaction(self, table: str) -> str | None:
        """The statement ``compact`` runs (None: nothing to do here), for another connection to run."""
        return None

    def restat(self, tables: Sequence[str]) -> None:
        """After the commit: the statistics that the seed's own transaction could not gather."""


class CopyWriter(RowWriter):
    """Streams rows into PostgreSQL with ``COPY ... FROM STDIN`` (psycopg 3's ``cursor.copy``).

    One COPY per table; psycopg sends the rows in buffered chunks as they are written, so the server
    parses one batch while the generator makes the next, on the other core.

    A table's secondary indexes, unique and foreign-key constraints are dropped before its COPY and
    made again after it, the way pg_restore loads data: one sorted index build and one join that
    validates a foreign key cost a fraction of a million random index insertions and a million
    per-row foreign-key triggers. It all happens in the seed's transaction, so other sessions wait on
    the table's lock and never see it without them, and a failure restores them with everything else.
    """

    utc_suffix = "+00"
    shares = True

    def __init__(self, connection: BaseDatabaseWrapper):
        super().__init__(connection)
        # By table: the statements that make its dropped indexes, and those of its constraints.
        self._rebuild: dict[str, tuple[list[str], list[str]]] = {}

    def begin(self) -> None:
        with self.connection.cursor() as cursor:
            # Room to sort a five-million-row index or build a trigram one in memory; this transaction only.
            cursor.execute("SET LOCAL maintenance_work_mem = '1GB'")
            # A foreign key cannot be dropped while checks of it wait for the commit (the users,
            # pipelines and tags made before the load): check each write at once instead.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")

    def write(self, table, columns, rows, tick, share=None) -> int:
        qn = self.connection.ops.quote_name
        sql = f"COPY {qn(table)} ({', '.join(qn(column) for column in columns)}) FROM STDIN"
        written = 0
        with self.connection.cursor() as cursor:
            rebuild = self._drop_indexes_and_constraints(cursor, table)
            if self._emptied(cursor, table):
                sql += " WITH (FREEZE)"
            with cursor.cursor.copy(sql) as copy:
                write_row = copy.write_row
                for batch in _batches(rows, self.batch_size):
                    for row in batch:
                        write_row(row)
                    written += len(batch)
                    tick(len(batch))
                    # The other process's rows as they come: whole lines, like write_row's buffer.
                    if share is not None and (data := share.take()):
                        copy.write(data)
                if share is not None:
                    forwarded = share.lines
                    tick(forwarded)
                    for data in share.rest():
                        copy.write(data)
                        tick(share.lines - forwarded)
                        forwarded = share.lines
                    written += share.lines
        self._rebuild[table] = rebuild
        return written

    def _emptied(self, cursor, table: str) -> bool:
        """Whether ``table`` was empty and is now truncated in this transaction, so that its COPY may
        FREEZE its rows.

        A frozen row needs no later pass: PostgreSQL writes it visible to every transaction and marks
        its page so in the visibility map, which a plain COPY leaves for VACUUM to do. Until then the
        planner prices an index-only scan as one heap read a row (a rep's deal board chose a 12 ms walk
        of every deal over a 1.6 ms read of each stage's index), and the first reads of each page write
        it again to note that its rows are visible. COPY may freeze only the rows of a table made or
        truncated in its own (sub)transaction: no other transaction can see them before the commit.
        """
        qn = self.connection.ops.quote_name
        cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {qn(table)})")
        return not cursor.fetchone()[0] and empty_tables(cursor, [table])

    def insert_select(self, table, columns, select, params) -> int:
        with self.connection.cursor() as cursor:
            self._rebuild[table] = self._drop_indexes_and_constraints(cursor, table)
        return super().insert_select(table, columns, select, params)

    def indexes_to_rebuild(self, table: str) -> int:
        return sum(map(len, self._rebuild.get(table, ())))

    def rebuild_indexes(self, table: str, tick: Callable[[int], None]) -> None:
        indexes, constraints = self.take_rebuild(table)
        with self.connection.cursor() as cursor:
            for statement in indexes + constraints:
                cursor.execute(statement)
                tick(1)

    def take_rebuild(self, table: str) -> tuple[list[str], list[str]]:
        return self._rebuild.pop(table, ([], []))

    def _drop_indexes_and_constraints(self, cursor, table: str) -> tuple[list[str], list[str]]:
        """Drop what slows a bulk load down; return the statements that make its indexes again, and
        those that add its constraints back."""
        qn = self.connection.ops.quote_name
        cursor.execute(
            """
            SELECT conname, contype, pg_get_constraintdef(oid)
            FROM pg_constraint
            WHERE conrelid = %s::regclass AND contype IN ('u', 'f')
            ORDER BY contype DESC, conname
            """,
            [qn(table)],
        )
        constraints = cursor.fetchall()
        # An index's own statistics targets (crm 0044 raises the search indexes') go with it; a rebuilt
        # index would come back without them.
        cursor.execute(
            """
            SELECT i.indexrelid::regclass::text,
                   pg_get_indexdef(i.indexrelid) || COALESCE((
                       SELECT string_agg('; ALTER INDEX ' || i.indexrelid::regclass::text || ' ALTER COLUMN '
                                         || a.attnum || ' SET STATISTICS ' || a.attstattarget, ''
                                         ORDER BY a.attnum)
                       FROM pg_attribute a WHERE a.attrelid = i.indexrelid AND a.attstattarget > 0
                   ), '')
            FROM pg_index i
            WHERE i.indrelid = %s::regclass AND NOT i.indisprimary
              AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid
                              AND c.conrelid = i.indrelid)
            ORDER BY 1
            """,
            [qn(table)],
        )
        indexes = cursor.fetchall()
        for name, _type, _definition in constraints:
            cursor.execute(f"ALTER TABLE {qn(table)} DROP CONSTRAINT {qn(name)}")
        for name, _definition in indexes:
            cursor.execute(f"DROP INDEX {name}")
        # Unique constraints ('u') before foreign keys ('f'), as the query ordered them.
        return [definition for _name, definition in indexes], [
            f"ALTER TABLE {qn(table)} ADD CONSTRAINT {qn(name)} {definition}"
            for name, _type, definition in constraints
        ]

    def finish(self, tables) -> None:
        qn = self.connection.ops.quote_name
        with self.connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {', '.join(qn(table) for table in tables)}")

    def compaction(self, table: str) -> str:
        # CLUSTER, unlike VACUUM FULL, may run in the seed's transaction. With only the primary key
        # left on the table (its other indexes wait), it is a sort-free rewrite in key order.
        qn = self.connection.ops.quote_name
        with self.connection.cursor() as cursor:
            cursor.execute(
                "SELECT i.indexrelid::regclass::text FROM pg_index i WHERE i.indrelid = %s::regclass "
                "AND i.indisprimary",
                [qn(table)],
            )
            (primary_key,) = cursor.fetchone()
        return f"CLUSTER {qn(table)} USING {primary_key}"

    def restat(self, tables) -> None:
        # An index's own statistics target (crm 0044 gives the search indexes 1,000) is cached with
        # the index, and the connection that rebuilt the index keeps the cached one (PostgreSQL
        # reloads a cached index only in part): its ANALYZE gathered those statistics at the default
        # target, 100 values. A new connection reads the target afresh.
        if self.connection.in_atomic_block:
            return  # a caller's transaction: no new connection inside it
        qn = self.connection.ops.quote_name
        with self.connection.cursor() as cursor:
            cursor.execute(
                "SELECT DISTINCT i.indrelid::regclass::text FROM pg_index i "
                "JOIN pg_attribute a ON a.attrelid = i.indexrelid "
                "WHERE a.attstattarget > 0 AND i.indrelid = ANY(%s::regclass[]) ORDER BY 1",
                [[qn(table) for table in tables]],
            )
            targeted = [name for (name,) in cursor.fetchall()]
        if targeted:
            self.connection.close()
            with self.connection.cursor() as cursor:
                cursor.execute(f"ANALYZE {', '.join(targeted)}")


class InsertWriter(RowWriter):
    """Inserts rows with ``executemany`` in batches: the portable fallback (SQLite)."""

    batch_size = 2000

    def write(self, table, columns, rows, tick, share=None) -> int:
        qn = self.connection.ops.quote_name
        placeholders = ", ".join(["%s"] * len(columns))
        sql = (
            f"INSERT INTO {qn(table)} ({', '.join(qn(column) for column in columns)}) VALUES ({placeholders})"
        )
        written = 0
        with self.connection.cursor() as cursor:
            for batch in _batches(rows, self.batch_size):
                cursor.executemany(sql, batch)
                written += len(batch)
                tick(len(batch))
        return written

    def finish(self, tables) -> None:
        if self.connection.vendor == "sqlite":
            with self.connection.cursor() as cursor:
                cursor.execute("ANALYZE")


def empty_tables(cursor, tables: list[str]) -> bool:
    """Empty ``tables``, which the seed found empty: one TRUNCATE with the tables that refer to them,
    when those are empty too (TRUNCATE takes every referring table along); else DELETE, child first.
    Return whether it truncated."""
    if not tables:
        return False
    qn = cursor.db.ops.quote_name
    cursor.execute(
        """
        WITH RECURSIVE referring(oid) AS (
            SELECT unnest(%s::regclass[])::oid
            UNION
            SELECT c.conrelid FROM pg_constraint c JOIN referring r ON c.confrelid = r.oid
            WHERE c.contype = 'f'
        )
        SELECT oid::regclass::text FROM referring
        """,
        [[qn(table) for table in tables]],
    )
    named = {qn(table) for table in tables}
    others = [name for (name,) in cursor.fetchall() if name not in named]
    for name in others:
        cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {name})")
        if cursor.fetchone()[0]:
            for table in reversed(tables):
                cursor.execute(f"DELETE FROM {qn(table)}")
            return False
    cursor.execute(f"TRUNCATE {', '.join([*named, *others])}")
    return True


def writer_for(connection: BaseDatabaseWrapper) -> RowWriter:
    if connection.vendor == "postgresql":
        return CopyWriter(connection)
    return InsertWriter(connection)
