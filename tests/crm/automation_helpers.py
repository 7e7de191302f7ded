"""Helpers of the automation tests: settle the outbox and the runs in this process, snapshot tables."""

import hashlib

from django.db import connection

from crm.actors import SYSTEM
from crm.automation import engine
from crm.automation.services import automation_rule_create
from crm.events.relay import outbox_relay
from crm.models import AutomationRun, RunStatus


def settle(rounds: int = 10) -> None:
    """Relay the outbox and execute the queued runs until nothing is left (what a worker does after
    each commit), in this process: tests that are not transactional never see on_commit run."""
    for _ in range(rounds):
        outbox_relay()
        queued = list(
            AutomationRun.objects.filter(status=RunStatus.QUEUED).order_by("id").values_list("pk", flat=True)
        )
        if not queued:
            return
        for pk in queued:
            engine.run_execute(pk)


def rule(**data):
    data.setdefault("name", "A rule")
    data.setdefault("model", "crm.Lead")
    data.setdefault("trigger_kind", "event")
    return automation_rule_create(user=SYSTEM, data=data)


def database_fingerprint() -> dict[str, str]:
    """A digest of every row of every table (history tables included)."""
    digests = {}
    with connection.cursor() as cursor:
        for table in sorted(connection.introspection.table_names()):
            cursor.execute(f'SELECT * FROM "{table}"')
            rows = sorted(repr(row) for row in cursor.fetchall())
            digests[table] = hashlib.sha256("\n".join(rows).encode()).hexdigest()
    return digests
