"""A report's table as JSON values, CSV or XLSX: money with two places, percents as numbers, text cells a
spreadsheet would run as a formula escaped (as the list exports do)."""

import csv
import datetime
import io
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from openpyxl import Workbook

from crm.importing.cells import escape_formula

from . import DATE, INTEGER, MONEY, NUMBER, PERCENT, Column, ReportResult

REPORT_FORMATS = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
CENT = Decimal("0.01")


def json_value(value: Any, kind: str) -> Any:
    """A cell as the API writes it: money a decimal string, percents and numbers floats, dates ISO."""
    if value is None:
        return None
    if kind == MONEY:
        return str(Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP))
    if kind in (PERCENT, NUMBER):
        return float(value)
    if kind == INTEGER:
        return int(value)
    if kind == DATE and isinstance(value, datetime.date):
        return value.isoformat()
    return value if isinstance(value, (str, int, float, bool)) else str(value)


def report_json(result: ReportResult) -> dict[str, Any]:
    return {
        "columns": [{"key": c.key, "label": c.label, "kind": c.kind} for c in result.columns],
        "rows": [{c.key: json_value(row.get(c.key), c.kind) for c in result.columns} for row in result.rows],
        "summary": [
            {**item, "value": json_value(item["value"], item.get("kind", NUMBER))} for item in result.summary
        ],
        "notes": list(result.notes),
    }


def _cell(value: Any, column: Column, *, xlsx: bool) -> Any:
    if value is None:
        return None if xlsx else ""
    if column.kind == MONEY:
        money = Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)
        return money if xlsx else str(money)
    if column.kind in (PERCENT, NUMBER, INTEGER):
        return value
    if column.kind == DATE:
        return value if xlsx else str(value)
    return escape_formula(str(value))


def report_file(result: ReportResult, fmt: str, name: str) -> tuple[bytes, str, str]:
    """(content, content type, file name) of the report's table."""
    header = [column.label for column in result.columns]
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(header)
        for row in result.rows:
            writer.writerow([_cell(row.get(c.key), c, xlsx=False) for c in result.columns])
        return buffer.getvalue().encode("utf-8"), REPORT_FORMATS["csv"], f"{name}.csv"
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("Report")
    sheet.append(header)
    for row in result.rows:
        sheet.append([_cell(row.get(c.key), c, xlsx=True) for c in result.columns])
    if result.summary or result.notes:
        about = workbook.create_sheet("Summary")
        for item in result.summary:
            about.append([escape_formula(item["label"]), item["value"]])
        for note in result.notes:
            about.append([escape_formula(note)])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue(), REPORT_FORMATS["xlsx"], f"{name}.xlsx"
