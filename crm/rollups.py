"""Rollups: counts and sums of a table's rows by a few keys, kept exact by database triggers.

Boards, the dashboard and the forecast read a few hundred rollup rows instead of counting a million
records. A rollup is declared once (``Rollup``: the source table, the key expressions, the summed
expressions) and registered; from the declaration come the triggers that keep it, the set-based
rebuild and the recount that checks it.

Why triggers: every door writes these tables in its own way (services' save(), ``queryset.update``,
``bulk_create`` and COPY in the imports, merges, the cascades Django runs for a deleted user or
account). A trigger is the one place all of them pass through, and it runs in the writer's own
transaction, so a rollup is never ahead of or behind the rows it sums.

Each written row applies a delta: an insert adds it under its keys (an upsert, ``INSERT ... ON
CONFLICT DO UPDATE``), a delete takes it away, an update takes the old row away and adds the new one.
On PostgreSQL the triggers are statement-level: a statement's rows (transition tables) are summed by
key and the net deltas applied in one upsert, in key order, so a COPY of 100,000 rows costs one grouped
statement and moves that cross the same two stages in opposite directions wait for each other rather
than deadlock. On SQLite the triggers are row-level, and a take-away is a plain UPDATE, never an
insert: once the rollup has been emptied (a test's flush deletes the rollup before the records),
deleting the records leaves nothing behind. (PostgreSQL's flush truncates every table at once.) Keys
are never NULL (``COALESCE(owner_id, 0)``): a NULL would never conflict, and two rows would hold one
key.

SQLite rebuilds a table to alter it, which drops its triggers: ``install_triggers`` runs after every
``migrate`` (post_migrate) and is idempotent.
"""

from dataclasses import dataclass, field

from django.db import connection as default_connection
from django.db import transaction

# The registered rollups, by name (the crm app's leads; sales adds its opportunities).
_ROLLUPS: dict[str, "Rollup"] = {}


@dataclass(frozen=True)
class Rollup:
    """``table`` (the rollup) sums the rows of ``source`` grouped by ``keys``.

    ``keys`` and ``sums`` map a column of ``table`` to a SQL expression over a row of ``source``,
    written with ``{row}`` for the row (NEW, OLD, or the recount's alias); ``vendor_keys`` overrides a
    key's expression per database vendor. ``watched`` are the source columns whose change moves a row
    (an update of other columns fires nothing). The count column is ``n``.
    """

    name: str
    table: str
    source: str
    keys: dict[str, str]
    sums: dict[str, str]
    watched: tuple[str, ...]
    vendor_keys: dict[str, dict[str, str]] = field(default_factory=dict)
    # Only the source rows where this holds (SQL over ``{row}``) are summed; None: every row.
    condition: str | None = None
    # A table the keys also read, through a foreign key of the source (``Joined``): its columns are
    # written ``{joined.column}`` in the keys, and a change of them there moves the figures too.
    joined: "Joined | None" = None

    def key_expressions(self, vendor: str, row: str, joined: "object | None" = None) -> list[str]:
        """The keys of ``row``; the joined table's columns read from ``joined`` (an alias or
        ``ABSENT``), by default looked up from ``row``'s foreign key."""
        keys = {**self.keys, **self.vendor_keys.get(vendor, {})}
        if joined is None and self.joined is not None:
            joined = _LookedUp(self.joined, row, lock=False)
        return [keys[column].format(row=row, joined=joined) for column in self.keys]

    def trigger_keys(self, vendor: str, row: str) -> list[str]:
        """The keys as a trigger on the source reads them: on PostgreSQL, the joined row is read
        FOR SHARE, so that a change of it in another transaction waits for this one (or this for it)
        and the figures land under the keys it ends with (see ``Joined``)."""
        if self.joined is None or vendor != "postgresql":
            return self.key_expressions(vendor, row)
        return self.key_expressions(vendor, row, _LookedUp(self.joined, row, lock=True))

    def where(self, row: str) -> str:
        return "TRUE" if self.condition is None else f"({self.condition.format(row=row)})"

    def sum_expressions(self, row: str) -> list[str]:
        return ["1", *(expression.format(row=row) for expression in self.sums.values())]

    @property
    def sum_columns(self) -> list[str]:
        return ["n", *self.sums]

    @property
    def trigger(self) -> str:
        return f"{self.table}_keep"


@dataclass(frozen=True)
class Joined:
    """The table a rollup's keys also read (``table``), by the source's foreign key ``fk`` to its id,
    and the ``columns`` of it they read. Its own triggers move a source row's figures when one of those
    columns changes, and when the row appears or goes (a fixture may load a deal before its lead).

    Concurrency on PostgreSQL: the source's trigger reads the joined row FOR SHARE. A change of that
    row waits for it, then moves the figures it committed; a source write that comes second waits for
    the change, then reads the new values. Either way the figures end under the joined row's last
    values."""

    table: str
    fk: str
    columns: tuple[str, ...]

    @property
    def trigger(self) -> str:
        return f"{self.table}_follow"


class _LookedUp:
    """``{joined.column}`` as a scalar subquery from ``row``'s foreign key."""

    def __init__(self, joined: Joined, row: str, *, lock: bool):
        self._joined, self._row, self._lock = joined, row, lock

    def __getattr__(self, column: str) -> str:
        lock = " FOR SHARE" if self._lock else ""
        joined = self._joined
        return f"(SELECT j.{column} FROM {joined.table} j WHERE j.id = {self._row}.{joined.fk}{lock})"


class _Alias:
    """``{joined.column}`` as a column of a row (a trigger's NEW or OLD, a transition table's alias)."""

    def __init__(self, alias: str):
        self._alias = alias

    def __getattr__(self, column: str) -> str:
        return f"{self._alias}.{column}"


class _Absent:
    """``{joined.column}`` of a joined row that is not there: NULL."""

    def __getattr__(self, column: str) -> str:
        return "NULL"


ABSENT = _Absent()


def register_rollup(rollup: Rollup) -> None:
    _ROLLUPS[rollup.name] = rollup


def registered_rollups() -> list[Rollup]:
    return list(_ROLLUPS.values())


# --- the SQL of the deltas --------------------------------------------------------------------------


def _add(rollup: Rollup, vendor: str, row: str) -> str:
    """Add ``row`` under its keys (creating the rollup row on first use)."""
    columns = [*rollup.keys, *rollup.sum_columns]
    values = [*rollup.key_expressions(vendor, row), *rollup.sum_expressions(row)]
    updates = ", ".join(f"{c} = {rollup.table}.{c} + excluded.{c}" for c in rollup.sum_columns)
    # A SELECT with a WHERE, not VALUES: the row is added only where the condition holds (and the
    # WHERE keeps SQLite's parser from reading ON CONFLICT as a join's ON).
    return (
        f"INSERT INTO {rollup.table} ({', '.join(columns)}) SELECT {', '.join(values)} "
        f"WHERE {rollup.where(row)} "
        f"ON CONFLICT ({', '.join(rollup.keys)}) DO UPDATE SET {updates}"
    )


def _take(rollup: Rollup, vendor: str, row: str) -> str:
    """Take ``row`` away from the rollup row of its keys."""
    sets = ", ".join(
        f"{c} = {c} - ({e})" for c, e in zip(rollup.sum_columns, rollup.sum_expressions(row), strict=True)
    )
    where = " AND ".join(
        f"{c} = {e}" for c, e in zip(rollup.keys, rollup.key_expressions(vendor, row), strict=True)
    )
    return f"UPDATE {rollup.table} SET {sets} WHERE {where} AND {rollup.where(row)}"


def _net_deltas(rollup: Rollup, parts: list[tuple[str, str]]) -> str:
    """One upsert of the net deltas of ``parts`` (transition table, sign), grouped by key, in key order.

    A group whose rows cancel out (an update that left keys and sums alone, a move and its way back)
    writes nothing and locks nothing. Every writer takes its rollup rows in key order, so moves that
    cross the same two stages in opposite directions wait for each other rather than deadlock.
    """
    selects = []
    for table, sign in parts:
        sums = [f"{sign}({e})" for e in rollup.sum_expressions("t")]
        selects.append(
            f"SELECT {', '.join(rollup.trigger_keys('postgresql', 't'))}, {', '.join(sums)} FROM {table} t "
            f"WHERE {rollup.where('t')}"
        )
    return _upsert_deltas(rollup, selects)


def _upsert_deltas(rollup: Rollup, selects: list[str]) -> str:
    """One upsert of the rows of ``selects`` (each: the keys, then the signed sums), net by key, in key
    order (see ``_net_deltas``)."""
    keys = list(rollup.keys)
    columns = [*keys, *rollup.sum_columns]
    totals = [f"SUM(d.{c})" for c in rollup.sum_columns]
    union = " UNION ALL ".join(selects)
    # The first SELECT of the union names the columns.
    named = ", ".join(columns)
    updates = ", ".join(f"{c} = {rollup.table}.{c} + excluded.{c}" for c in rollup.sum_columns)
    return (
        f"INSERT INTO {rollup.table} ({named}) "
        f"SELECT {', '.join(f'd.{k}' for k in keys)}, {', '.join(totals)} "
        f"FROM (SELECT * FROM ({union}) u ({named})) d "
        f"GROUP BY {', '.join(f'd.{k}' for k in keys)} "
        f"HAVING {' OR '.join(f'{t} <> 0' for t in totals)} "
        f"ORDER BY {', '.join(f'd.{k}' for k in keys)} "
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {updates}"
    )


def _statement_function(name: str, insert: str, delete: str, update: str) -> str:
    """A PL/pgSQL trigger function running ``insert``, ``delete`` or ``update`` by the event."""
    return f"""
CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $rollup$
BEGIN
    IF TG_OP = 'INSERT' THEN
        {insert};
    ELSIF TG_OP = 'DELETE' THEN
        {delete};
    ELSE
        {update};
    END IF;
    RETURN NULL;
END
$rollup$"""


def _statement_triggers(name: str, table: str, function: str) -> str:
    """PL/pgSQL that makes ``table``'s three statement-level triggers ``name``_insert, _delete and
    _update run ``function`` with their transition tables, where they are missing.

    The triggers fire with session_replication_role = replica too (ENABLE ALWAYS): the import turns the
    per-row foreign-key triggers off that way (crm/importing/writing.py) and the rollups must still
    follow its rows. They are made only when missing: ALTER TABLE is refused while the table has
    pending trigger events (deferred foreign-key checks earlier in the same transaction), which a
    repair by `crm_rollups --rebuild` may meet."""
    events = {
        "insert": "INSERT ON {table} REFERENCING NEW TABLE AS new_rows",
        "delete": "DELETE ON {table} REFERENCING OLD TABLE AS old_rows",
        "update": "UPDATE ON {table} REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows",
    }
    return "\n".join(
        f"""
    IF NOT EXISTS (
        SELECT 1 FROM pg_trigger WHERE tgname = '{name}_{event}'
        AND tgrelid = '{table}'::regclass AND tgenabled = 'A'
    ) THEN
        DROP TRIGGER IF EXISTS {name}_{event} ON {table};
        CREATE TRIGGER {name}_{event} AFTER {clause.format(table=table)}
            FOR EACH STATEMENT EXECUTE FUNCTION {function}();
        ALTER TABLE {table} ENABLE ALWAYS TRIGGER {name}_{event};
    END IF;"""
        for event, clause in events.items()
    )


def _postgresql_triggers(rollup: Rollup) -> list[str]:
    # Statement-level triggers with transition tables: an import's COPY of 100,000 leads or a bulk
    # update applies its deltas in one grouped upsert, not one upsert a row (about 96 µs a row).
    function = _statement_function(
        f"{rollup.trigger}_delta",
        _net_deltas(rollup, [("new_rows", "")]),
        _net_deltas(rollup, [("old_rows", "-")]),
        _net_deltas(rollup, [("old_rows", "-"), ("new_rows", "")]),
    )
    creates = _statement_triggers(rollup.trigger, rollup.source, f"{rollup.trigger}_delta")
    # A database from before them has one row-level trigger (named as the rollup's trigger), dropped
    # here once.
    trigger = f"""
DO $install$
BEGIN
    IF EXISTS (
        SELECT 1 FROM pg_trigger WHERE tgname = '{rollup.trigger}' AND tgrelid = '{rollup.source}'::regclass
    ) THEN
        DROP TRIGGER {rollup.trigger} ON {rollup.source};
        DROP FUNCTION IF EXISTS {rollup.trigger}();
    END IF;{creates}
END
$install$"""
    return [function, trigger]


def _sqlite_triggers(rollup: Rollup) -> list[str]:
    # SQLite writes one transaction at a time: the order of the two deltas cannot deadlock.
    changed = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in rollup.watched)
    name, source = rollup.trigger, rollup.source
    return [
        f"CREATE TRIGGER IF NOT EXISTS {name}_insert AFTER INSERT ON {source} "
        f"BEGIN {_add(rollup, 'sqlite', 'NEW')}; END",
        f"CREATE TRIGGER IF NOT EXISTS {name}_delete AFTER DELETE ON {source} "
        f"BEGIN {_take(rollup, 'sqlite', 'OLD')}; END",
        f"CREATE TRIGGER IF NOT EXISTS {name}_update AFTER UPDATE ON {source} WHEN {changed} "
        f"BEGIN {_take(rollup, 'sqlite', 'OLD')}; {_add(rollup, 'sqlite', 'NEW')}; END",
    ]


def _moved(
    rollup: Rollup, vendor: str, rows: str, joined_row: str, before, after, *, signed: bool
) -> list[str]:
    """Two SELECTs of the source rows that reference ``joined_row`` (an alias among ``rows``, the FROM
    items that come before the source's): their keys under the joined row's values ``before`` (an
    alias or ``ABSENT``), to take away, and under those ``after``, to add. ``signed``: the first one's
    sums negated."""
    joined = rollup.joined
    selects = []
    for values, sign in ((before, "-" if signed else ""), (after, "")):
        alias = ABSENT if values is ABSENT else _Alias(values)
        expressions = rollup.key_expressions(vendor, "t", alias)
        keys = [f"{e} AS {c}" for c, e in zip(rollup.keys, expressions, strict=True)]
        sums = [
            f"{sign}({e}) AS {c}"
            for c, e in zip(rollup.sum_columns, rollup.sum_expressions("t"), strict=True)
        ]
        selects.append(
            f"SELECT {', '.join(keys)}, {', '.join(sums)} FROM {rows}{rollup.source} t "
            f"WHERE t.{joined.fk} = {joined_row}.id AND {rollup.where('t')}"
        )
    return selects


def _joined_postgresql_triggers(rollup: Rollup) -> list[str]:
    joined = rollup.joined
    name = f"{rollup.trigger}_{joined.trigger}"

    def statement(rows: str, joined_row: str, before, after) -> str:
        return _upsert_deltas(
            rollup, _moved(rollup, "postgresql", rows, joined_row, before, after, signed=True)
        )

    # Updated joined rows: their referencing rows taken away under the values before ("o") and added
    # under those after ("n"), unpaired, as the source's own update: where nothing the keys read changed,
    # the two cancel out and nothing is written. (Pairing old and new rows by id, a join of two
    # transition tables PostgreSQL has no statistics for, made an update of 100,000 leads take 18 s
    # longer.)
    update = _upsert_deltas(
        rollup,
        [
            _moved(rollup, "postgresql", "old_rows o CROSS JOIN ", "o", "o", ABSENT, signed=True)[0],
            _moved(rollup, "postgresql", "new_rows n CROSS JOIN ", "n", ABSENT, "n", signed=True)[1],
        ],
    )
    insert = statement("new_rows n CROSS JOIN ", "n", ABSENT, "n")
    delete = statement("old_rows o CROSS JOIN ", "o", "o", ABSENT)
    function = _statement_function(name, insert, delete, update)
    return [function, f"DO $install$\nBEGIN{_statement_triggers(name, joined.table, name)}\nEND\n$install$"]


def _sqlite_take_selected(rollup: Rollup, select: str) -> str:
    """Take the grouped rows of ``select`` (keys, then sums, named as the rollup's columns) away."""
    keys, sums = list(rollup.keys), rollup.sum_columns
    sets = ", ".join(f"{c} = {rollup.table}.{c} - d.{c}" for c in sums)
    where = " AND ".join(f"{rollup.table}.{k} = d.{k}" for k in keys)
    return f"UPDATE {rollup.table} SET {sets} FROM ({select}) d WHERE {where}"


def _sqlite_add_selected(rollup: Rollup, select: str) -> str:
    columns = [*rollup.keys, *rollup.sum_columns]
    updates = ", ".join(f"{c} = {rollup.table}.{c} + excluded.{c}" for c in rollup.sum_columns)
    return (
        f"INSERT INTO {rollup.table} ({', '.join(columns)}) SELECT * FROM ({select}) WHERE TRUE "
        f"ON CONFLICT ({', '.join(rollup.keys)}) DO UPDATE SET {updates}"
    )


def _grouped(rollup: Rollup, select: str) -> str:
    """``select``'s rows summed by key, the columns named as the rollup's."""
    keys, sums = list(rollup.keys), rollup.sum_columns
    totals = ", ".join(f"SUM(u.{c}) AS {c}" for c in sums)
    return (
        f"SELECT {', '.join(f'u.{k} AS {k}' for k in keys)}, {totals} FROM ({select}) u "
        f"GROUP BY {', '.join(f'u.{k}' for k in keys)}"
    )


def _joined_sqlite_triggers(rollup: Rollup) -> list[str]:
    # Row-level, as the source's: take the referencing rows away under the joined row's values before,
    # add them under its values after.
    joined = rollup.joined
    name = f"{rollup.trigger}_{joined.trigger}"
    changed = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in joined.columns)

    def body(row: str, before, after) -> str:
        take, add = _moved(rollup, "sqlite", "", row, before, after, signed=False)
        return (
            f"{_sqlite_take_selected(rollup, _grouped(rollup, take))}; "
            f"{_sqlite_add_selected(rollup, _grouped(rollup, add))};"
        )

    columns = ", ".join(joined.columns)
    return [
        f"CREATE TRIGGER IF NOT EXISTS {name}_update AFTER UPDATE OF {columns} ON {joined.table} "
        f"WHEN {changed} BEGIN {body('NEW', 'OLD', 'NEW')} END",
        f"CREATE TRIGGER IF NOT EXISTS {name}_insert AFTER INSERT ON {joined.table} "
        f"BEGIN {body('NEW', ABSENT, 'NEW')} END",
        f"CREATE TRIGGER IF NOT EXISTS {name}_delete AFTER DELETE ON {joined.table} "
        f"BEGIN {body('OLD', 'OLD', ABSENT)} END",
    ]


def trigger_statements(rollup: Rollup, vendor: str) -> list[str]:
    if vendor == "postgresql":
        own = _postgresql_triggers(rollup)
        return own if rollup.joined is None else [*own, *_joined_postgresql_triggers(rollup)]
    if vendor == "sqlite":
        own = _sqlite_triggers(rollup)
        return own if rollup.joined is None else [*own, *_joined_sqlite_triggers(rollup)]
    raise NotImplementedError(f"Rollups are kept on PostgreSQL and SQLite, not on {vendor}.")


def drop_statements(rollup: Rollup, vendor: str) -> list[str]:
    joined = []
    if rollup.joined is not None:
        name, table = f"{rollup.trigger}_{rollup.joined.trigger}", rollup.joined.table
        events = ("insert", "delete", "update")
        if vendor == "postgresql":
            joined = [
                *(f"DROP TRIGGER IF EXISTS {name}_{e} ON {table}" for e in events),
                f"DROP FUNCTION IF EXISTS {name}()",
            ]
        else:
            joined = [f"DROP TRIGGER IF EXISTS {name}_{e}" for e in events]
    return joined + _own_drop_statements(rollup, vendor)


def _own_drop_statements(rollup: Rollup, vendor: str) -> list[str]:
    if vendor == "postgresql":
        return [
            f"DROP TRIGGER IF EXISTS {rollup.trigger} ON {rollup.source}",
            *(
                f"DROP TRIGGER IF EXISTS {rollup.trigger}_{e} ON {rollup.source}"
                for e in ("insert", "delete", "update")
            ),
            f"DROP FUNCTION IF EXISTS {rollup.trigger}()",
            f"DROP FUNCTION IF EXISTS {rollup.trigger}_delta()",
        ]
    return [f"DROP TRIGGER IF EXISTS {rollup.trigger}_{event}" for event in ("insert", "delete", "update")]


def _tables(connection) -> set[str]:
    with connection.cursor() as cursor:
        return set(connection.introspection.table_names(cursor))


def install_triggers(connection=None, rollups: list[Rollup] | None = None) -> None:
    """Create (or replace) the triggers of ``rollups`` (default: every registered one whose tables
    exist). Idempotent."""
    connection = connection or default_connection
    tables = _tables(connection)
    with connection.cursor() as cursor:
        for rollup in rollups if rollups is not None else registered_rollups():
            needed = {rollup.table, rollup.source, *([rollup.joined.table] if rollup.joined else [])}
            if needed <= tables:
                for statement in trigger_statements(rollup, connection.vendor):
                    cursor.execute(statement)


def drop_triggers(connection=None, rollups: list[Rollup] | None = None) -> None:
    connection = connection or default_connection
    with connection.cursor() as cursor:
        for rollup in rollups if rollups is not None else registered_rollups():
            for statement in drop_statements(rollup, connection.vendor):
                cursor.execute(statement)


# --- recount, rebuild, check -------------------------------------------------------------------------


def _recount_sql(rollup: Rollup, vendor: str) -> str:
    keys = rollup.key_expressions(vendor, "r")
    sums = [f"SUM({e})" for e in rollup.sum_expressions("r")]
    positions = ", ".join(str(i) for i in range(1, len(keys) + 1))
    return (
        f"SELECT {', '.join(keys + sums)} FROM {rollup.source} r WHERE {rollup.where('r')} "
        f"GROUP BY {positions}"
    )


def _hold_writes(rollup: Rollup, cursor, vendor: str) -> None:
    # Writers wait while the rollup is counted, so none of their deltas falls between the count and
    # the swap. (SQLite's writer already holds the whole database.)
    if vendor == "postgresql":
        cursor.execute(f"LOCK TABLE {rollup.source} IN SHARE MODE")
        if rollup.joined is not None:
            cursor.execute(f"LOCK TABLE {rollup.joined.table} IN SHARE MODE")


def rollup_rebuild(rollup: Rollup, connection=None) -> int:
    """Recount ``rollup`` from its source in one set-based statement; returns the rollup's rows."""
    connection = connection or default_connection
    columns = ", ".join([*rollup.keys, *rollup.sum_columns])
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        _hold_writes(rollup, cursor, connection.vendor)
        cursor.execute(f"DELETE FROM {rollup.table}")
        cursor.execute(f"INSERT INTO {rollup.table} ({columns}) {_recount_sql(rollup, connection.vendor)}")
        cursor.execute(f"SELECT COUNT(*) FROM {rollup.table}")
        return cursor.fetchone()[0]


@dataclass(frozen=True)
class RollupDifference:
    key: dict
    stored: dict
    counted: dict


def _rows(cursor, sql: str, key_count: int) -> dict[tuple, tuple]:
    cursor.execute(sql)
    rows = {}
    for row in cursor.fetchall():
        figures = tuple(int(value or 0) for value in row[key_count:])
        if any(figures):  # a rollup row whose records have all gone is no difference
            rows[tuple(row[:key_count])] = figures
    return rows


def rollup_differences(rollup: Rollup, connection=None) -> list[RollupDifference]:
    """Where ``rollup`` differs from a recount of its source (empty when it is exact)."""
    connection = connection or default_connection
    key_count = len(rollup.keys)
    columns = ", ".join([*rollup.keys, *rollup.sum_columns])
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        _hold_writes(rollup, cursor, connection.vendor)
        stored = _rows(cursor, f"SELECT {columns} FROM {rollup.table}", key_count)
        counted = _rows(cursor, _recount_sql(rollup, connection.vendor), key_count)
    zero = (0,) * len(rollup.sum_columns)
    differences = []
    for key in sorted(stored.keys() | counted.keys(), key=lambda key: tuple(str(part) for part in key)):
        if stored.get(key, zero) != counted.get(key, zero):
            differences.append(
                RollupDifference(
                    key=dict(zip(rollup.keys, key, strict=True)),
                    stored=dict(zip(rollup.sum_columns, stored.get(key, zero), strict=True)),
                    counted=dict(zip(rollup.sum_columns, counted.get(key, zero), strict=True)),
                )
            )
    return differences


def rollups_install_after_migrate(sender, using: str = "default", **kwargs) -> None:
    """post_migrate: make sure every rollup's triggers exist (see the module's note on SQLite)."""
    from django.db import connections

    from crm.reached import install_reach_triggers

    install_triggers(connections[using])
    install_reach_triggers(connections[using])


# --- the leads' rollup -------------------------------------------------------------------------------

# Money is summed in cents (integers): exact on SQLite too, whose decimals are floating point.
CENTS = "CAST(ROUND(COALESCE({{row}}.{column}, 0) * 100) AS BIGINT)"

LEAD_ROLLUP = Rollup(
    name="leads",
    table="crm_leadrollup",
    source="crm_lead",
    keys={
        "pipeline_id": "{row}.pipeline_id",
        "stage_id": "{row}.stage_id",
        "status": "{row}.status",
        "owner_id": "COALESCE({row}.owner_id, 0)",
    },
    sums={"expected_revenue_cents": CENTS.format(column="expected_revenue")},
    watched=("pipeline_id", "stage_id", "status", "owner_id", "expected_revenue"),
)
register_rollup(LEAD_ROLLUP)
