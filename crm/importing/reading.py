"""Turns an uploaded file into a header and rows, or says clearly why the file cannot be read.

CSV is read with the csv module (UTF-8, with or without a byte-order mark; the delimiter — comma,
semicolon or tab — is taken from the header line), XLSX with openpyxl in read-only mode. Every
problem with the file as a whole raises ``ImportFileError`` before any row is looked at.
"""

import codecs
import contextlib
import csv
import io
import queue
import threading
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from django.conf import settings
from django.template.defaultfilters import filesizeformat

ZIP_MAGIC = b"PK\x03\x04"
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # legacy .xls (and .doc)
# A workbook whose parts unpack to more than this many times the file's size is refused as a zip bomb.
XLSX_MAX_EXPANSION = 40


class ImportFileError(Exception):
    """The file as a whole cannot be imported; the message says why, for a person."""


@dataclass
class Table:
    """The header cells and an iterator of (row number as a spreadsheet shows it, cells)."""

    format: str
    header: list[str]
    rows: Iterator[tuple[int, list]]
    row_estimate: int


def max_bytes() -> int:
    return settings.CRM_IMPORT_MAX_BYTES


def read_upload(file: BinaryIO, *, size: int | None = None) -> bytes:
    """The file's bytes, refusing one over CRM_IMPORT_MAX_BYTES before reading it all."""
    limit = max_bytes()
    if size is None:
        size = getattr(file, "size", None)
    if size is not None and size > limit:
        raise _too_large(size, limit)
    data = file.read(limit + 1)
    if len(data) > limit:
        raise _too_large(None, limit)
    return data


def _too_large(size: int | None, limit: int) -> ImportFileError:
    shown = f" ({filesizeformat(size)})" if size is not None else ""
    message = (
        f"The file is too large{shown}: the limit is {filesizeformat(limit)}. Split it into smaller files."
    )
    return ImportFileError(message.replace("\xa0", " "))


def open_table(data: bytes, filename: str = "") -> Table:
    """Read ``data`` as XLSX or CSV, by its content first and its name second."""
    if len(data) > max_bytes():
        raise _too_large(len(data), max_bytes())
    name = filename.lower()
    if not data.strip():
        raise ImportFileError("The file is empty.")
    if data.startswith(ZIP_MAGIC):
        return _open_xlsx(data)
    if data.startswith(OLE_MAGIC) or name.endswith(".xls"):
        raise ImportFileError(
            "Old Excel .xls files are not supported: save the sheet as .xlsx or as CSV UTF-8."
        )
    if name.endswith((".xlsx", ".xlsm")):
        raise ImportFileError(
            "The file is named .xlsx but is not an Excel workbook (it may be damaged, or a renamed "
            "file of another kind). Save it again from the spreadsheet as .xlsx or as CSV UTF-8."
        )
    return _open_csv(data)


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def _open_csv(data: bytes) -> Table:
    if data.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        raise ImportFileError("The file is UTF-32 text: save it as CSV UTF-8 and import it again.")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise ImportFileError("The file is UTF-16 text: save it as CSV UTF-8 and import it again.")
    nul = data.find(b"\x00")
    if nul != -1:
        raise ImportFileError(
            f"The file contains NUL bytes (first on line {_line_of(data, nul)}): it is not a text "
            "CSV file (it may be UTF-16 text or a binary file). Save it as CSV UTF-8."
        )
    try:
        # One strict pass up front, so a bad byte is reported before any row is validated.
        codecs.utf_8_decode(data, "strict", True)
    except UnicodeDecodeError as exc:
        raise ImportFileError(
            f"The file is not UTF-8 text: byte 0x{data[exc.start]:02x} on line {_line_of(data, exc.start)} "
            "cannot be read (the file may be in Windows-1252 or Latin-1). "
            "Save it as CSV UTF-8 and import it again."
        ) from None

    text = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8-sig", newline="")
    first_line = data[: data.find(b"\n") if b"\n" in data else len(data)].decode("utf-8", "replace")
    delimiter = max((",", ";", "\t"), key=lambda d: (first_line.count(d), d == ","))
    reader = csv.reader(text, delimiter=delimiter, strict=True)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise ImportFileError(f"The CSV file is malformed on line {reader.line_num}: {exc}.") from None
    if not header or not any(cell.strip() for cell in header):
        raise ImportFileError("The first line must hold the column names, but it is empty.")

    def rows():
        number = 1
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise ImportFileError(
                    f"The CSV file is malformed on line {reader.line_num}: {exc}. "
                    "Check that every double quote that opens a value closes it."
                ) from None
            number += 1
            if cells and any(cells):
                yield number, cells

    return Table("csv", header, rows(), max(data.count(b"\n"), 1))


def _too_many_rows(what: str, limit: int) -> ImportFileError:
    return ImportFileError(
        f"{what}: at most {limit:,} rows can be imported at once. Split it into smaller files."
    )


def _open_xlsx(data: bytes) -> Table:
    from openpyxl import load_workbook

    not_a_workbook = ImportFileError(
        "The file is not a valid Excel workbook (.xlsx): it may be damaged, or another kind of file. "
        "Save it again from the spreadsheet as .xlsx or as CSV UTF-8."
    )
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        raise not_a_workbook from None
    if "[Content_Types].xml" not in names or not any(n.startswith("xl/") for n in names):
        raise not_a_workbook
    if unpacked > XLSX_MAX_EXPANSION * max(len(data), 1024 * 1024):
        raise ImportFileError("The workbook unpacks to an unreasonable size; it is refused as unsafe.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        sheet = workbook.worksheets[0]
        row_iter = sheet.iter_rows(values_only=True)
        header_row = next(row_iter, None)
    except Exception:  # openpyxl raises many kinds on a damaged workbook
        raise not_a_workbook from None
    if header_row is None or not any(cell not in (None, "") for cell in header_row):
        raise ImportFileError("The first row of the first sheet must hold the column names, but it is empty.")
    header = ["" if cell is None else str(cell) for cell in header_row]
    # Formatting can stretch a sheet with empty cells on the right; they are not columns.
    while header and not header[-1].strip():
        header.pop()
    max_rows, max_empty = settings.CRM_IMPORT_MAX_ROWS, settings.CRM_IMPORT_MAX_EMPTY_ROWS
    declared = sheet.max_row
    if declared is not None and declared > max_rows:
        workbook.close()
        raise _too_many_rows(f"The sheet has {declared:,} rows", max_rows)
    estimate = (declared or 2) - 1

    def rows():
        # Reading a row costs the same whether it holds data or not: a sheet stretched by millions of
        # empty rows is refused after a bounded number of them, and after CRM_IMPORT_MAX_ROWS rows.
        number = 1
        empty_since = None
        try:
            for cells in row_iter:
                number += 1
                if any(cell is not None and cell != "" for cell in cells):
                    empty_since = None
                    yield number, list(cells)
                elif empty_since is None:
                    empty_since = number
                elif number - empty_since >= max_empty:
                    raise ImportFileError(
                        f"The sheet has more than {max_empty:,} empty rows in a row (from row "
                        f"{empty_since:,}): delete the empty rows, or move the rows after them up, "
                        "and import the file again."
                    )
                if number > max_rows:
                    raise _too_many_rows(f"The sheet has more than {max_rows:,} rows", max_rows)
        except ImportFileError:
            raise
        except Exception:
            raise ImportFileError(
                f"The workbook could not be read past row {number}: it may be damaged."
            ) from None
        finally:
            workbook.close()

    return Table("xlsx", header, rows(), max(estimate, 1))


class ReadAhead:
    """The items of ``items`` made on a worker thread, at most ``depth`` ahead of the reader.

    The import parses a file's rows here while its own thread writes the rows before them. The worker
    runs pure Python (cell parsers built beforehand from data already in memory) and never touches the
    database: every query of an import runs on the import's thread and connection. Python runs one
    thread at a time, so the overlap is with the database: the worker parses while the import's thread
    waits for a statement. An exception of the worker is raised in the reader, after the items before it.
    """

    _END = object()

    def __init__(self, items: Iterator, *, depth: int = 2, name: str = "crm-import-reader"):
        self._queue: queue.Queue = queue.Queue(maxsize=depth)  # bounds memory: the worker waits
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, args=(items,), name=name, daemon=True)
        self._thread.start()

    def __iter__(self):
        while True:
            item, error = self._queue.get()
            if item is self._END:
                self._thread.join()
                if error is not None:
                    raise error
                return
            yield item

    def close(self) -> None:
        """Stop the worker (if the reader stops early) and wait for it."""
        self._stop.set()
        while self._thread.is_alive():
            with contextlib.suppress(queue.Empty):
                self._queue.get(timeout=0.05)  # a worker waiting to hand over an item sees the stop
        self._thread.join()

    def _work(self, items) -> None:
        try:
            for item in items:
                if not self._put((item, None)):
                    return
        except BaseException as exc:  # handed to the reader
            self._put((self._END, exc))
        else:
            self._put((self._END, None))

    def _put(self, entry) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(entry, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False
