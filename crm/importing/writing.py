"""Bulk writes for the import engine: never a save() per row.

``DjangoWriter`` uses bulk_create / bulk_update in batches and works on every database.
``PostgresWriter`` streams rows with COPY (ids taken from the table's sequence up front, so the tag
links can be written in the same pass) and updates through a temporary table; it is the same write,
several times faster for large files.
"""

import contextlib
import json
from collections.abc import Sequence

from django.conf import settings
from django.core.exceptions import FieldDoesNotExist
from django.core.serializers.json import DjangoJSONEncoder
from django.db import DatabaseError, connection, transaction
from django.db.models import JSONField
from django.db.models.functions import Lower

from crm.models import Stage, Tag

from .lookups import chunked

BATCH_SIZE = 1000
# The columns a stage-history row is written with, in this order, by every bulk writer below.
STAGE_CHANGE_ATTNAMES = (
    "record_id",
    "from_stage_id",
    "from_stage_name",
    "to_stage_id",
    "to_stage_name",
    "changed_by_id",
    "changed_at",
)


def lock_for_import(schema) -> None:
    """Serialise imports of one kind: two files naming the same new email must not both create it."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"crm-import:{schema.kind}"])


def has_tags(model) -> bool:
    """Whether records of ``model`` carry tags (a product does not)."""
    return any(field.name == "tags" for field in model._meta.many_to_many)


def tag_through(model):
    through = model._meta.get_field("tags").remote_field.through
    fk = next(f.attname for f in through._meta.concrete_fields if f.is_relation and f.related_model is model)
    return through, fk


def ensure_tags(known: dict[str, int], new: dict[str, str]) -> dict[str, int]:
    """Ids of every tag by lower-case name, creating the new ones (a concurrent twin is reused)."""
    tag_ids = dict(known)
    if new:
        Tag.objects.bulk_create([Tag(name=name) for name in new.values()], ignore_conflicts=True)
        for chunk in chunked(list(new)):
            rows = (
                Tag.objects.annotate(_lname=Lower("name")).filter(_lname__in=chunk).values_list("id", "name")
            )
            for pk, name in rows:
                tag_ids[name.lower()] = pk
    return tag_ids


def stage_history_model(model):
    """The stage history model of ``model`` (leads have one), or None."""
    try:
        return model._meta.get_field("stage_changes").related_model
    except FieldDoesNotExist:
        return None


def record_stage_history(model, *, new_ids: list[int], moves: list[tuple[int, int, int]], user, now) -> None:
    """Record in bulk what an import did to stages, as the services do one record at a time.

    Each new record enters its stage (one INSERT ... SELECT per chunk of ids); each ``moves`` item
    (record id, old stage id, new stage id) is a change of stage.
    """
    history = stage_history_model(model)
    if history is None or not (new_ids or moves):
        return
    user_id = user.pk if user is not None and user.is_authenticated else None
    meta, quote = history._meta, connection.ops.quote_name
    columns = ", ".join(quote(meta.get_field(a).column) for a in STAGE_CHANGE_ATTNAMES)
    record_table, stage_table = quote(model._meta.db_table), quote(Stage._meta.db_table)
    now_param = meta.get_field("changed_at").get_db_prep_save(now, connection)
    insert = (
        f"INSERT INTO {quote(meta.db_table)} ({columns}) "
        f"SELECT r.id, NULL, '', r.stage_id, s.name, %s, %s FROM {record_table} r "
        f"JOIN {stage_table} s ON s.id = r.stage_id WHERE "
    )
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # One array parameter: IN lists of thousands of placeholders are slow to build and parse.
            if new_ids:
                cursor.execute(insert + "r.id = ANY(%s)", [user_id, now_param, list(new_ids)])
        else:
            for chunk in chunked(new_ids):
                placeholders = ", ".join(["%s"] * len(chunk))
                cursor.execute(insert + f"r.id IN ({placeholders})", [user_id, now_param, *chunk])
    if moves and connection.vendor == "postgresql":
        # Moves of a file's updated records: thousands of rows, COPYed rather than built as models.
        names = dict(Stage.objects.values_list("id", "name"))
        _copy_stage_changes(
            connection,
            history,
            ((pk, old, names.get(old, ""), new, names.get(new, ""), user_id, now) for pk, old, new in moves),
        )
    elif moves:
        names = dict(Stage.objects.values_list("id", "name"))
        history.objects.bulk_create(
            [
                history(
                    record_id=pk,
                    from_stage_id=old,
                    from_stage_name=names.get(old, ""),
                    to_stage_id=new,
                    to_stage_name=names.get(new, ""),
                    changed_by_id=user_id,
                    changed_at=now,
                )
                for pk, old, new in moves
            ],
            batch_size=BATCH_SIZE,
        )


class MissingReferenceError(DatabaseError):
    """A written row names a record that does not exist (deleted while the import ran)."""


class ReferenceChecks:
    """Foreign keys of a bulk write checked once per import, set-based, instead of once per row.

    PostgreSQL checks a foreign key with a trigger per written row: for a 100,000-lead file that is
    about 800,000 lookups-and-locks (the lead's stage, pipeline and owner, each tag link's lead and tag,
    each stage-history row's lead and stage), a third of the import's database time. When the database
    role may set ``session_replication_role`` (a superuser, or ``GRANT SET ON PARAMETER
    session_replication_role`` on PostgreSQL 15+) and the written tables have no triggers of their
    own, the import turns the per-row triggers off for the bulk writes and, before committing, checks
    every foreign key of every written row with one query per key: the distinct ids the rows name
    must exist, and they are locked ``FOR KEY SHARE`` until commit, the lock the triggers would take,
    so a concurrent delete waits and then fails as it would have. A missing id raises, and the
    transaction rolls back. Otherwise, or with CRM_IMPORT_SET_BASED_REFERENCE_CHECKS off, the
    triggers run as usual.
    """

    def __init__(self, db_connection, model, tables: list[tuple[str, str]]):
        self.connection, self.model = db_connection, model
        self.tables = tables  # (table, primary key column) of every table the import writes
        self.since: dict[str, int] = {}  # each table's highest id before the import wrote
        self.active = False

    @classmethod
    def for_model(cls, db_connection, model) -> "ReferenceChecks":
        tables = [(model._meta.db_table, model._meta.pk.column)]
        if any(f.name == "tags" for f in model._meta.many_to_many):
            through, _ = tag_through(model)
            tables.append((through._meta.db_table, through._meta.pk.column))
        history = stage_history_model(model)
        if history is not None:
            tables.append((history._meta.db_table, history._meta.pk.column))
        return cls(db_connection, model, tables)

    def start(self) -> bool:
        """Turn the per-row triggers off for this transaction, when allowed; whether they are."""
        if (
            self.active
            or self.connection.vendor != "postgresql"
            or not settings.CRM_IMPORT_SET_BASED_REFERENCE_CHECKS
        ):
            return self.active
        with self.connection.cursor() as cursor:
            # A trigger of the database's own (an audit trigger, say) must keep firing: keep the
            # per-row checks then. A trigger enabled ALWAYS (the rollups', crm/rollups.py) fires in
            # replica mode too, so it does not stand in the way.
            tables = [table for table, _ in self.tables]
            cursor.execute(
                "SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal AND tgenabled <> 'A' "
                "AND tgrelid = ANY(%s::regclass[])",
                [tables],
            )
            if cursor.fetchone()[0]:
                return False
            # finish() checks single-column keys; a table with a wider one keeps the per-row checks.
            cursor.execute(
                "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND cardinality(conkey) > 1 "
                "AND conrelid = ANY(%s::regclass[])",
                [tables],
            )
            if cursor.fetchone()[0]:
                return False
            try:
                with transaction.atomic(using=self.connection.alias):
                    cursor.execute("SET LOCAL session_replication_role = replica")
            except DatabaseError:
                return False  # not allowed for this role: the triggers check each row
            # Ids come from sequences: the rows this import inserts are past each table's highest id.
            quote = self.connection.ops.quote_name
            for table, pk in self.tables:
                cursor.execute(f"SELECT COALESCE(MAX({quote(pk)}), 0) FROM {quote(table)}")
                self.since[table] = cursor.fetchone()[0]
        self.active = True
        return True

    @contextlib.contextmanager
    def paused(self):
        """The per-row triggers on, for a write to another table (tags created halfway)."""
        if not self.active:
            yield
            return
        with self.connection.cursor() as cursor:
            cursor.execute("SET LOCAL session_replication_role = origin")
            yield
            cursor.execute("SET LOCAL session_replication_role = replica")

    def finish(self, written_ids: list[int]) -> None:
        """Check every foreign key of the rows the import wrote, lock what they name, and turn the
        per-row triggers back on. ``written_ids``: the records of the import's own table it inserted
        or changed. Raises MissingReferenceError on a missing id.

        The rows checked are those past each table's highest id at start() (the import's inserts,
        and any a concurrent session committed since, which are checked twice, harmlessly) and the
        changed records."""
        if not self.active:
            return
        own_table = self.model._meta.db_table
        written = list(written_ids)
        quote = self.connection.ops.quote_name
        with self.connection.cursor() as cursor:
            for table, pk in self.tables:
                cursor.execute(
                    "SELECT a.attname, c.confrelid::regclass::text, f.attname FROM pg_constraint c "
                    "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1] "
                    "JOIN pg_attribute f ON f.attrelid = c.confrelid AND f.attnum = c.confkey[1] "
                    "WHERE c.contype = 'f' AND c.conrelid = %s::regclass AND cardinality(c.conkey) = 1 "
                    "ORDER BY 1",
                    [table],
                )
                keys = cursor.fetchall()
                if not keys:
                    continue
                # One pass over the written rows: the distinct ids each foreign key names, less the
                # import's own records (new, or changed and so locked by it).
                columns, params = [], []
                for column, target, _ in keys:
                    name = quote(column)
                    if target == own_table:
                        columns.append(
                            f"array_agg(DISTINCT {name}) FILTER (WHERE {name} IS NOT NULL "
                            f"AND NOT {name} = ANY(%s::bigint[]))"
                        )
                        params.append(written)
                    else:
                        columns.append(f"array_agg(DISTINCT {name}) FILTER (WHERE {name} IS NOT NULL)")
                where, since = f"{quote(pk)} > %s", self.since[table]
                params.append(since)
                if table == own_table:
                    where += f" OR {quote(pk)} = ANY(%s::bigint[])"
                    params.append([i for i in written if i <= since])
                cursor.execute(f"SELECT {', '.join(columns)} FROM {quote(table)} WHERE {where}", params)
                for (column, target, target_column), ids in zip(keys, cursor.fetchone(), strict=True):
                    if not ids:
                        continue
                    cursor.execute(
                        f"SELECT {quote(target_column)} FROM {quote(target)} "
                        f"WHERE {quote(target_column)} = ANY(%s) FOR KEY SHARE",
                        [ids],
                    )
                    missing = set(ids) - {found for (found,) in cursor.fetchall()}
                    if missing:
                        shown = ", ".join(str(i) for i in sorted(missing)[:5])
                        raise MissingReferenceError(
                            f"{table}.{column} names {target} id {shown}, which no longer exists "
                            "(deleted while importing?)"
                        )
            cursor.execute("SET LOCAL session_replication_role = origin")
        self.active = False


def copy_stage_entries(db_connection, model, entries, *, stage_names: dict, user_id, now) -> None:
    """Record that each new record entered its stage, from ``entries`` (record id, stage id) in hand:
    one COPY, no read of the records back (PostgreSQL; see record_stage_history for the general way)."""
    _copy_stage_changes(
        db_connection,
        stage_history_model(model),
        ((pk, None, "", stage_id, stage_names.get(stage_id, ""), user_id, now) for pk, stage_id in entries),
    )


def _copy_stage_changes(db_connection, history, changes) -> None:
    """COPY stage-history rows, each a tuple of the values of STAGE_CHANGE_ATTNAMES (PostgreSQL)."""
    meta, quote = history._meta, db_connection.ops.quote_name
    columns = ", ".join(quote(meta.get_field(a).column) for a in STAGE_CHANGE_ATTNAMES)
    sql = f"COPY {quote(meta.db_table)} ({columns}) FROM STDIN"
    with db_connection.cursor() as cursor, cursor.copy(sql) as copy:
        for change in changes:
            copy.write_row(change)


def column_defaults(model, attnames, *, db_connection, now, owner_id=None) -> dict[str, object]:
    """The columns of ``model`` that a bulk insert of ``attnames`` leaves out, each with the value every
    new row gets there: ``now`` for the timestamps, ``owner_id`` when given, else the field's default
    (NULL, or "" for a NOT NULL field without one), prepared for ``db_connection``.

    A raw insert (COPY, executemany) names its columns; this is what lets a model gain a field without
    every such insert naming it. The import writer and the seeder both use it.
    """
    given = set(attnames)
    constants = {}
    for field in model._meta.concrete_fields:
        if field.primary_key or field.attname in given:
            continue
        if field.attname in ("created_at", "updated_at"):
            constants[field.column] = now
        elif field.attname == "owner_id" and owner_id is not None:
            constants[field.column] = owner_id
        else:
            constants[field.column] = field.get_db_prep_save(
                field.get_default() if field.has_default() else (None if field.null else ""),
                db_connection,
            )
    return constants


def writer_for(db_connection):
    return (PostgresWriter if db_connection.vendor == "postgresql" else DjangoWriter)(db_connection)


class DjangoWriter:
    def __init__(self, db_connection):
        self.connection = db_connection

    def insert(self, model, attnames, rows, *, now, owner_id=None, progress=None) -> list[int]:
        extra = {"owner_id": owner_id} if owner_id is not None else {}
        ids = []
        for start in range(0, len(rows), BATCH_SIZE):
            objs = [
                model(**dict(zip(attnames, row, strict=True)), **extra)
                for row in rows[start : start + BATCH_SIZE]
            ]
            for obj in objs:
                obj.created_at = obj.updated_at = now
            model.objects.bulk_create(objs)
            batch_ids = [obj.pk for obj in objs]
            # bulk_create lets auto_now stamp its own clock; the import's rows all carry ``now``
            # (record_history finds them by it).
            model.objects.filter(pk__in=batch_ids).update(created_at=now, updated_at=now)
            ids.extend(batch_ids)
            if progress:
                progress(len(ids))
        return ids

    def update(self, model, attnames, rows, *, now, progress=None) -> None:
        """One prepared UPDATE run for every row (bulk_update's CASE per field is slow past a few rows)."""
        meta, quote = model._meta, self.connection.ops.quote_name
        fields = [meta.get_field(a) for a in attnames] + [meta.get_field("updated_at")]
        sql = (
            f"UPDATE {quote(meta.db_table)} SET "
            + ", ".join(f"{quote(f.column)} = %s" for f in fields)
            + f" WHERE {quote(meta.pk.column)} = %s"
        )
        done = 0
        with self.connection.cursor() as cursor:
            for start in range(0, len(rows), BATCH_SIZE):
                batch = rows[start : start + BATCH_SIZE]
                params = [
                    [f.get_db_prep_save(v, self.connection) for f, v in zip(fields, (*row, now), strict=True)]
                    + [pk]
                    for pk, row in batch
                ]
                cursor.executemany(sql, params)
                done += len(batch)
                if progress:
                    progress(done)

    def set_tags(self, model, cleared_ids: list[int], links: list[tuple[int, int]]) -> None:
        """Replace the tags of ``cleared_ids`` and add ``links`` (record id, tag id)."""
        if not has_tags(model):
            return
        through, fk = tag_through(model)
        for chunk in chunked(cleared_ids):
            through.objects.filter(**{f"{fk}__in": chunk}).delete()
        for start in range(0, len(links), BATCH_SIZE * 5):
            through.objects.bulk_create(
                [
                    through(**{fk: pk, "tag_id": tag_id})
                    for pk, tag_id in links[start : start + BATCH_SIZE * 5]
                ]
            )


class PostgresWriter(DjangoWriter):
    """COPY for inserts, updates and tag links: the rows are already valid, so stream them."""

    def insert(self, model, attnames, rows, *, now, owner_id=None, progress=None) -> list[int]:
        if not rows:
            return []
        meta, quote = model._meta, self.connection.ops.quote_name
        # Every other column gets the model's default, the same value for every row.
        constants = column_defaults(
            model, attnames, db_connection=self.connection, now=now, owner_id=owner_id
        )
        columns = [meta.pk.column] + [meta.get_field(a).column for a in attnames] + list(constants)
        tail = tuple(constants.values())
        rows = _json_as_text(meta, attnames, rows)
        with self.connection.cursor() as cursor:
            # Ids come from the table's sequence up front, so tag links need no RETURNING.
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
                [meta.db_table, meta.pk.column, len(rows)],
            )
            ids = [pk for (pk,) in cursor.fetchall()]
        sql = f"COPY {quote(meta.db_table)} ({', '.join(quote(c) for c in columns)}) FROM STDIN"
        with self.connection.cursor() as cursor, cursor.copy(sql) as copy:
            write_row = copy.write_row
            for pk, row in zip(ids, rows, strict=True):
                write_row((pk, *row, *tail))
        if progress:
            progress(len(rows))
        return ids

    def update(self, model, attnames, rows, *, now, progress=None) -> None:
        if len(rows) < 100:
            return super().update(model, attnames, rows, now=now, progress=progress)
        meta, quote = model._meta, self.connection.ops.quote_name
        columns = [meta.get_field(a).column for a in attnames] + [meta.get_field("updated_at").column]
        table, pk = quote(meta.db_table), quote(meta.pk.column)
        staging = quote(f"import_{meta.db_table}")
        quoted = ", ".join(quote(c) for c in columns)
        with self.connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {staging}")
            cursor.execute(
                f"CREATE TEMPORARY TABLE {staging} AS SELECT {pk}, {quoted} FROM {table} WITH NO DATA"
            )
            with cursor.copy(f"COPY {staging} ({pk}, {quoted}) FROM STDIN") as copy:
                values = _json_as_text(meta, attnames, [row for _, row in rows])
                for (key, _), row in zip(rows, values, strict=True):
                    copy.write_row((key, *row, now))
            # Without statistics the planner may loop over the staging table for every stored row.
            cursor.execute(f"ANALYZE {staging}")
            assignments = ", ".join(f"{quote(c)} = s.{quote(c)}" for c in columns)
            cursor.execute(f"UPDATE {table} AS t SET {assignments} FROM {staging} AS s WHERE t.{pk} = s.{pk}")
            cursor.execute(f"DROP TABLE {staging}")
        if progress:
            progress(len(rows))

    def set_tags(self, model, cleared_ids, links) -> None:
        if not has_tags(model):
            return
        through, fk = tag_through(model)
        table, quote = through._meta.db_table, self.connection.ops.quote_name
        with self.connection.cursor() as cursor:
            if cleared_ids:
                cursor.execute(f"DELETE FROM {quote(table)} WHERE {quote(fk)} = ANY(%s)", [list(cleared_ids)])
            if links:
                # Two integers a line: formatting them here is several times faster than write_row().
                with cursor.copy(f"COPY {quote(table)} ({quote(fk)}, tag_id) FROM STDIN") as copy:
                    for start in range(0, len(links), 50_000):
                        copy.write(
                            "".join(f"{pk}\t{tag_id}\n" for pk, tag_id in links[start : start + 50_000])
                        )


def _json_as_text(meta, attnames, rows):
    """``rows`` with the values of JSON fields as JSON text, which COPY's text format takes for jsonb.
    Rows often share one value object (scores from a cache): each is dumped once."""
    positions = [i for i, a in enumerate(attnames) if isinstance(meta.get_field(a), JSONField)]
    if not positions:
        return rows
    dumped: dict[int, str] = {}

    def text(value):
        if value is None:
            return None
        found = dumped.get(id(value))
        if found is None:
            found = dumped[id(value)] = json.dumps(value, cls=DjangoJSONEncoder)
        return found

    converted = []
    for row in rows:
        row = list(row)
        for i in positions:
            row[i] = text(row[i])
        converted.append(tuple(row))
    return converted


class BatchInserter:
    """Inserts the new rows of a file a batch at a time as the engine resolves them, with their tag
    links and stage-history entries. Used for files whose rows need no rule across rows (leads): the
    database writes one batch while the read-ahead thread parses the next rows."""

    def __init__(self, writer: "PostgresWriter", model, attnames, *, now, owner_id, tag_ids, user=None):
        self.writer, self.model, self.attnames = writer, model, attnames
        self.now, self.owner_id, self.tag_ids, self.user = now, owner_id, tag_ids, user
        self.connection = writer.connection
        self.ids: list[int] = []
        # Each new record enters its stage: written from the rows in hand, with the stages' names.
        self.stage_index = None
        self.stage_names = {}
        if stage_history_model(model) is not None and "stage_id" in attnames:
            self.stage_index = attnames.index("stage_id")
            self.stage_names = dict(Stage.objects.values_list("id", "name"))
        self.user_id = user.pk if user is not None and user.is_authenticated else None

    def write(self, batch: list[tuple[tuple, frozenset]]) -> None:
        """Insert (row, tag names) pairs."""
        if not batch:
            return
        ids = self.writer.insert(
            self.model, self.attnames, [row for row, _ in batch], now=self.now, owner_id=self.owner_id
        )
        tag_ids = self.tag_ids
        links = [(pk, tag_ids[name]) for pk, (_, tags) in zip(ids, batch, strict=True) for name in tags]
        self.writer.set_tags(self.model, [], links)
        if self.stage_index is not None:
            index = self.stage_index
            copy_stage_entries(
                self.connection,
                self.model,
                [(pk, row[index]) for pk, (row, _) in zip(ids, batch, strict=True)],
                stage_names=self.stage_names,
                user_id=self.user_id,
                now=self.now,
            )
        else:
            record_stage_history(self.model, new_ids=ids, moves=[], user=self.user, now=self.now)
        self.ids.extend(ids)


IMPORT_CHANGE_REASON = "Imported from a file"
# Keys per INSERT ... SELECT of history rows: well under SQLite's limit of bound parameters.
HISTORY_KEYS_PER_STATEMENT = 5_000


def record_history(model, *, ids: Sequence[int], now, user_id, reason: str = IMPORT_CHANGE_REASON) -> int:
    """One history row for each of the records ``ids`` that a set-based write stamped ``updated_at =
    now`` (created ones also have ``created_at = now``), by INSERT ... SELECT statements that the
    database runs by itself. Returns the number of history rows.

    The rows are found by their keys: the stamp alone has no index, and finding it read every row of
    the table (180 ms at a million leads, for an import of 100 rows). Any other set-based write (a
    merge moving related records with QuerySet.update(), which django-simple-history does not see)
    records its history the same way: stamp ``updated_at = now`` and call this with the keys it
    wrote and its own ``reason``. A model without an audit trail (a price in a price list) records
    nothing."""
    if not hasattr(model, "history") or not ids:
        return 0
    history_model = model.history.model
    quote = connection.ops.quote_name
    # The history keeps the model's fields less the ones it excludes (a lead's derived score).
    kept = {field.column for field in history_model._meta.concrete_fields}
    columns = [field.column for field in model._meta.concrete_fields if field.column in kept]
    names = ", ".join(quote(column) for column in columns)
    field = model._meta.get_field("updated_at")
    stamp = field.get_db_prep_value(now, connection)
    written = 0
    with connection.cursor() as cursor:
        for chunk in chunked(sorted(set(ids)), HISTORY_KEYS_PER_STATEMENT):
            keys = ", ".join(["%s"] * len(chunk))
            cursor.execute(
                f"INSERT INTO {quote(history_model._meta.db_table)} "
                f"({names}, history_date, history_type, history_user_id, history_change_reason) "
                f"SELECT {names}, %s, CASE WHEN {quote('created_at')} = %s THEN '+' ELSE '~' END, %s, %s "
                f"FROM {quote(model._meta.db_table)} "
                f"WHERE {quote(model._meta.pk.column)} IN ({keys}) AND {quote('updated_at')} = %s",
                [stamp, stamp, user_id, reason, *chunk, stamp],
            )
            written += cursor.rowcount
    return written
