"""How far each lead and deal got in its pipeline: ``reached_sequence``, kept by database triggers.

The conversion funnel counts, for each stage, the records whose stage history or current stage took
them to that stage or a later one. Reading the history of a million leads takes more than a second, so
each record carries the sequence of the furthest stage of its pipeline it has been in (a lost stage
counts for nothing; NULL: none), and the funnel groups the records by it.

It is kept the way the rollups are (``crm.rollups``), by triggers that every door passes through:

- a record's insert or move sets it to the furthest of its history in its pipeline and its new stage
  (so a record written without a history line, by a fixture or a test factory, still matches a recount
  of its history once it moves);
- stage history written for a record or moved to it (imports, a merge, a fixture) raises it;
- nobody else sets it: an UPDATE that leaves the stage and the pipeline as they were keeps the stored
  value, so a model instance read before the value changed cannot save an old one back.

It is a sequence, so it holds while the order of the pipeline's stages does. Changing a stage's
sequence or lost flag, or deleting a stage, marks the pipeline ``reach_stale`` (a trigger on the
stages): the funnel then reads the history itself and queues ``reached_rebuild`` for the pipeline,
which recounts its records and clears the mark.
"""

from dataclasses import dataclass

from django.db import connection as default_connection
from django.db import transaction

STAGES = "crm_stage"
PIPELINES = "crm_pipeline"
# Set (transaction-local) while a rebuild writes the column itself: the record trigger lets it through.
REBUILDING = "crm.reach_rebuild"

_REACHES: dict[str, "Reach"] = {}


@dataclass(frozen=True)
class Reach:
    """``table``'s records (with ``pipeline_id``, ``stage_id`` and ``reached_sequence``) and their stage
    history ``history`` (``record_id``, ``to_stage_id``)."""

    name: str
    table: str
    history: str

    @property
    def trigger(self) -> str:
        return f"{self.table}_reach"

    @property
    def history_trigger(self) -> str:
        return f"{self.history}_reach"


def register_reach(reach: Reach) -> None:
    _REACHES[reach.name] = reach


def registered_reaches() -> list[Reach]:
    return list(_REACHES.values())


# --- the recount -------------------------------------------------------------------------------------


def counted_sql(reach: Reach, *, pipeline: bool = False) -> str:
    """``(id, seq)`` for every record (of the pipeline given as the one parameter when ``pipeline``):
    what ``reached_sequence`` must hold, counted from the history and the current stage."""
    in_pipeline = " AND s.pipeline_id = %s" if pipeline else ""
    where = " WHERE r.pipeline_id = %s" if pipeline else ""
    return (
        "SELECT r.id, CASE WHEN cs.id IS NOT NULL AND NOT cs.is_lost "
        "AND (h.seq IS NULL OR cs.sequence > h.seq) THEN cs.sequence ELSE h.seq END AS seq "
        f"FROM {reach.table} r LEFT JOIN {STAGES} cs ON cs.id = r.stage_id "
        "LEFT JOIN (SELECT x.record_id, s.pipeline_id, MAX(s.sequence) AS seq "
        f"FROM {reach.history} x JOIN {STAGES} s ON s.id = x.to_stage_id "
        f"WHERE NOT s.is_lost{in_pipeline} GROUP BY x.record_id, s.pipeline_id) h "
        f"ON h.record_id = r.id AND h.pipeline_id = r.pipeline_id{where}"
    )


def reached_rebuild(reach: Reach, *, pipeline_id: int | None = None, connection=None) -> int:
    """Recount ``reached_sequence`` of ``reach``'s records (of one pipeline, or all) in one set-based
    statement, writing only the rows that differ; returns how many did."""
    connection = connection or default_connection
    params = [pipeline_id, pipeline_id] if pipeline_id is not None else []
    counted = counted_sql(reach, pipeline=pipeline_id is not None)
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # Writers wait, so no move falls between the count and the write.
            cursor.execute(f"LOCK TABLE {reach.table}, {reach.history} IN SHARE MODE")
            cursor.execute("SELECT set_config(%s, 'on', true)", [REBUILDING])
        cursor.execute(
            f"UPDATE {reach.table} SET reached_sequence = c.seq FROM ({counted}) AS c "
            f"WHERE {reach.table}.id = c.id AND {reach.table}.reached_sequence IS DISTINCT FROM c.seq",
            params,
        )
        changed = cursor.rowcount
        if connection.vendor == "postgresql":
            cursor.execute("SELECT set_config(%s, 'off', true)", [REBUILDING])
    return changed


def reached_differences(reach: Reach, *, connection=None, shown: int = 20) -> tuple[int, list[tuple]]:
    """How many of ``reach``'s records hold another ``reached_sequence`` than a recount gives, and the
    first ``shown`` of them as (id, stored, counted). A pipeline marked stale waits for its rebuild: its
    records are not compared."""
    connection = connection or default_connection
    sql = (
        f"SELECT t.id, t.reached_sequence, c.seq FROM {reach.table} t JOIN ({counted_sql(reach)}) c "
        f"ON c.id = t.id JOIN {PIPELINES} p ON p.id = t.pipeline_id "
        "WHERE NOT p.reach_stale AND t.reached_sequence IS DISTINCT FROM c.seq ORDER BY t.id"
    )
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM ({sql}) d")
        total = cursor.fetchone()[0]
        cursor.execute(f"{sql} LIMIT {int(shown)}")
        return total, [tuple(row) for row in cursor.fetchall()]


def pipelines_rebuild(*, pipeline_ids: list[int] | None = None, connection=None) -> int:
    """Recount the records of ``pipeline_ids`` (default: the pipelines marked stale) and clear their mark."""
    connection = connection or default_connection
    changed = 0
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        if pipeline_ids is None:
            cursor.execute(f"SELECT id FROM {PIPELINES} WHERE reach_stale ORDER BY id")
            pipeline_ids = [row[0] for row in cursor.fetchall()]
        for pipeline_id in pipeline_ids:
            # The stage trigger marks the pipeline again if its order changes before this commits.
            cursor.execute(f"UPDATE {PIPELINES} SET reach_stale = %s WHERE id = %s", [False, pipeline_id])
            for reach in registered_reaches():
                changed += reached_rebuild(reach, pipeline_id=pipeline_id, connection=connection)
    return changed


# --- the triggers ------------------------------------------------------------------------------------


def _postgresql_triggers(reach: Reach) -> list[str]:
    record = f"""
CREATE OR REPLACE FUNCTION {reach.trigger}() RETURNS trigger LANGUAGE plpgsql AS $reach$
DECLARE
    current_stage RECORD;
BEGIN
    -- A rebuild, or the history trigger below raising the value: theirs is the value to keep.
    IF current_setting('{REBUILDING}', true) = 'on' OR pg_trigger_depth() > 1 THEN
        RETURN NEW;
    END IF;
    IF TG_OP = 'INSERT' THEN
        NEW.reached_sequence := NULL;
    ELSIF NEW.stage_id IS NOT DISTINCT FROM OLD.stage_id
            AND NEW.pipeline_id IS NOT DISTINCT FROM OLD.pipeline_id THEN
        NEW.reached_sequence := OLD.reached_sequence;
        RETURN NEW;
    ELSE
        -- A move: the record's history in its pipeline (an index lookup of a few rows), then the new stage.
        NEW.reached_sequence := (
            SELECT MAX(s.sequence) FROM {reach.history} x JOIN {STAGES} s ON s.id = x.to_stage_id
            WHERE x.record_id = NEW.id AND s.pipeline_id = NEW.pipeline_id AND NOT s.is_lost
        );
    END IF;
    SELECT sequence, is_lost INTO current_stage FROM {STAGES} WHERE id = NEW.stage_id;
    IF FOUND AND NOT current_stage.is_lost
            AND (NEW.reached_sequence IS NULL OR current_stage.sequence > NEW.reached_sequence) THEN
        NEW.reached_sequence := current_stage.sequence;
    END IF;
    RETURN NEW;
END
$reach$"""
    history = f"""
CREATE OR REPLACE FUNCTION {reach.history_trigger}() RETURNS trigger LANGUAGE plpgsql AS $reach$
BEGIN
    UPDATE {reach.table} AS r SET reached_sequence = x.seq
    FROM (
        SELECT a.record_id, s.pipeline_id, MAX(s.sequence) AS seq
        FROM added a JOIN {STAGES} s ON s.id = a.to_stage_id
        WHERE NOT s.is_lost GROUP BY a.record_id, s.pipeline_id
    ) AS x
    WHERE r.id = x.record_id AND r.pipeline_id = x.pipeline_id
        AND (r.reached_sequence IS NULL OR r.reached_sequence < x.seq);
    RETURN NULL;
END
$reach$"""
    return [
        record,
        history,
        _pg_trigger(
            reach.trigger,
            reach.table,
            "BEFORE INSERT OR UPDATE OF stage_id, pipeline_id, reached_sequence",
            "FOR EACH ROW",
            reach.trigger,
        ),
        # One statement-level trigger reads every row a COPY or a merge's UPDATE wrote at once.
        *(
            _pg_trigger(
                f"{reach.history_trigger}_{event}",
                reach.history,
                f"AFTER {event.upper()}",
                "REFERENCING NEW TABLE AS added FOR EACH STATEMENT",
                reach.history_trigger,
            )
            for event in ("insert", "update")
        ),
    ]


def _pg_trigger(name: str, table: str, when: str, each: str, function: str) -> str:
    """Create trigger ``name`` on ``table`` unless it is there, enabled ALWAYS: it fires with
    session_replication_role = replica too, as the import writes. Made only when missing, as the
    rollups' are (ALTER TABLE is refused while the table has pending trigger events)."""
    return f"""
DO $install$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM pg_trigger WHERE tgname = '{name}' AND tgrelid = '{table}'::regclass AND tgenabled = 'A'
    ) THEN
        DROP TRIGGER IF EXISTS {name} ON {table};
        CREATE TRIGGER {name} {when} ON {table} {each} EXECUTE FUNCTION {function}();
        ALTER TABLE {table} ENABLE ALWAYS TRIGGER {name};
    END IF;
END
$install$"""


def _sqlite_recount(reach: Reach, ref: str) -> str:
    table = reach.table
    return (
        f"UPDATE {table} SET reached_sequence = (SELECT MAX(s.sequence) FROM {STAGES} s WHERE NOT s.is_lost "
        f"AND (s.id = {table}.stage_id OR (s.pipeline_id = {table}.pipeline_id AND s.id IN "
        f"(SELECT x.to_stage_id FROM {reach.history} x WHERE x.record_id = {table}.id)))) "
        f"WHERE id = {ref}"
    )


def _sqlite_triggers(reach: Reach) -> list[str]:
    # SQLite recounts the one record from its history each time (recursive triggers are off, so the
    # recount's own UPDATE fires nothing).
    t, h = reach.trigger, reach.history_trigger
    return [
        f"CREATE TRIGGER IF NOT EXISTS {t}_insert AFTER INSERT ON {reach.table} "
        f"BEGIN {_sqlite_recount(reach, 'NEW.id')}; END",
        f"CREATE TRIGGER IF NOT EXISTS {t}_update AFTER UPDATE OF stage_id, pipeline_id, reached_sequence "
        f"ON {reach.table} BEGIN {_sqlite_recount(reach, 'NEW.id')}; END",
        f"CREATE TRIGGER IF NOT EXISTS {h}_insert AFTER INSERT ON {reach.history} "
        f"BEGIN {_sqlite_recount(reach, 'NEW.record_id')}; END",
        f"CREATE TRIGGER IF NOT EXISTS {h}_update AFTER UPDATE OF record_id, to_stage_id ON {reach.history} "
        f"BEGIN {_sqlite_recount(reach, 'NEW.record_id')}; {_sqlite_recount(reach, 'OLD.record_id')}; END",
    ]


STAGE_TRIGGER = f"{STAGES}_reach"


def _stage_triggers(vendor: str) -> list[str]:
    """A change of a stage's order or lost flag, or its deletion, marks its pipeline stale."""
    changed = (
        "OLD.sequence <> NEW.sequence OR OLD.is_lost <> NEW.is_lost OR OLD.pipeline_id <> NEW.pipeline_id"
    )
    if vendor == "postgresql":
        return [
            f"""
CREATE OR REPLACE FUNCTION {STAGE_TRIGGER}() RETURNS trigger LANGUAGE plpgsql AS $reach$
BEGIN
    IF TG_OP = 'DELETE' THEN
        UPDATE {PIPELINES} SET reach_stale = TRUE WHERE id = OLD.pipeline_id AND NOT reach_stale;
    ELSIF {changed} THEN
        UPDATE {PIPELINES} SET reach_stale = TRUE
        WHERE id IN (OLD.pipeline_id, NEW.pipeline_id) AND NOT reach_stale;
    END IF;
    RETURN NULL;
END
$reach$""",
            _pg_trigger(STAGE_TRIGGER, STAGES, "AFTER UPDATE OR DELETE", "FOR EACH ROW", STAGE_TRIGGER),
        ]
    return [
        f"CREATE TRIGGER IF NOT EXISTS {STAGE_TRIGGER}_update AFTER UPDATE ON {STAGES} WHEN {changed} "
        f"BEGIN UPDATE {PIPELINES} SET reach_stale = 1 WHERE id IN (OLD.pipeline_id, NEW.pipeline_id); END",
        f"CREATE TRIGGER IF NOT EXISTS {STAGE_TRIGGER}_delete AFTER DELETE ON {STAGES} "
        f"BEGIN UPDATE {PIPELINES} SET reach_stale = 1 WHERE id = OLD.pipeline_id; END",
    ]


def _vendor(connection) -> str:
    if connection.vendor not in ("postgresql", "sqlite"):
        raise NotImplementedError(
            f"Furthest stages are kept on PostgreSQL and SQLite, not {connection.vendor}."
        )
    return connection.vendor


def _tables(connection) -> set[str]:
    with connection.cursor() as cursor:
        return set(connection.introspection.table_names(cursor))


def _has_column(connection, table: str, column: str) -> bool:
    with connection.cursor() as cursor:
        return any(c.name == column for c in connection.introspection.get_table_description(cursor, table))


def install_reach_triggers(connection=None, reaches: list[Reach] | None = None) -> None:
    """Create (or replace) the triggers of ``reaches`` (default: every registered one whose tables and
    column exist) and the stages' trigger. Idempotent."""
    connection = connection or default_connection
    vendor, tables = _vendor(connection), _tables(connection)
    statements = []
    for reach in reaches if reaches is not None else registered_reaches():
        present = {reach.table, reach.history} <= tables
        if present and _has_column(connection, reach.table, "reached_sequence"):
            statements += (_postgresql_triggers if vendor == "postgresql" else _sqlite_triggers)(reach)
    if PIPELINES in tables and _has_column(connection, PIPELINES, "reach_stale"):
        statements += _stage_triggers(vendor)
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


def drop_reach_triggers(connection=None, reaches: list[Reach] | None = None) -> None:
    """Drop the records' and their histories' triggers (a seed writes the column itself)."""
    connection = connection or default_connection
    vendor = _vendor(connection)
    with connection.cursor() as cursor:
        for reach in reaches if reaches is not None else registered_reaches():
            if vendor == "postgresql":
                cursor.execute(f"DROP TRIGGER IF EXISTS {reach.trigger} ON {reach.table}")
                for event in ("insert", "update"):
                    name = f"{reach.history_trigger}_{event}"
                    cursor.execute(f"DROP TRIGGER IF EXISTS {name} ON {reach.history}")
            else:
                for name in (f"{reach.trigger}_insert", f"{reach.trigger}_update"):
                    cursor.execute(f"DROP TRIGGER IF EXISTS {name}")
                for name in (f"{reach.history_trigger}_insert", f"{reach.history_trigger}_update"):
                    cursor.execute(f"DROP TRIGGER IF EXISTS {name}")


LEAD_REACH = Reach(name="leads", table="crm_lead", history="crm_leadstagechange")
register_reach(LEAD_REACH)
