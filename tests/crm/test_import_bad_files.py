"""Every kind of bad file gets one clear error and changes nothing."""

import io
import zipfile

import pytest

from crm.actors import SYSTEM
from crm.importing import import_file
from crm.models import Account, Lead
from tests.crm.importing_helpers import csv_bytes, xlsx_bytes, xlsx_with_empty_rows
from tests.factories import AccountFactory

pytestmark = pytest.mark.django_db


def run(content: bytes, filename="leads.csv", kind="leads"):
    result = import_file(kind=kind, data=content, filename=filename, user=SYSTEM)
    assert not result.ok and not result.committed
    assert not Lead.objects.exists()
    return result


def only_file_error(result) -> str:
    assert len(result.file_errors) == 1, result.file_errors
    assert not result.errors
    return result.file_errors[0]


@pytest.mark.parametrize("content", [b"", b"  \r\n\r\n"], ids=["zero-bytes", "blank-lines"])
def test_empty_file(pipeline, content):
    assert only_file_error(run(content)) == "The file is empty."


@pytest.mark.parametrize("filename", ["leads.csv", "leads.xlsx"])
def test_header_only(pipeline, filename):
    rows = [["name", "email"]]
    content = xlsx_bytes(rows) if filename.endswith("xlsx") else csv_bytes(rows)
    assert only_file_error(run(content, filename)) == "The file has a header row but no data rows."


def test_missing_required_column(pipeline):
    message = only_file_error(run(csv_bytes([["email", "phone"], ["a@x.test", "1"]])))
    assert message == "Required column missing: name."


def test_unknown_columns_are_reported_not_dropped(pipeline):
    message = only_file_error(run(csv_bytes([["name", "Favourite Colour", "shoe size"], ["A", "red", "9"]])))
    assert message.startswith("Unknown columns: Favourite Colour, shoe size.")
    assert "contact_name" in message  # and the accepted columns are listed


def test_duplicate_column(pipeline):
    message = only_file_error(run(csv_bytes([["name", "Name"], ["A", "B"]])))
    assert "appears twice" in message


def test_read_only_columns_of_an_export_are_ignored_with_a_notice(pipeline):
    result = import_file(
        kind="leads",
        data=csv_bytes([["id", "name", "created_at"], ["99", "A", "2020-01-01"]]),
        filename="x.csv",
        user=SYSTEM,
    )
    assert result.ok
    assert result.notices[0] == "Ignored read-only column(s): id, created_at."
    assert Lead.objects.get().pk != 99


def test_utf8_with_and_without_bom_are_accepted(pipeline):
    rows = [["name", "company_name"], ["Café", "Zürich AG"]]
    for content in (csv_bytes(rows), csv_bytes(rows, bom=True)):
        result = import_file(kind="leads", data=content, filename="x.csv", user=SYSTEM)
        assert result.ok, result.file_errors
    assert set(Lead.objects.values_list("name", flat=True)) == {"Café"}


def test_windows_1252_is_named_an_encoding_error(pipeline):
    content = "name,company_name\nCafé,Zürich AG\n".encode("cp1252")
    message = only_file_error(run(content))
    assert message.startswith("The file is not UTF-8 text: byte 0xe9 on line 2")


def test_utf16_is_named_an_encoding_error(pipeline):
    message = only_file_error(run("name\nA\n".encode("utf-16")))
    assert message == "The file is UTF-16 text: save it as CSV UTF-8 and import it again."


def test_nul_bytes(pipeline):
    message = only_file_error(run(b"name,email\nA\x00B,a@x.test\n"))
    assert message.startswith("The file contains NUL bytes (first on line 2)")


def test_malformed_csv(pipeline):
    message = only_file_error(run(b'name,email\n"Unclosed,a@x.test\nB,b@x.test\n'))
    assert message.startswith("The CSV file is malformed")


def test_stray_quote_in_a_field_is_malformed(pipeline):
    message = only_file_error(run(b'name,email\n"A"B,a@x.test\n'))
    assert message.startswith("The CSV file is malformed on line 2")


def test_row_longer_than_the_header_is_a_row_error(pipeline):
    result = run(csv_bytes([["name", "email"], ["A", "a@x.test", "extra"]]))
    assert [(e.row, e.message) for e in result.errors] == [
        (2, "The row has 3 values but the header names 2 columns.")
    ]


def test_xlsx_that_is_not_one(pipeline):
    message = only_file_error(run(b"name,email\nA,a@x.test\n", filename="leads.xlsx"))
    assert message.startswith("The file is named .xlsx but is not an Excel workbook")


def test_zip_that_is_not_a_workbook(pipeline):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("hello.txt", "hi")
    message = only_file_error(run(buffer.getvalue(), filename="leads.xlsx"))
    assert message.startswith("The file is not a valid Excel workbook")


def test_truncated_xlsx(pipeline):
    content = xlsx_bytes([["name"], ["A"]])
    message = only_file_error(run(content[: len(content) // 2], filename="leads.xlsx"))
    assert message.startswith("The file is not a valid Excel workbook")


def test_legacy_xls_is_refused_by_name(pipeline):
    message = only_file_error(run(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, filename="leads.xls"))
    assert message.startswith("Old Excel .xls files are not supported")


def test_file_over_the_size_limit(pipeline, settings):
    settings.CRM_IMPORT_MAX_BYTES = 100
    content = csv_bytes([["name", "email"]] + [[f"Lead {i}", f"l{i}@x.test"] for i in range(20)])
    message = only_file_error(
        import_file(kind="leads", file=io.BytesIO(content), filename="x.csv", user=SYSTEM)
    )
    assert message.startswith("The file is too large")
    assert "100 bytes" in message
    assert not Lead.objects.exists()


def test_size_limit_defaults_to_50_mb():
    from django.conf import settings

    assert settings.CRM_IMPORT_MAX_BYTES == 50 * 1024 * 1024


def test_semicolon_separated_csv_from_a_european_spreadsheet(pipeline):
    result = import_file(
        kind="leads",
        data=csv_bytes([["name", "email"], ["A", "a@x.test"]], delimiter=";"),
        filename="x.csv",
        user=SYSTEM,
    )
    assert result.ok and Lead.objects.get().email == "a@x.test"


def test_bad_file_changes_no_existing_record(pipeline):
    AccountFactory(name="Acme", phone="1")
    result = import_file(kind="accounts", data=b"name,phone\nAcme,2\n\x00", filename="a.csv", user=SYSTEM)
    assert result.file_errors and Account.objects.get().phone == "1"


@pytest.mark.parametrize(
    "content",
    [b'name,email\n"Unclosed,a@x.test\nB,b@x.test\n', b"name,email\n" + b"x" * 140_000 + b",a@x.test\n"],
    ids=["unterminated-quote", "field-over-the-csv-limit"],
)
def test_dry_run_of_a_malformed_csv_is_a_file_error_like_the_real_import(pipeline, content):
    """Issue 14 finding 17: the dry run of a malformed CSV raised (a 500) where the real import
    reported a file error."""
    real = run(content)
    dry = import_file(kind="leads", data=content, filename="leads.csv", dry_run=True, user=SYSTEM)
    assert not dry.ok and not dry.errors
    assert dry.file_errors == real.file_errors
    assert dry.file_errors[0].startswith("The CSV file is malformed")


def test_xlsx_of_many_empty_rows_is_refused_without_reading_them_all(pipeline, settings):
    """Issue 14 finding 19: an XLSX of 2.5 million empty rows held a worker 46 s; the reading stops
    after CRM_IMPORT_MAX_EMPTY_ROWS empty rows in a row (lowered here to keep the test fast)."""
    settings.CRM_IMPORT_MAX_EMPTY_ROWS = 100
    content = xlsx_with_empty_rows([["name", "email"], ["A", "a@x.test"]], 5000)
    message = only_file_error(run(content, "leads.xlsx"))
    assert message.startswith("The sheet has more than 100 empty rows in a row (from row 3)")


def test_xlsx_declaring_more_rows_than_the_limit_is_refused_before_reading(pipeline, settings):
    """Issue 14 finding 19: a sheet that declares more rows than CRM_IMPORT_MAX_ROWS is refused at once."""
    settings.CRM_IMPORT_MAX_ROWS = 1000
    content = xlsx_with_empty_rows([["name", "email"], ["A", "a@x.test"]], 10, declared=2_500_000)
    message = only_file_error(run(content, "leads.xlsx"))
    assert message.startswith("The sheet has 2,500,000 rows: at most 1,000 rows")


def test_xlsx_with_some_trailing_empty_rows_imports(pipeline, settings):
    settings.CRM_IMPORT_MAX_EMPTY_ROWS = 100
    content = xlsx_with_empty_rows([["name", "email"], ["A", "a@x.test"]], 50)
    result = import_file(kind="leads", data=content, filename="leads.xlsx", user=SYSTEM)
    assert result.ok, (result.file_errors, result.errors)
    assert Lead.objects.count() == 1


def test_row_errors_are_listed_by_row_number(stages):
    """Issue 14 finding 12: cell errors came before rule errors, so rows were listed 2, 3, 5, 5, 5, 4."""
    result = import_file(
        kind="leads",
        filename="leads.csv",
        data=csv_bytes(
            [
                ["name", "email", "stage", "probability", "priority", "expected_revenue"],
                ["A", "bad-email", "", "", "", ""],
                ["B", "b@x.test", "", "ten", "", ""],
                ["C", "c@x.test", "Nowhere", "", "", ""],
                ["", "d@x.test", "", "", "Sometimes", "-x"],
            ]
        ),
        user=SYSTEM,
    )
    assert [e.row for e in result.errors] == [2, 3, 4, 5, 5, 5]
