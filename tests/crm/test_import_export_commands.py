"""The command-line entry points: crm_import and crm_export."""

import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from crm.models import Account, Lead
from tests.crm.importing_helpers import csv_bytes, read_csv, read_xlsx, xlsx_bytes
from tests.factories import AccountFactory, LeadFactory

pytestmark = pytest.mark.django_db


def write(tmp_path, name, content: bytes):
    path = tmp_path / name
    path.write_bytes(content)
    return str(path)


def test_import_command_imports_and_reports_progress_lines(tmp_path, capsys, stages):
    rows = [["name", "email", "stage"]] + [[f"Lead {i}", f"l{i}@x.test", "Qualified"] for i in range(30)]
    call_command("crm_import", "leads", write(tmp_path, "leads.csv", csv_bytes(rows)))
    out = capsys.readouterr().out
    assert "30 rows: 30 were created, 0 were updated, 0 unchanged." in out
    assert "validating: 30 rows in " in out  # plain lines when not on a terminal
    assert "writing: 30 rows in " in out
    assert Lead.objects.filter(stage=stages["Qualified"]).count() == 30


def test_import_command_dry_run_writes_nothing(tmp_path, capsys, stages):
    path = write(
        tmp_path, "leads.xlsx", xlsx_bytes([["name", "email", "tags"], ["A", "a@x.test", "New tag"]])
    )
    call_command("crm_import", "leads", path, "--dry-run", "--no-progress")
    out = capsys.readouterr().out
    assert "Dry run, nothing written. 1 rows: 1 would be created" in out
    assert "New tags would be created: New tag" in out
    assert not Lead.objects.exists()


def test_import_command_fails_with_the_row_report_and_status_1(tmp_path, capsys, stages):
    LeadFactory(email="keep@x.test", name="Keep", stage=stages["New"])
    rows = [["name", "email", "probability"], ["Keep 2", "keep@x.test", "10"], ["Bad", "bad@x.test", "101"]]
    with pytest.raises(CommandError) as excinfo:
        call_command("crm_import", "leads", write(tmp_path, "leads.csv", csv_bytes(rows)), "--no-progress")
    assert excinfo.value.returncode == 1
    assert (
        str(excinfo.value)
        == "1 of 2 rows are invalid; nothing was imported. Fix them and import the file again."
    )
    err = capsys.readouterr().err
    assert "row 3, column probability ('101'): Must be at most 100." in err
    assert Lead.objects.get().name == "Keep"


def test_import_command_bad_file(tmp_path, capsys, pipeline):
    with pytest.raises(CommandError) as excinfo:
        call_command("crm_import", "accounts", write(tmp_path, "a.csv", b""), "--no-progress")
    assert "The file is empty." in str(excinfo.value)


def test_import_command_missing_file(tmp_path):
    with pytest.raises(CommandError, match="Cannot open"):
        call_command("crm_import", "accounts", str(tmp_path / "nope.csv"))


def test_export_command_writes_each_format(tmp_path, capsys, stages):
    AccountFactory(name="=Acme", employees=12)
    for fmt in ("csv", "xlsx", "json"):
        path = tmp_path / f"accounts.{fmt}"
        call_command("crm_export", "accounts", "--output", str(path))
        content = path.read_bytes()
        if fmt == "csv":
            assert read_csv(content)[0]["name"] == "'=Acme"
        elif fmt == "xlsx":
            header, rows = read_xlsx(content)
            assert rows[0][header.index("employees")].value == 12
        else:
            assert json.loads(content)[0]["name"] == "=Acme"
    assert "Exported 1 accounts to" in capsys.readouterr().out


def test_export_command_to_stdout_and_back(tmp_path, capsys, stages):
    LeadFactory(name="Round", email="r@x.test", stage=stages["Proposal"])
    buffer = io.StringIO()
    call_command("crm_export", "leads", "--format", "csv", stdout=buffer)
    exported = buffer.getvalue().encode()
    Lead.objects.all().delete()
    call_command("crm_import", "leads", write(tmp_path, "back.csv", exported), "--no-progress")
    assert Lead.objects.get().stage == stages["Proposal"]


def test_export_command_refuses_xlsx_to_stdout():
    with pytest.raises(CommandError, match="needs --output"):
        call_command("crm_export", "opportunities", "--format", "xlsx")


def test_export_opportunities_and_activities(tmp_path, stages):
    for kind in ("opportunities", "activities"):
        path = tmp_path / f"{kind}.csv"
        call_command("crm_export", kind, "-o", str(path), "--no-progress")
        assert read_csv(path.read_bytes()) == []
    assert not Account.objects.exists()
