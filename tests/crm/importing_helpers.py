"""Small real CSV and XLSX files for the import and export tests."""

import csv
import io

from openpyxl import Workbook, load_workbook


def csv_bytes(rows: list[list], *, bom: bool = False, delimiter: str = ",") -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n").writerows(rows)
    return buffer.getvalue().encode("utf-8-sig" if bom else "utf-8")


def xlsx_bytes(rows: list[list]) -> bytes:
    workbook = Workbook()
    sheet = workbook.active
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def read_csv(content: bytes) -> list[dict]:
    return list(csv.DictReader(io.StringIO(content.decode("utf-8-sig"))))


def read_xlsx(content: bytes) -> tuple[list, list[tuple]]:
    """(header, data rows) of the first sheet, as cell objects so data types can be checked."""
    sheet = load_workbook(io.BytesIO(content)).worksheets[0]
    rows = list(sheet.iter_rows())
    return [cell.value for cell in rows[0]], rows[1:]


def xlsx_with_empty_rows(rows: list[list], empty: int, *, declared: int | None = None) -> bytes:
    """An XLSX of ``rows`` followed by ``empty`` rows that hold only an unstyled empty cell, as a sheet
    stretched by formatting does; ``declared`` sets the sheet's declared last row (its dimension)."""
    import re
    import zipfile

    buffer = io.BytesIO(xlsx_bytes(rows))
    out = io.BytesIO()
    with zipfile.ZipFile(buffer) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename == "xl/worksheets/sheet1.xml":
                first = len(rows) + 1
                filler = "".join(f'<row r="{n}"><c r="A{n}"/></row>' for n in range(first, first + empty))
                last = declared or first + empty - 1
                text = data.decode().replace("</sheetData>", filler + "</sheetData>")
                text = re.sub(r'<dimension ref="[^"]*" ?/>', f'<dimension ref="A1:B{last}"/>', text)
                data = text.encode()
            target.writestr(info, data)
    return out.getvalue()
