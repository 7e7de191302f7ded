"""The import engine: read, validate every row, match by natural key, then write all or nothing.

Phases, each over the whole file:
1. header — names normalised (case, spaces); unknown, duplicate and missing required columns refused;
2. cells — every cell parsed strictly by a parser built once from the model field (no queries),
   and a natural key already named by an earlier row reported;
3. keys — existing records fetched by natural key in bulk;
4. rules — pipeline defaults, stage in pipeline, primary contact, account hierarchy..., in Python,
   so a bad row is reported instead of failing the database;
5. write — only when no row is bad and it is not a dry run: bulk inserts, updates and tag links in
   one transaction (see ``writing``).
"""

import logging
import operator
import re
from collections import defaultdict
from collections.abc import Callable
from typing import BinaryIO, NamedTuple

from django.core.exceptions import ValidationError
from django.db import DatabaseError, connection, models, transaction
from django.db.models.functions import Lower
from django.utils import timezone

from crm import selectors, services
from crm.actors import is_system, person
from crm.conversion import lead_converter
from crm.models import Account, Lead, Tag
from crm.scoring import Breakdowns, active_rules, last_activities, new_lead_scorer
from crm.win_probability import (
    LEAD,
    account_deal_kind,
    win_account_deals,
    win_counts_after_bulk_write,
    win_counts_before_bulk_write,
)

from . import lookups, writing
from .cells import KEEP, CellError, cell_text, shown_value
from .reading import ImportFileError, ReadAhead, Table, open_table, read_upload
from .result import CLEARED_LISTED, ClearedField, ImportResult, PreviewRow, RowError
from .schemas import (
    CONVERTS,
    READ_ONLY_COLUMNS,
    CompositeKey,
    ImportContext,
    ImportSchema,
    PendingAccount,
    Problem,
    import_schema,
)

logger = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]
PREVIEW_ROWS = 50
PROGRESS_EVERY = 5000
STREAM_BATCH = 20_000  # rows a streamed batch writes: smaller batches interleave tables and slow the database
# The first batch is smaller, so the database starts writing while the rest is still being read.
FIRST_STREAM_BATCH = 5_000
# Written with each new or updated lead, after its own columns. The scorer gives the breakdown's lines;
# they are swapped for the stored breakdown's id, a batch at a time, before the rows are written.
SCORE_ATTNAMES = ("score", "score_breakdown_id")


class _Rollback(Exception):
    pass


class _ParsedBatch(NamedTuple):
    """A batch of parsed rows from the read-ahead thread, with what the thread found while parsing it."""

    rows: list  # (row number, values, natural key or None) of the good rows
    errors: list  # RowError of the bad ones
    read: int  # rows of the file read so far
    new_tags: dict  # tags named so far that do not exist yet: lower-case name → name
    last: bool
    failure: ImportFileError | None  # the file turned out unreadable after these rows


def normalise_header(cell) -> str:
    """'  Contact Name ' → 'contact_name': case, surrounding spaces and inner spaces do not matter."""
    return re.sub(r"[\s\-]+", "_", str(cell if cell is not None else "").strip().lower())


def import_file(
    *,
    kind: str,
    file: BinaryIO | None = None,
    data: bytes | None = None,
    size: int | None = None,
    filename: str = "",
    dry_run: bool = False,
    clear_empty: bool = False,
    default_owner=None,
    user,
    progress: Progress | None = None,
) -> ImportResult:
    """Import a CSV or XLSX file of ``kind`` (leads, contacts, accounts); never raises for a bad file.

    Pass ``file`` (its ``size``, when known, is checked against CRM_IMPORT_MAX_BYTES before reading)
    or the bytes as ``data``.

    ``default_owner`` owns the new records when the file has no owner column (the admin and the API
    pass the person importing). An empty cell leaves an updated record's field unchanged unless
    ``clear_empty`` ("empty cells clear fields"); the result lists the fields it clears. ``user``, the
    person importing (None from the command line), may change only the records they may change
    elsewhere and assign owners as services.owner_ensure_allowed lets them. ``progress(phase, done,
    total)`` is called as rows are read and written.
    """
    schema = import_schema(kind)
    result = ImportResult(kind=kind, dry_run=dry_run, filename=filename, clear_empty=clear_empty)
    try:
        if data is None:
            data = read_upload(file, size=size)
        table = open_table(data, filename)
    except ImportFileError as exc:
        result.file_errors.append(str(exc))
        return result
    del data
    return import_table(
        schema=schema, table=table, result=result, default_owner=default_owner, user=user, progress=progress
    )


def import_table(
    *,
    schema: ImportSchema,
    table: Table,
    result: ImportResult,
    default_owner=None,
    user,
    progress=None,
) -> ImportResult:
    """Run the phases on an opened table; a real run holds one transaction from first read to commit."""
    run = _Run(schema, table, result, default_owner, progress or (lambda phase, done, total: None))
    run.access = _Access(user, schema.kind)
    try:
        try:
            if result.dry_run:
                run.execute()
            else:
                with transaction.atomic():
                    writing.lock_for_import(schema)
                    run.execute()
                    if not result.ok:
                        raise _Rollback
        finally:
            run.close()  # the read-ahead thread, when the run stopped before the end of the file
    except _Rollback:
        result.committed = False
    except ImportFileError as exc:
        # Found while reading the rows (a malformed CSV line, an over-long sheet): a dry run reports it
        # exactly as the real import does.
        result.file_errors.append(str(exc))
        result.committed = False
    except DatabaseError as exc:
        # The rules are checked in Python first; this is a concurrent change or a rule we missed.
        logger.exception("import of %s failed in the database", schema.kind)
        result.file_errors.append(
            f"The database refused the import, so nothing was written ({exc.__class__.__name__}: {exc}). "
            "The data may have changed while importing: try again."
        )
        result.committed = False
    # Rules run in phases over the whole file; a person reads the report in the file's order.
    result.errors.sort(key=operator.attrgetter("row"))
    return result


# Who may change which matched records: the selectors' rule, by import kind.
_WRITABLE = {
    "leads": selectors.lead_editable_by,
    "accounts": selectors.account_editable_by,
    "contacts": selectors.contact_editable_by,
}


class _Access:
    """What the person importing may do, computed once per import, checked per row in Python."""

    def __init__(self, user, kind: str = ""):
        self.user, self.kind = user, kind
        self.unlimited = is_system(user) or selectors.user_sees_everything(user)
        if not self.unlimited:
            self.manages_a_team = selectors.user_manages_a_team(user)
            self.assignable = set(selectors.owner_assignable_by(user).values_list("pk", flat=True))

    def writable_ids(self, ids: list[int]) -> set[int] | None:
        """Of the matched records ``ids``, those the user may change (None: all)."""
        if self.unlimited or not ids:
            return None
        if self.kind not in _WRITABLE:
            return None  # a shared catalogue (products): the model permission to change it is the rule
        writable = _WRITABLE[self.kind](self.user)
        return {
            pk
            for chunk in lookups.chunked(ids)
            for pk in writable.filter(pk__in=chunk).values_list("pk", flat=True)
        }

    def owner_problem(self, *, old, new_owner_id) -> str | None:
        if self.unlimited:
            return None
        problem = services.owner_change_problem(
            record_exists=old is not None,
            old_owner_id=old["owner_id"] if old is not None else None,
            new_owner_id=new_owner_id,
            manages_a_team=self.manages_a_team,
            may_assign=self.assignable.__contains__,
        )
        return problem[0] if problem else None


class _Run:
    access: _Access  # set by import_table: who imports, and what they may change

    def __init__(self, schema: ImportSchema, table: Table, result: ImportResult, default_owner, progress):
        self.schema = schema
        self.model = schema.model
        self.table = table
        self.result = result
        self.default_owner = default_owner
        self.progress = progress
        self.ctx = ImportContext()
        self.tag_ids: dict[str, int] | None = None  # set once tags exist (before streaming, or at write)
        self.streamed_ids: list[int] = []  # new records written batch by batch as the file was read
        self.written_ids: list[int] = []  # every record the import wrote (for their history rows)
        self.references: writing.ReferenceChecks | None = None
        self.breakdowns: Breakdowns | None = None  # score breakdowns stored so far (leads)
        # (row number, id or None) of the rows whose won stage converts their lead after the write.
        self.converts: list[tuple[int, int | None]] = []
        self.new_ids: list[int] = []  # new records written after the streamed ones
        self.reader: ReadAhead | None = None  # parses the rows on a worker thread (see read_ahead)
        self.batches = iter(())
        self.rows_read = 0
        self.total = table.row_estimate
        self.new_tags: dict[str, str] = {}  # tags the file named in the rows handed over so far

    def error(self, row: int, column: str, value, message: str) -> None:
        self.result.errors.append(RowError(row, column, shown_value(value), message))

    # -- phase 1: header ------------------------------------------------------------------------------
    def read_header(self) -> list[tuple[int, str]] | None:
        schema, result = self.schema, self.result
        names = [normalise_header(cell) for cell in self.table.header]
        seen: dict[str, int] = {}
        columns, unknown, ignored, state = [], [], [], []
        for index, name in enumerate(names):
            if not name:
                continue  # an unnamed column is checked row by row: it must stay empty
            if name in seen:
                result.file_errors.append(
                    f"The column “{name}” appears twice (columns {seen[name] + 1} and {index + 1})."
                )
                continue
            seen[name] = index
            if name in schema.export_only:
                state.append(name)
            elif name in schema.columns:
                columns.append((index, name))
            elif name in READ_ONLY_COLUMNS:
                ignored.append(name)
            else:
                unknown.append(self.table.header[index].strip())
        if unknown:
            result.file_errors.append(
                f"Unknown column{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}. "
                f"The columns of {schema.verbose} are: {', '.join(schema.import_columns)}."
            )
        missing = [name for name in schema.required if name not in seen]
        if missing:
            result.file_errors.append(f"Required column missing: {', '.join(missing)}.")
        if ignored:
            result.notices.append(f"Ignored read-only column(s): {', '.join(ignored)}.")
        if state:
            # Export-only: an export imports back, and a record's state follows its stage as in the services.
            result.notices.append(
                f"Ignored export-only column(s): {', '.join(state)}. A lead's status follows its stage: "
                "a won stage converts it, a lost stage loses it (with a lost reason)."
            )
        if any(column not in seen for column in schema.key_columns):
            result.notices.append(
                f"There is no {schema.key_label} column, so every row creates a new record: "
                f"existing {schema.verbose} are matched by {schema.key_label}."
            )
        return None if result.file_errors else columns

    # -- phase 2: cells -------------------------------------------------------------------------------
    def load_lookups(self, names: list[str]) -> None:
        ctx = self.ctx
        ctx.pipelines = lookups.PipelineCache()
        if "owner" in names:
            ctx.users = lookups.user_ids_by_username()
        if "lost_reason" in names:
            ctx.lost_reasons = lookups.lost_reason_ids_by_name()
            ctx.lost_reasons_by_id = lookups.lost_reasons_by_id()
        if "tags" in names:
            ctx.tags = lookups.tags_by_name()
        self.schema.load_lookups(ctx, names)

    def parse_rows(self, columns: list[tuple[int, str]]):
        """(column names, every parsed row): see iter_rows."""
        return [name for _, name in columns], list(self.iter_rows(columns))

    def iter_rows(self, columns: list[tuple[int, str]], error=None):
        """Parse and check the rows one by one, yielding (row number, values, natural key or None) of
        each good one; bad cells are reported to ``error`` (default: the result). Counts the rows read in
        ``rows_read``. Pure Python: it runs on the read-ahead thread (see read_ahead)."""
        schema, table = self.schema, self.table
        names = [name for _, name in columns]
        parsers = [schema.parser(name, self.ctx) for name in names]
        plan = list(zip([index for index, _ in columns], names, parsers, strict=True))
        fast_plan = [(index, parse) for index, _, parse in plan]
        width = len(table.header)
        named = {index for index, cell in enumerate(table.header) if normalise_header(cell)}
        key_position = names.index(schema.key) if schema.key in names else None
        # A key of several columns: the positions of its parts among the values, and of its cells.
        key_positions = key_cells = None
        if schema.composite_key and all(column in names for column in schema.key):
            key_positions = [names.index(column) for column in schema.key]
            key_cells = [columns[position][0] for position in key_positions]
        first_row: dict[str, int] = {}  # natural key → the row that names it first
        error = error or self.error
        self.rows_read = 0
        for number, cells in table.rows:
            self.rows_read += 1
            if len(cells) < width:
                cells = cells + [""] * (width - len(cells))
            elif len(cells) > width and any(c not in (None, "") for c in cells[width:]):
                error(
                    number, "", "", f"The row has {len(cells)} values but the header names {width} columns."
                )
                continue
            try:
                values = [parse(cells[index]) for index, parse in fast_plan]
                bad = False
            except CellError:
                # The slow path runs only for a bad row: every bad cell of it is reported.
                values, bad = [], True
                for index, name, parse in plan:
                    try:
                        parse(cells[index])
                    except CellError as exc:
                        error(number, name, cells[index], str(exc))
            if len(named) < width:
                for index in range(width):
                    if index not in named and cells[index] not in (None, ""):
                        error(
                            number, f"column {index + 1}", cells[index], "A value in a column without a name."
                        )
                        bad = True
            if bad:
                continue
            key = None
            if key_position is not None:
                key_value = values[key_position]
                if key_value:
                    key = key_value.lower()
                    first = first_row.setdefault(key, number)
                    if first != number:
                        error(
                            number,
                            schema.key,
                            key_value,
                            f"Row {first} has the same {schema.key}: a file may name each record once.",
                        )
                        continue
            elif key_positions is not None:
                parts = [values[position] for position in key_positions]
                if all(part is not None and part is not KEEP and part != "" for part in parts):
                    key = CompositeKey(
                        [part.lower() if part.__class__ is str else part for part in parts],
                        " / ".join(cell_text(cells[index]).strip() for index in key_cells),
                    )
                    first = first_row.setdefault(key, number)
                    if first != number:
                        error(
                            number,
                            schema.key_label,
                            key,
                            f"Row {first} has the same {schema.key_label}: a file may name each record once.",
                        )
                        continue
            yield (number, values, key)

    def read_ahead(self, columns: list[tuple[int, str]], *, size: int, first: int) -> None:
        """Start parsing the rows on a worker thread, in batches (the first of ``first`` rows, then of
        ``size``) that take_batch() hands over. The worker touches no database: the parsers work on
        what load_lookups() read. What it shares with this thread travels with each batch: the row
        errors found, the rows read and the tags the file has named so far."""
        schema_tags = self.ctx.new_tags  # filled by the tags parser, on the worker

        def batches():
            errors: list[RowError] = []

            def error(row, column, value, message):
                errors.append(RowError(row, column, shown_value(value), message))

            def batch(rows, *, last=False, failure=None):
                found = list(errors)
                errors.clear()
                return _ParsedBatch(rows, found, self.rows_read, dict(schema_tags), last, failure)

            rows, limit = [], first
            try:
                for row in self.iter_rows(columns, error=error):
                    rows.append(row)
                    if len(rows) >= limit:
                        yield batch(rows)
                        rows, limit = [], size
            except ImportFileError as exc:
                yield batch(rows, last=True, failure=exc)  # the rows before it are reported too
                return
            yield batch(rows, last=True)

        self.reader = ReadAhead(batches())
        self.batches = iter(self.reader)

    def take_batch(self) -> list | None:
        """The next batch of parsed rows (possibly empty: the last one), or None when the file is read."""
        parsed = next(self.batches, None)
        if parsed is None:
            return None
        result = self.result
        result.errors.extend(parsed.errors)
        self.new_tags = parsed.new_tags
        if parsed.last:
            result.rows = parsed.read
        self.progress("validating", parsed.read, parsed.read if parsed.last else max(self.total, parsed.read))
        if parsed.failure is not None:
            raise parsed.failure
        return parsed.rows

    def close(self) -> None:
        """Stop the read-ahead thread, if the run ended before the file did."""
        if self.reader is not None:
            self.reader.close()

    # -- phase 3: keys --------------------------------------------------------------------------------
    def fetch_existing(self, keys: list[str], attnames: list[str]) -> dict[str, list[tuple]]:
        """Stored records whose natural key is one of ``keys`` (lower-case), by key: [(pk, *attnames)]."""
        schema = self.schema
        if schema.composite_key:
            return self.fetch_existing_by_columns(keys, attnames)
        transform = str.upper if schema.key_index == "upper" else str.lower
        query_keys = sorted({transform(k) for k in keys})
        found: dict[str, list[tuple]] = defaultdict(list)
        if connection.vendor == "postgresql":
            # One query with an array parameter instead of thousands of placeholders.
            meta, quote = self.model._meta, connection.ops.quote_name
            columns = ", ".join(quote(meta.get_field(a).column) for a in ["id", schema.key, *attnames])
            key_sql = f"{schema.key_index}({quote(meta.get_field(schema.key).column)})"
            sql = f"SELECT {columns} FROM {quote(meta.db_table)} WHERE {key_sql} = ANY(%s) ORDER BY 1"
            # One text parameter split by the server is far cheaper to send than a 100,000-item array.
            if not any("\n" in k for k in query_keys):
                sql = sql.replace("ANY(%s)", "ANY(string_to_array(%s, E'\\n'))")
                query_keys = "\n".join(query_keys)
            with connection.cursor() as cursor:
                cursor.execute(sql, [query_keys])
                rows = cursor.fetchall()
        else:
            function = lookups.key_function(schema.key_index)
            rows = []
            for chunk in lookups.chunked(query_keys):
                rows += (
                    self.model.objects.annotate(_import_key=function(schema.key))
                    .filter(_import_key__in=chunk)
                    .order_by("pk")
                    .values_list("pk", schema.key, *attnames)
                )
        for pk, key_value, *values in rows:
            found[key_value.lower()].append((pk, *values))
        return found

    def fetch_existing_by_columns(self, keys: list[tuple], attnames: list[str]) -> dict[tuple, list[tuple]]:
        """fetch_existing for a key of several columns: per chunk of keys, the records whose every key
        column is among the chunk's values for it (text compared in lower case), of which those whose
        whole key is one of ``keys`` (a composite unique index serves the query)."""
        key_attnames = [self.schema.attname(column) for column in self.schema.key]
        meta, width = self.model._meta, len(key_attnames)
        text = [isinstance(meta.get_field(a), (models.CharField, models.TextField)) for a in key_attnames]
        annotations = {f"_import_key{i}": Lower(a) for i, a in enumerate(key_attnames) if text[i]}
        paths = [f"_import_key{i}" if text[i] else a for i, a in enumerate(key_attnames)]
        wanted = set(keys)
        found: dict[tuple, list[tuple]] = defaultdict(list)
        seen: set[int] = set()  # a record may answer the queries of two chunks
        for chunk in lookups.chunked(sorted(wanted), max(1, lookups.chunk_size() // width)):
            rows = (
                self.model.objects.annotate(**annotations)
                .filter(**{f"{path}__in": sorted({key[i] for key in chunk}) for i, path in enumerate(paths)})
                .order_by("pk")
                .values_list("pk", *paths, *attnames)
            )
            for pk, *values in rows:
                key = tuple(values[:width])
                if key in wanted and pk not in seen:
                    seen.add(pk)
                    found[key].append((pk, *values[width:]))
        return found

    def fetch_tags(self, ids: list[int]) -> dict[int, frozenset]:
        """The lower-case tag names of each of the records ``ids``."""
        through, fk = writing.tag_through(self.model)
        names: dict[int, set] = defaultdict(set)
        if connection.vendor == "postgresql":
            quote = connection.ops.quote_name
            sql = (
                f"SELECT l.{quote(fk)}, lower(t.name) FROM {quote(through._meta.db_table)} l "
                f"JOIN {quote(Tag._meta.db_table)} t ON t.id = l.tag_id WHERE l.{quote(fk)} = ANY(%s)"
            )
            with connection.cursor() as cursor:
                cursor.execute(sql, [ids])
                rows = cursor.fetchall()
        else:
            rows = [
                (pk, name.lower())
                for chunk in lookups.chunked(ids)
                for pk, name in through.objects.filter(**{f"{fk}__in": chunk}).values_list(fk, "tag__name")
            ]
        for pk, name in rows:
            names[pk].add(name)
        return {pk: frozenset(tag_names) for pk, tag_names in names.items()}

    # -- the whole run --------------------------------------------------------------------------------
    def execute(self) -> None:
        schema, result, ctx = self.schema, self.result, self.ctx
        columns = self.read_header()
        if columns is None:
            return
        self.load_lookups([name for _, name in columns])
        names = [name for _, name in columns]
        # The rows are parsed on a worker thread, a batch or two ahead (see read_ahead). Without rules
        # across rows (leads), a row is final as soon as it is resolved: on PostgreSQL the file is
        # resolved and written in batches, the next batch parsed while this thread writes one.
        # Otherwise the whole file is read first.
        cross_row = schema.has_cross_row_rules
        streams = not cross_row and not result.dry_run and connection.vendor == "postgresql"
        if streams:
            self.read_ahead(columns, size=STREAM_BATCH, first=min(FIRST_STREAM_BATCH, STREAM_BATCH))
            parsed = self.take_batch() or []
        else:
            self.read_ahead(columns, size=PROGRESS_EVERY, first=PROGRESS_EVERY)
            parsed = []
            while (batch := self.take_batch()) is not None:
                parsed += batch
        if not parsed and result.rows == 0:
            result.file_errors.append("The file has a header row but no data rows.")
            return

        field_attnames = [schema.attname(name) for name in names]
        has_tags = "tags" in names
        rule_attnames = [schema.attname(name) for name in schema.rule_fields]
        write_attnames = [a for a in field_attnames if a != "tags"]
        write_attnames += [a for a in rule_attnames if a not in write_attnames]
        write_index = {a: i for i, a in enumerate(write_attnames)}
        resolved_by_rule = {schema.attname(name) for name in schema.resolved_by_rule}

        now = timezone.now()
        # Leads are scored here, from the rows in hand, and written with their score: reading 100,000
        # leads back to score them took longer than the rest of the import. An updated lead's score
        # also reads the stored fields the file leaves out, and its last activity.
        scorer = new_lead_scorer(active_rules(), now=now) if self.model is Lead else None
        if scorer:
            self.breakdowns = Breakdowns()
        fetch_attnames = write_attnames
        if scorer:
            fetch_attnames = [*write_attnames, *sorted(scorer.fields - set(write_attnames))]
        checks_owner = "owner_id" in write_attnames and not self.access.unlimited
        existing, writable, old_tags, last_activity = {}, None, {}, {}

        def prepare(parsed):
            """What resolving the rows ``parsed`` needs from the database (per batch when streaming)."""
            nonlocal existing, writable, old_tags, last_activity
            existing = self.fetch_existing([k for _, _, k in parsed if k], fetch_attnames)
            matched = [rows[0][0] for rows in existing.values() if len(rows) == 1]
            # Every match, duplicates too: an error about them names only the ones the user may change.
            writable = self.access.writable_ids([row[0] for rows in existing.values() for row in rows])
            old_tags = self.fetch_tags(matched) if has_tags else {}
            last_activity = last_activities(matched) if scorer else {}
            if ctx.account_names:
                ctx.accounts = lookups.account_ids_by_name(ctx.account_names)
            ctx.new_keys = {k for _, _, k in parsed if k and k not in existing}
            if schema.kind == "accounts":
                # A new account of the file can be the parent of another row; count names without a key.
                name_position = names.index("name")
                ctx.new_keys |= {values[name_position].lower() for _, values, k in parsed if k is None}

        meta = self.model._meta
        defaults = {}
        keepable = []  # fields whose empty cell means "keep the value, or the default when new"
        for attname in write_attnames:
            field = meta.get_field(attname)
            defaults[attname] = field.get_default() if field.has_default() else (None if field.null else "")
            if attname in resolved_by_rule:
                continue
            if attname not in field_attnames or _may_keep(field):
                keepable.append(attname)
        # Fields whose empty cell parses to "" or None: on an update it keeps the stored value unless the
        # user chose "empty cells clear fields".
        keep_empty = not result.clear_empty
        clearable = [
            a for a in field_attnames if a != "tags" and a not in keepable and a not in resolved_by_rule
        ]
        cleared_count, cleared_records = 0, 0
        missing_rule_fields = {a: KEEP for a in rule_attnames if a not in field_attnames}
        owned = any(field.attname == "owner_id" for field in self.model._meta.concrete_fields)
        self.owner_id = (
            getattr(self.default_owner, "pk", None) if owned and "owner_id" not in write_attnames else None
        )
        as_row = operator.itemgetter(*write_attnames)
        if len(write_attnames) == 1:
            as_row = lambda rec, get=as_row: (get(rec),)  # noqa: E731

        inserts, updates, tag_sets, released = [], [], {}, []
        self.stage_moves = []  # (pk, old stage id, new stage id) of updated records that changed stage
        stage_index = write_index.get("stage_id") if writing.stage_history_model(self.model) else None
        released_fields = list(schema.released.items())

        def classify(number, pk, row, tags, old):
            nonlocal cleared_count, cleared_records
            if pk is None:
                result.new += 1
                inserts.append((row, tags if tags is not KEEP else frozenset()))
                if len(result.preview) < PREVIEW_ROWS:
                    result.preview.append(
                        PreviewRow(number, "new", schema.preview_label(row, write_index, ctx))
                    )
                return
            changed = [a for a, value in zip(write_attnames, row, strict=True) if value != old[a]]
            if not changed and tags is KEEP:
                result.unchanged += 1
                return
            result.updated += 1
            if scorer:
                values = {**old, **dict(zip(write_attnames, row, strict=True))}
                updates.append((pk, (*row, *scorer(values, last_activity.get(pk)))))
            else:
                updates.append((pk, row))
            if any(old[a] != v for a, v in released_fields):
                released.append(pk)
            if tags is not KEEP:
                tag_sets[pk] = tags
            if stage_index is not None and row[stage_index] != old["stage_id"]:
                self.stage_moves.append((pk, old["stage_id"], row[stage_index]))
            cleared = ()
            if not keep_empty:
                cleared = [
                    _column(a) for a in changed if row[write_index[a]] is None or row[write_index[a]] == ""
                ]
                if tags is not KEEP and not tags and old_tags.get(pk):
                    cleared.append("tags")
                if cleared:
                    cleared_records += 1
                    cleared_count += len(cleared)
                    if len(result.cleared) < CLEARED_LISTED:
                        result.cleared += [ClearedField(number, column) for column in cleared]
            if len(result.preview) < 2 * PREVIEW_ROWS:
                shown = [_column(a) for a in changed] + (["tags"] if tags is not KEEP else [])
                result.preview.append(
                    PreviewRow(
                        number,
                        "updated",
                        schema.preview_label(row, write_index, ctx),
                        tuple(shown),
                        tuple(cleared),
                    )
                )

        insert_attnames = [*write_attnames, *SCORE_ATTNAMES] if scorer else write_attnames

        def new_row(rec) -> tuple:
            return (*as_row(rec), *scorer(rec)) if scorer else as_row(rec)

        streamer = None
        if streams and not result.errors:
            self.tag_ids = writing.ensure_tags(ctx.tags, self.new_tags)
            self.references = writing.ReferenceChecks.for_model(connection, self.model)
            self.references.start()
            streamer = writing.BatchInserter(
                writing.writer_for(connection),
                self.model,
                insert_attnames,
                now=now,
                owner_id=self.owner_id,
                tag_ids=self.tag_ids,
                user=self.default_owner,  # who the stage history says entered each new lead
            )
        finals = []  # (row number, pk or None, row tuple in write_attnames order, tags or KEEP, old or None)
        key_name, finalize, error = schema.key_label, schema.finalize, self.error
        try:
            while parsed:
                prepare(parsed)
                for position, (number, values, key) in enumerate(parsed):
                    parsed[position] = None  # free the parsed cells as the rows are resolved
                    rec = dict(zip(field_attnames, values, strict=True))
                    tags = rec.pop("tags", KEEP)
                    if missing_rule_fields:
                        rec.update(missing_rule_fields)
                    old = None
                    pk = None
                    if key is not None and key in existing:
                        matches = existing[key]
                        if len(matches) > 1:
                            # Messages name only the records the importer may change, never the others.
                            shown = [m[0] for m in matches if writable is None or m[0] in writable]
                            ids = ", ".join(str(pk) for pk in shown[:5])
                            if len(shown) == len(matches):
                                message = (
                                    f"{len(matches)} {schema.verbose} already have this {key_name} "
                                    f"(ids {ids}): merge them before importing."
                                )
                            else:
                                message = (
                                    f"Several {schema.verbose} already have this {key_name}, some of them "
                                    f"another team's records{f' (yours: ids {ids})' if shown else ''}: they "
                                    "must be merged before importing."
                                )
                            error(number, key_name, key, message)
                            continue
                        pk, *old_values = matches[0]
                        if writable is not None and pk not in writable:
                            error(
                                number,
                                key_name,
                                key,
                                f"This {key_name} is another team's record; you may not change it.",
                            )
                            continue
                        old = dict(zip(fetch_attnames, old_values, strict=True))
                    for attname in keepable:
                        if rec[attname] is KEEP:
                            rec[attname] = old[attname] if old is not None else defaults[attname]
                    if keep_empty and old is not None:
                        for attname in clearable:
                            value = rec[attname]
                            if value is None or value == "":
                                rec[attname] = old[attname]
                        if tags is not KEEP and not tags:
                            tags = KEEP
                    problems: list[Problem] = []
                    finalize(rec, old, ctx, problems)
                    if problems:
                        for problem in problems:
                            error(number, problem.column, problem.value, problem.message)
                        continue
                    converts = rec.pop(CONVERTS, False)
                    if checks_owner:
                        refused = self.access.owner_problem(old=old, new_owner_id=rec["owner_id"])
                        if refused:
                            error(number, "owner", rec["owner_id"], refused)
                            continue
                    if converts:
                        self.converts.append((number, pk))
                    if pk is not None and tags is not KEEP and tags == old_tags.get(pk, frozenset()):
                        tags = KEEP
                    row = as_row(rec) if pk is not None else new_row(rec)
                    if cross_row:
                        finals.append((number, pk, row, tags, old))
                        continue
                    classify(number, pk, row, tags, old)
                if streamer is not None and not result.errors:
                    # Written while the worker parses the next batch.
                    streamer.write(self.with_breakdown_ids(inserts))
                    self.progress("writing", result.new, result.new + result.updated)
                    inserts = []
                parsed = (self.take_batch() or []) if streams else []
                if streamer is not None and not result.errors and set(self.new_tags) - set(self.tag_ids):
                    # Tags first named in this batch, created before its rows are linked to them.
                    new = {k: v for k, v in self.new_tags.items() if k not in self.tag_ids}
                    with self.references.paused():  # a tag is written with its triggers
                        self.tag_ids.update(writing.ensure_tags({}, new))
        finally:
            if streamer is not None:
                self.streamed_ids = streamer.ids

        if cross_row:
            row_problems = schema.check_rows([(n, pk, row) for n, pk, row, _, _ in finals], write_index, ctx)
            for number, problems in row_problems.items():
                for problem in problems:
                    error(number, problem.column, problem.value, problem.message)
            bad_rows = {error.row for error in result.errors}
            for number, pk, row, tags, old in finals:
                if number not in bad_rows:
                    classify(number, pk, row, tags, old)
            del finals

        result.new_tags = sorted(ctx.new_tags.values(), key=str.lower)
        if cleared_count and result.ok:
            verb = "will be" if result.dry_run else "were"
            result.notices.append(
                f"Empty cells clear fields: {cleared_count} fields of {cleared_records} records {verb} "
                "cleared (listed by row and column)."
            )
        if self.converts and result.ok:
            rows = ", ".join(str(number) for number, _ in self.converts[:20])
            more = f" and {len(self.converts) - 20} more" if len(self.converts) > 20 else ""
            verb = "will be" if result.dry_run else "were"
            result.notices.append(
                f"{len(self.converts)} lead(s) in a won stage {verb} converted as a conversion does "
                f"(an opportunity, and an account and a contact from the lead): row {rows}{more}."
            )
        if not result.ok or result.dry_run:
            return
        self.write(write_attnames, insert_attnames, inserts, updates, tag_sets, released, now=now)
        writing.record_history(
            self.model, ids=self.written_ids, now=now, user_id=getattr(person(self.access.user), "pk", None)
        )
        if self.converts:
            self.convert_won_leads()
            if not result.ok:
                return
        result.committed = True

    def convert_won_leads(self) -> None:
        """Convert the leads the file put in a won stage, through the conversion service, as lead_create
        and lead_update do: few rows, each converted with its account, contact and opportunity."""
        lead_convert = lead_converter()  # sales' conversion service (crm.conversion)
        updated = {pk: number for number, pk in self.converts if pk is not None}
        new_numbers = [number for number, pk in self.converts if pk is None]
        won_stages = [stage.id for stage in self.ctx.pipelines.stages.values() if stage.is_won]
        # Open leads in a won stage are, but for strays, the ones this import just wrote: one query.
        waiting = set(
            Lead.objects.filter(stage_id__in=won_stages, status="open").values_list("pk", flat=True)
        )
        found = [pk for pk in (*self.streamed_ids, *self.new_ids, *updated) if pk in waiting]
        # New rows are inserted in file order, so their ids ascend with their row numbers.
        new_pks = sorted(pk for pk in found if pk not in updated)
        number_of = {**dict(zip(new_pks, new_numbers, strict=False)), **updated}
        for pk in sorted(found, key=lambda pk: number_of.get(pk, 0)):
            lead = Lead.objects.get(pk=pk)
            try:
                with transaction.atomic():
                    lead_convert(lead=lead, user=self.access.user)
            except ValidationError as exc:
                for message in exc.messages:
                    self.error(number_of.get(pk, 0), "stage", lead.stage.name, f"Cannot convert: {message}")

    def with_breakdown_ids(self, pairs: list[tuple[tuple, object]]) -> list:
        """(row, x) pairs whose rows end with a score breakdown's lines, with its stored id instead (the
        breakdowns not stored yet are stored first). Unchanged for models without scores."""
        if self.breakdowns is None or not pairs:
            return pairs
        if self.breakdowns.missing(row[-1] for row, _ in pairs):
            self.breakdowns.store(row[-1] for row, _ in pairs)
        ids = self.breakdowns.ids
        return [((*row[:-1], ids[row[-1]]), x) for row, x in pairs]

    def write(self, write_attnames, insert_attnames, inserts, updates, tag_sets, released, *, now) -> None:
        """Updates first (a primary contact may move to a new row), then inserts, then links and tags."""
        ctx, model, schema = self.ctx, self.model, self.schema
        writer = writing.writer_for(connection)
        tag_ids = self.tag_ids if self.tag_ids is not None else writing.ensure_tags(ctx.tags, ctx.new_tags)
        if self.references is None:
            self.references = writing.ReferenceChecks.for_model(connection, model)
            self.references.start()
        total = self.result.new + self.result.updated  # some new rows may be written already
        existing = [*released, *(pk for pk, _ in updates)]
        if model is Lead:
            # Rows may close, reopen or change closed leads without the services: their counts in the
            # win-probability models move with them.
            win_before = win_counts_before_bulk_write(
                LEAD, existing_pks=existing, total=total + len(released)
            )
        elif model is Account and "industry" in write_attnames and updates and account_deal_kind():
            # Closed deals count their account's industry.
            deals = win_account_deals(existing)
            win_before = win_counts_before_bulk_write(
                account_deal_kind(), existing_pks=deals, total=len(deals)
            )

        def report(done):
            self.progress("writing", done, total)

        if released:
            values = tuple(schema.released.values())
            writer.update(model, list(schema.released), [(pk, values) for pk in released], now=now)
        # An account whose parent is a new row of the file is written without it, then linked.
        parent_index = write_attnames.index("parent_id") if "parent_id" in write_attnames else None
        pending_updates, pending_inserts = [], []
        if parent_index is not None:
            updates = [(pk, _without_pending(row, parent_index, pk, pending_updates)) for pk, row in updates]
        if updates:
            # Updated leads carry their new score too (insert_attnames is write_attnames otherwise).
            updates = [(pk, row) for row, pk in self.with_breakdown_ids([(row, pk) for pk, row in updates])]
            writer.update(model, insert_attnames, updates, now=now, progress=report)
        rows = [row for row, _ in self.with_breakdown_ids(inserts)]
        if parent_index is not None:
            rows = [_without_pending(row, parent_index, i, pending_inserts) for i, row in enumerate(rows)]
        new_ids = self.new_ids = writer.insert(
            model,
            insert_attnames,
            rows,
            now=now,
            owner_id=self.owner_id,
            progress=lambda done: report(len(updates) + done),
        )
        del rows
        if pending_updates or pending_inserts:
            name_index = write_attnames.index("name")
            id_by_key = {row[name_index].lower(): new_ids[i] for i, (row, _) in enumerate(inserts)}
            links = [(pk, (id_by_key[key],)) for pk, key in pending_updates]
            links += [(new_ids[position], (id_by_key[key],)) for position, key in pending_inserts]
            writer.update(model, ["parent_id"], links, now=now)
        links = [
            (new_ids[position], tag_ids[name]) for position, (_, tags) in enumerate(inserts) for name in tags
        ]
        links += [(pk, tag_ids[name]) for pk, tags in tag_sets.items() for name in tags]
        writer.set_tags(model, list(tag_sets), links)
        writing.record_stage_history(
            model,
            new_ids=new_ids,  # the batch inserter recorded the streamed rows' entries
            moves=self.stage_moves,
            user=self.default_owner,
            now=now,
        )
        written = self.written_ids = [*self.streamed_ids, *new_ids, *(pk for pk, _ in updates), *released]
        self.references.finish(written)
        if model is Lead:
            win_counts_after_bulk_write(LEAD, before=win_before, written_pks=written)
        elif model is Account and "industry" in write_attnames and updates and account_deal_kind():
            win_counts_after_bulk_write(account_deal_kind(), before=win_before, written_pks=deals)
        self.progress("writing", total, total)


def _without_pending(row: tuple, index: int, ref, pending: list) -> tuple:
    """The row with a pending parent account replaced by None, noting (ref, parent key) in ``pending``."""
    if isinstance(row[index], PendingAccount):
        pending.append((ref, row[index].key))
        return (*row[:index], None, *row[index + 1 :])
    return row


def _may_keep(field) -> bool:
    """Whether the field's parser answers KEEP for an empty cell (the field cannot be empty)."""
    if isinstance(field, models.BooleanField):
        return True
    if field.choices:
        return not field.blank
    return not field.null and not isinstance(field, (models.CharField, models.TextField))


def _column(attname: str) -> str:
    return attname[:-3] if attname.endswith("_id") else attname
