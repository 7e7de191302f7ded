"""An import does all its database work on one thread and one connection, the caller's: the rows are
parsed on a read-ahead thread that touches no database (crm.importing.reading.ReadAhead).

Every statement sent through Django's cursors is recorded with the thread that sent it and the
database connection it went to (``connection.execute_wrapper``), and every connection opened while
importing is recorded with its thread (the ``connection_created`` signal): a thread that used the
caller's connection, or one of its own, shows up in one or the other.
"""

import contextlib
import threading

import pytest
from django.db import connection
from django.db.backends.signals import connection_created

from crm.actors import SYSTEM
from crm.importing import engine, import_file
from crm.importing.reading import ImportFileError, ReadAhead
from crm.models import Account, Contact, Lead, Tag
from tests.crm.importing_helpers import csv_bytes
from tests.factories import AccountFactory, LeadFactory, TagFactory, UserFactory

pytestmark = pytest.mark.django_db


@contextlib.contextmanager
def database_use():
    """Record, while the block runs, which threads send statements to which connections, and which
    threads open connections."""
    used = {"threads": set(), "connections": set(), "statements": 0, "opened_by": []}

    def record(execute, sql, params, many, context):
        used["threads"].add(threading.get_ident())
        used["connections"].add(id(context["connection"].connection))  # the driver's connection
        used["statements"] += 1
        return execute(sql, params, many, context)

    def opened(sender, connection, **kwargs):
        used["opened_by"].append(threading.get_ident())

    connection_created.connect(opened)
    try:
        connection.ensure_connection()
        with connection.execute_wrapper(record):
            yield used
    finally:
        connection_created.disconnect(opened)


def assert_one_thread_one_connection(used):
    assert used["statements"] > 0
    assert used["threads"] == {threading.get_ident()}
    assert used["connections"] == {id(connection.connection)}
    assert used["opened_by"] == []  # no other thread opened a connection of its own
    # and the read-ahead thread is gone
    assert not [thread for thread in threading.enumerate() if thread.name == "crm-import-reader"]


def test_a_lead_import_in_several_batches_uses_one_thread_and_one_connection(stages, monkeypatch):
    """Leads are written batch by batch as the next rows are parsed (on PostgreSQL); new tags appear
    in later batches, some rows update stored leads."""
    monkeypatch.setattr(engine, "STREAM_BATCH", 1000)  # a small file spans several batches
    UserFactory(username="rep")
    TagFactory(name="VIP")
    stored = [
        LeadFactory(email=f"old{n}@x.test", pipeline=stages["New"].pipeline, stage=stages["New"])
        for n in range(3)
    ]
    rows = [["name", "email", "stage", "owner", "tags"]]
    rows += [[f"Old {n}", lead.email, "Qualified", "rep", "VIP"] for n, lead in enumerate(stored)]
    rows += [[f"Lead {n}", f"l{n}@x.test", "New", "rep", f"VIP, Batch {n // 1000}"] for n in range(3500)]
    with database_use() as used:
        result = import_file(kind="leads", data=csv_bytes(rows), filename="leads.csv", user=SYSTEM)
    assert result.committed, (result.errors, result.file_errors)
    assert (result.new, result.updated) == (3500, 3)
    assert_one_thread_one_connection(used)
    assert Lead.objects.filter(email__startswith="l").count() == 3500
    assert set(Tag.objects.values_list("name", flat=True)) == {
        "VIP",
        "Batch 0",
        "Batch 1",
        "Batch 2",
        "Batch 3",
    }
    assert Lead.objects.get(email="l3499@x.test").tags.count() == 2


def test_an_import_with_rules_across_rows_uses_one_thread_and_one_connection():
    """Contacts are read whole, then checked across rows and written together."""
    AccountFactory(name="Acme")
    rows = [["first_name", "last_name", "email", "account", "is_primary"]]
    rows += [[f"Ann{n}", "Lee", f"ann{n}@x.test", "Acme", "yes" if n == 0 else "no"] for n in range(30)]
    with database_use() as used:
        result = import_file(kind="contacts", data=csv_bytes(rows), filename="contacts.csv", user=SYSTEM)
    assert result.committed, (result.errors, result.file_errors)
    assert_one_thread_one_connection(used)
    assert Contact.objects.filter(account__name="Acme").count() == 30


def test_a_refused_file_and_a_dry_run_use_one_thread_and_one_connection(stages):
    rows = [["name", "email", "stage"], ["Good", "good@x.test", "New"], ["Bad", "bad@x.test", "Nowhere"]]
    with database_use() as used:
        refused = import_file(kind="leads", data=csv_bytes(rows), filename="leads.csv", user=SYSTEM)
        dry = import_file(kind="accounts", data=csv_bytes([["name"], ["Acme"]]), dry_run=True, user=SYSTEM)
    assert not refused.committed and [e.row for e in refused.errors] == [3]
    assert dry.ok and not dry.committed
    assert_one_thread_one_connection(used)
    assert not Lead.objects.exists() and not Account.objects.exists()


def test_the_read_ahead_thread_stops_when_the_import_stops_early(stages, monkeypatch):
    """An exception on the import's thread (here from the caller's progress callback) ends the import
    while the file is still being read: the worker is stopped, not left waiting on a full queue."""
    monkeypatch.setattr(engine, "STREAM_BATCH", 100)

    class Stop(Exception):
        pass

    def progress(phase, done, total):
        if phase == "validating":
            raise Stop

    rows = [["name", "email"]] + [[f"Lead {n}", f"l{n}@x.test"] for n in range(2000)]
    with pytest.raises(Stop):
        import_file(kind="leads", data=csv_bytes(rows), filename="leads.csv", user=SYSTEM, progress=progress)
    assert not [thread for thread in threading.enumerate() if thread.name == "crm-import-reader"]
    assert not Lead.objects.exists()


def test_read_ahead_hands_over_items_in_order_then_the_workers_exception():
    def items():
        yield from range(5)
        raise ImportFileError("line 7 is malformed")

    received = []
    with pytest.raises(ImportFileError, match="line 7"):
        for item in ReadAhead(items()):
            received.append(item)
    assert received == [0, 1, 2, 3, 4]


def test_read_ahead_stays_at_most_depth_items_ahead_and_close_stops_it():
    made = []

    def items():
        for n in range(1000):
            made.append(n)
            yield n

    reader = ReadAhead(items(), depth=2)
    first = next(iter(reader))
    deadline = threading.Event()
    deadline.wait(0.2)  # time for the worker to run ahead as far as it may
    assert first == 0 and len(made) <= 4  # the one handed over, two queued, one waiting to be
    reader.close()
    assert not reader._thread.is_alive()
