"""Exports a queryset as CSV, XLSX or JSON with the import's columns, safe to open in a spreadsheet.

Each entry point passes its own filtered queryset; rows are read with values_list() in chunks (the
relations by name through joins, tags from the through table per chunk), so an export costs a few
queries whatever its size. Text cells that a spreadsheet would run as a formula are escaped with a
leading apostrophe in CSV and XLSX; numbers stay numbers in XLSX.
"""

import csv
import io
import json
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import Case, F, QuerySet, Value, When
from django.utils import timezone

from crm.actors import is_system
from crm.selectors import record_visibility_is_restricted, record_visible_to

from .cells import escape_formula, join_tags
from .schemas import Schema, export_schema

EXPORT_FORMATS = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "json": "application/json",
}
CHUNK = 2000


@dataclass
class ExportFile:
    content: bytes
    content_type: str
    filename: str
    rows: int


def _seen_only(schema: Schema, column: str, path: str, user) -> str | Case:
    """``path``, or for a relation to records ``user`` may not all see (leads, deals), the related
    record's label only where ``user`` sees it: an export names nothing its reader cannot see."""
    field = schema.field(column)
    if (
        is_system(user)
        or not field.is_relation
        or not record_visibility_is_restricted(field.related_model, user)
    ):
        return path
    visible = record_visible_to(field.related_model, user).values("pk")
    return Case(When(**{f"{column}__in": visible}, then=F(path)), default=Value(None))


def export_rows(
    schema: Schema, queryset: QuerySet, progress: Callable[[int], None] | None = None, *, user
) -> Iterator[list]:
    """The export's rows as lists of Python values in ``schema.export_columns`` order; tags as a list.

    ``user`` is the reader (None: the system, who sees everything)."""
    columns = schema.export_columns
    paths = [schema.export_path(column) for column in columns]
    value_paths = [
        _seen_only(schema, column, path, user)
        for column, path in zip(columns, paths, strict=True)
        if path is not None
    ]
    tag_position = columns.index("tags") if "tags" in columns else None
    through = fk = None
    if tag_position is not None:
        from .writing import tag_through

        through, fk = tag_through(schema.model)
    rows = queryset.values_list(*value_paths)
    if not queryset.ordered:
        rows = rows.order_by("pk")
    chunk: list[list] = []
    done = 0

    def flush():
        if tag_position is not None:
            ids = [row[0] for row in chunk]
            tags = defaultdict(list)
            links = (
                through.objects.filter(**{f"{fk}__in": ids})
                .order_by("tag__name")
                .values_list(fk, "tag__name")
            )
            for pk, name in links:
                tags[pk].append(name)
            for row in chunk:
                row.insert(tag_position, tags.get(row[0], []))
        return chunk

    for values in rows.iterator(chunk_size=CHUNK):
        chunk.append(list(values))
        if len(chunk) == CHUNK:
            yield from flush()
            done += len(chunk)
            chunk = []
            if progress:
                progress(done)
    if chunk:
        yield from flush()
        done += len(chunk)
        if progress:
            progress(done)


def text_cell(value) -> str:
    """A value as a CSV cell: text formula-escaped, numbers and dates as ISO text, tags joined."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return timezone.localtime(value).isoformat() if timezone.is_aware(value) else value.isoformat()
    if isinstance(value, (date, Decimal, int, float)):
        return str(value) if not isinstance(value, date) else value.isoformat()
    if isinstance(value, list):
        return escape_formula(join_tags(value))
    return escape_formula(str(value))


def _to_csv(columns, rows) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(columns)
    count = 0
    for row in rows:
        writer.writerow([text_cell(value) for value in row])
        count += 1
    # A byte-order mark tells Excel the file is UTF-8; the importer accepts it.
    return buffer.getvalue().encode("utf-8-sig"), count


def _xlsx_value(value):
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    if value is None or isinstance(value, (bool, int, float, Decimal)):
        return value
    if isinstance(value, datetime):
        # Excel has no time zones: local wall-clock time, as the admin shows it.
        return timezone.localtime(value).replace(tzinfo=None) if timezone.is_aware(value) else value
    if isinstance(value, date):
        return value
    text = join_tags(value) if isinstance(value, list) else str(value)
    return escape_formula(ILLEGAL_CHARACTERS_RE.sub("", text))


def _to_xlsx(columns, rows, title: str) -> bytes:
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title=title[:31])
    sheet.append(list(columns))
    count = 0
    for row in rows:
        sheet.append([_xlsx_value(value) for value in row])
        count += 1
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue(), count


def _to_json(columns, rows) -> bytes:
    records = [dict(zip(columns, row, strict=True)) for row in rows]
    return json.dumps(records, cls=DjangoJSONEncoder, ensure_ascii=False, indent=1).encode(), len(records)


def export_queryset(
    *,
    kind: str,
    queryset: QuerySet,
    fmt: str = "csv",
    progress: Callable[[int], None] | None = None,
    user,
) -> ExportFile:
    """Export ``queryset`` (already filtered by the caller) of ``kind`` in ``fmt`` (csv, xlsx, json),
    as ``user`` may read it (the system actor, for the command line, reads everything)."""
    schema = export_schema(kind)
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"Unknown export format {fmt!r}: choose one of {', '.join(EXPORT_FORMATS)}.")
    columns = schema.export_columns
    rows = export_rows(schema, queryset, progress, user=user)
    if fmt == "csv":
        content, count = _to_csv(columns, rows)
    elif fmt == "xlsx":
        content, count = _to_xlsx(columns, rows, schema.kind)
    else:
        content, count = _to_json(columns, rows)
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
    return ExportFile(content, EXPORT_FORMATS[fmt], f"{kind}-{stamp}.{fmt}", count)
