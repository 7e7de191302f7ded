"""Reading a file of exchange rates (CSV: currency, date, rate; a header row) for the import."""

import csv
import io

from django.core.exceptions import ValidationError

COLUMNS = ("currency", "date", "rate")
MAX_ROWS = 100_000


def rate_rows(data: bytes) -> list[dict[str, str]]:
    """The rows of a CSV file of rates as dicts of text; a file without the columns is refused."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValidationError({"file": "The file is not UTF-8 text (a CSV file is expected)."}) from exc
    if "\x00" in text:
        raise ValidationError({"file": "The file is not a CSV text file."})
    try:
        reader = csv.DictReader(io.StringIO(text))
        header = [name.strip().lower() for name in reader.fieldnames or []]
        missing = [name for name in COLUMNS if name not in header]
        if missing:
            raise ValidationError(
                {"file": f"Missing column(s): {', '.join(missing)} (need {', '.join(COLUMNS)})."}
            )
        reader.fieldnames = header
        rows = []
        for row in reader:
            rows.append({name: (row.get(name) or "").strip() for name in COLUMNS})
            if len(rows) > MAX_ROWS:
                raise ValidationError({"file": f"More than {MAX_ROWS} rows: split the file."})
    except csv.Error as exc:
        raise ValidationError({"file": f"Not a readable CSV file: {exc}"}) from exc
    if not rows:
        raise ValidationError({"file": "The file has no rows of rates."})
    return rows
