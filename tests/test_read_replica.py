"""Issue 24 item 5: DATABASE_REPLICA_URL's replica serves lists, boards, reports and exports; writes, and
a user's reads for a few seconds after their own write, go to the primary.

The routing is checked against a second connection to the test database (any engine), and, on
PostgreSQL, against a real streaming replica started on 127.0.0.1:5433 from the local server with
``pg_basebackup -R`` (skipped when the server refuses replication connections)."""

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from crm import services as crm_services
from crm.actors import SYSTEM
from crm.db import replica as replica_routing

LEADS = "/api/v1/crm/leads/"
REPLICA_PORT = 5433


def _add_replica(**overrides):
    settings = {**connections.settings["default"], "CONN_MAX_AGE": None, **overrides}
    connections.settings[replica_routing.REPLICA] = settings
    # Connected here: the test case refuses to open a connection to an alias it was not told of.
    connections[replica_routing.REPLICA].connect()


def _drop_replica():
    if replica_routing.REPLICA in connections.settings:
        connections[replica_routing.REPLICA].close()
        del connections[replica_routing.REPLICA]
        del connections.settings[replica_routing.REPLICA]


@pytest.fixture
def superusers(db):
    from django.contrib.auth import get_user_model

    make = get_user_model().objects.create_superuser
    return make("writer", "w@example.com", "pw-writer-123!"), make(
        "reader", "r@example.com", "pw-reader-123!"
    )


def api_for(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


def replica_selects(captured):
    return [q["sql"] for q in captured.captured_queries if 'FROM "crm_lead"' in q["sql"]]


def check_routing(writer, reader, *, wait_visible):
    """Reads of a list go to the replica; the writer's read right after their write to the primary
    (and sees the new lead); once the sticky seconds are over, the replica again."""
    replica = connections[replica_routing.REPLICA]
    wait_visible("Before")
    with CaptureQueriesContext(replica) as on_replica, CaptureQueriesContext(connection) as on_primary:
        listed = api_for(reader).get(LEADS)
    assert listed.status_code == 200
    assert [row["name"] for row in listed.json()["results"]] == ["Before"]
    assert replica_selects(on_replica) and not replica_selects(on_primary)

    writer_api = api_for(writer)
    created = writer_api.post(LEADS, {"name": "Mine, just written"}, format="json")
    assert created.status_code == 201, created.content
    with CaptureQueriesContext(replica) as on_replica, CaptureQueriesContext(connection) as on_primary:
        mine = writer_api.get(LEADS)
        detail = writer_api.get(f"{LEADS}{created.json()['id']}/")
    assert "Mine, just written" in [row["name"] for row in mine.json()["results"]]
    assert detail.status_code == 200
    assert replica_selects(on_primary) and not replica_selects(on_replica)

    time.sleep(1.2)  # CRM_REPLICA_STICKY_SECONDS = 1
    wait_visible("Mine, just written")
    with CaptureQueriesContext(replica) as on_replica:
        assert writer_api.get(LEADS).status_code == 200
    assert replica_selects(on_replica)


@pytest.mark.django_db(transaction=True)
def test_lists_read_from_the_replica_and_a_writers_next_reads_from_the_primary(superusers, stages, settings):
    """The replica here is a second connection to the test database: the routing, on any engine."""
    settings.CRM_REPLICA_STICKY_SECONDS = 1
    writer, reader = superusers
    crm_services.lead_create(user=SYSTEM, data={"name": "Before"})
    _add_replica()
    try:
        check_routing(writer, reader, wait_visible=lambda name: None)
    finally:
        _drop_replica()


def test_the_router_sends_only_list_board_report_and_export_pages_to_the_replica():
    page = replica_routing.replica_page
    assert page("lead-list") and page("crm_lead_changelist") and page("lead-kanban")
    assert page("dashboard-list") and page("forecast") and page("lead-export")
    assert not page("lead-detail") and not page("crm_lead_change") and not page("healthz") and not page(None)


# --- a real streaming replica (PostgreSQL) -----------------------------------------------------------------


def _pg_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_basebackup"))
    return found[-1].parent if found else None


def _as_postgres(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    command = " ".join(f"'{a}'" for a in args)
    prefix = [] if os.geteuid() != 0 else ["su", "postgres", "-c"]
    run = [*prefix, command] if prefix else args
    return subprocess.run(run, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def streaming_replica():
    """A hot standby of the local server on 127.0.0.1:5433, in a temporary folder, for this test only:
    started with pg_basebackup -R (bounded in time), stopped and removed afterwards."""
    if connection.vendor != "postgresql":
        pytest.skip("a streaming replica needs PostgreSQL")
    bin_dir = _pg_bin()
    if bin_dir is None or (os.geteuid() == 0 and shutil.which("su") is None):
        pytest.skip("pg_basebackup is not installed")
    folder = Path(tempfile.mkdtemp(prefix="crm-replica-"))
    data = folder / "data"
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
    primary = connections.settings["default"]
    started = False
    try:
        backup = _as_postgres(
            [str(bin_dir / "pg_basebackup"), "-h", primary["HOST"] or "127.0.0.1",
             "-p", str(primary["PORT"] or 5432), "-U", primary["USER"] or "postgres",
             "-D", str(data), "-R", "-X", "stream", "-c", "fast"],
            timeout=300,
        )  # fmt: skip
        if backup.returncode != 0:
            pytest.skip(f"pg_basebackup cannot run here: {backup.stderr.strip()[:300]}")
        # The server's own configuration lives outside its data folder (Debian): a minimal one. A hot
        # standby refuses to start with fewer connections, workers or locks than its primary has.
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT name, setting FROM pg_settings WHERE name IN ('max_connections', "
                "'max_worker_processes', 'max_wal_senders', 'max_prepared_transactions', "
                "'max_locks_per_transaction')"
            )
            limits = "".join(f"{name} = {value}\n" for name, value in cursor.fetchall())
        (data / "postgresql.conf").write_text(
            f"port = {REPLICA_PORT}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{folder}'\n"
            f"hot_standby = on\nshared_buffers = 32MB\n{limits}"
        )
        (data / "pg_hba.conf").write_text("local all all trust\nhost all all 127.0.0.1/32 trust\n")
        if os.geteuid() == 0:
            for path in (data / "postgresql.conf", data / "pg_hba.conf"):
                shutil.chown(path, "postgres")
        start = _as_postgres(
            [str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(folder / "log"), "-w", "-t", "60", "start"],
            timeout=90,
        )
        if start.returncode != 0:
            log = (folder / "log").read_text(errors="replace") if (folder / "log").exists() else ""
            pytest.skip(f"the replica did not start: {start.stderr.strip()[:200]} {log.strip()[-400:]}")
        started = True
        yield REPLICA_PORT
    finally:
        if started:
            _as_postgres(
                [str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"], timeout=60
            )
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.django_db(transaction=True)
def test_a_real_streaming_replica_serves_lists_and_a_writer_reads_the_primary(
    streaming_replica, superusers, stages, settings
):
    settings.CRM_REPLICA_STICKY_SECONDS = 1
    writer, reader = superusers
    crm_services.lead_create(user=SYSTEM, data={"name": "Before"})
    _add_replica(HOST="127.0.0.1", PORT=str(streaming_replica))

    def wait_visible(name):
        deadline = time.monotonic() + 30
        with connections[replica_routing.REPLICA].cursor() as cursor:
            while time.monotonic() < deadline:
                cursor.execute("SELECT count(*) FROM crm_lead WHERE name = %s", [name])
                if cursor.fetchone()[0]:
                    return
                time.sleep(0.1)
        raise AssertionError(f"the replica never showed {name!r}")

    try:
        with connections[replica_routing.REPLICA].cursor() as cursor:
            cursor.execute("SELECT pg_is_in_recovery()")
            assert cursor.fetchone()[0] is True  # a standby, not the primary
        check_routing(writer, reader, wait_visible=wait_visible)
    finally:
        _drop_replica()
