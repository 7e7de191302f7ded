"""Benchmark: what automation rules cost a write, and the time scan over many leads (issue 17).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/crm_automation_bench \\
        .venv/bin/python benchmarks/automation.py [--updates 300] [--rules 50] [--scan-leads 1000000]

The database is migrated first (a fresh one is fine). Measures, in turns (one call with the rules
active, one with none, again) so that the machine's load falls on both alike:

1. ``lead_update`` (a name change) with a broker configured, as a web process runs it: the rules are
   evaluated by the relay's consumer in a worker, so the write only adds its outbox row as before;
2. the same write followed by ``outbox_relay()`` in the same process, as the embedded mode (no
   broker) runs it after the commit: here the consumer's work (finding the rules the event triggers,
   then one query evaluating all their conditions) is paid by the request;
3. the consumer alone (``events_consume``) on one event.

Each with ``--rules`` active event rules on ``lead.updated`` whose conditions do not match (a mix of
plain fields, related fields and tags), against none. p50 and p95 in milliseconds.

With ``--scan-leads`` N: seeds N leads (``crm_seed``) when the database has fewer, then times the
query of the time scan of a rule "30 days without activity" for a 5-minute window (one beat period)
and a one-day window (a scan that missed a day), and prints its plan (the index it uses).

Redis database 4 is used (a broker nobody consumes; emptied at the end). Not a test.
"""

import argparse
import datetime
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
REDIS_URL = "redis://127.0.0.1:6379/4"
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crm_project.settings")
os.environ.setdefault("SECRET_KEY", "benchmark-only-secret-key")
os.environ.setdefault("LOG_LEVEL", "WARNING")


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def summary(name, samples):
    ms = [s * 1000 for s in samples]
    return f"| {name} | {statistics.median(ms):.2f} | {percentile(ms, 0.95):.2f} |"


NOT_MATCHING = [
    [{"field": "expected_revenue", "op": "gt", "value": "1000000000"}],
    [{"field": "owner__sales_teams__name", "op": "eq", "value": "No such team"}],
    [{"field": "tags", "op": "contains", "value": "No such tag"}],
    {
        "any": [
            {"field": "priority", "op": "eq", "value": "urgent"},
            {"field": "rating", "op": "eq", "value": "hot"},
        ]
    },
    [
        {"field": "email", "op": "contains", "value": "@nowhere.invalid"},
        {"field": "source", "op": "in", "value": ["partner"]},
    ],
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--updates", type=int, default=300)
    parser.add_argument("--rules", type=int, default=50)
    parser.add_argument("--scan-leads", type=int, default=0)
    args = parser.parse_args()

    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    call_command("migrate", verbosity=0)

    import redis
    from django.db import connection

    from crm import services
    from crm.actors import SYSTEM
    from crm.automation import engine
    from crm.automation.services import automation_rule_create
    from crm.events.dispatch import broker_reset
    from crm.events.relay import outbox_relay
    from crm.models import AutomationRule, AutomationRun, Lead, OutboxEvent, Pipeline
    from crm_project.celery import app

    version = connection.pg_version if connection.vendor == "postgresql" else connection.vendor
    print(f"database {version}; load {load()}")
    if not Pipeline.objects.exists():
        call_command("crm_load_demo", verbosity=0)
    AutomationRule.objects.all().delete()
    rules = [
        automation_rule_create(
            user=SYSTEM,
            data={
                "name": f"Bench {n}",
                "model": "crm.Lead",
                "trigger_kind": "event",
                "trigger": {"events": ["updated"]},
                "conditions": NOT_MATCHING[n % len(NOT_MATCHING)],
                "actions": [{"kind": "update_fields", "params": {"values": {"description": "matched"}}}],
            },
        )
        for n in range(args.rules)
    ]
    ids = [r.pk for r in rules]
    lead = services.lead_create(user=SYSTEM, data={"name": "Benchmark lead", "priority": "low"})
    outbox_relay()

    def rules_active(on: bool) -> None:
        AutomationRule.objects.filter(pk__in=ids).update(is_active=on)

    def with_broker(on: bool) -> None:
        settings.CELERY_BROKER_URL = REDIS_URL if on else ""
        app.conf.broker_url = REDIS_URL if on else None
        broker_reset()

    samples = {
        key: [] for key in ("write:0", "write:N", "embedded:0", "embedded:N", "consume:0", "consume:N")
    }
    counter = 0
    for _ in range(args.updates):
        for active in (True, False):
            key = "N" if active else "0"
            rules_active(active)
            current = Lead.objects.get(pk=lead.pk)
            counter += 1
            with_broker(True)
            started = time.perf_counter()
            services.lead_update(lead=current, user=SYSTEM, data={"name": f"Benchmark lead {counter}"})
            samples[f"write:{key}"].append(time.perf_counter() - started)
            with_broker(False)
            outbox_relay()  # untimed: drain what the absent worker would have relayed
            current = Lead.objects.get(pk=lead.pk)
            counter += 1
            started = time.perf_counter()
            services.lead_update(lead=current, user=SYSTEM, data={"name": f"Benchmark lead {counter}"})
            outbox_relay()
            samples[f"embedded:{key}"].append(time.perf_counter() - started)
            event = OutboxEvent.objects.filter(type="lead.updated").order_by("-id").first()
            started = time.perf_counter()
            engine.events_consume([event])
            samples[f"consume:{key}"].append(time.perf_counter() - started)
    assert not AutomationRun.objects.exists(), "a rule matched: the benchmark measures non-matching rules"
    redis.Redis.from_url(REDIS_URL).flushdb()
    print(f"load after: {load()}")
    print(f"\n{args.updates} turns, {args.rules} active rules (N) against none (0)\n")
    print("| measure | p50 ms | p95 ms |\n|---|---:|---:|")
    for key in samples:
        print(summary(key, samples[key]))
    for what in ("write", "embedded", "consume"):
        extra = percentile([s * 1000 for s in samples[f"{what}:N"]], 0.95) - percentile(
            [s * 1000 for s in samples[f"{what}:0"]], 0.95
        )
        print(f"{what}: p95 with {args.rules} rules minus p95 without = {extra:+.2f} ms")
    rules_active(False)

    if args.scan_leads:
        scan(args.scan_leads)


def scan(target: int) -> None:
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    from crm.actors import SYSTEM
    from crm.automation.engine import _time_window
    from crm.automation.registry import model_entry
    from crm.automation.services import automation_rule_create
    from crm.models import Lead

    have = Lead.objects.count()
    if have < target:
        started = time.perf_counter()
        call_command(
            "crm_seed",
            leads=target - have,
            opportunities=0,
            accounts=0,
            contacts=0,
            activities=0,
            users=50,
            force=True,
            no_progress=True,
            verbosity=0,
        )
        print(f"seeded {target - have:,} leads in {time.perf_counter() - started:.1f} s")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE crm_lead")
    rule = automation_rule_create(
        user=SYSTEM,
        data={
            "name": "Quiet 30 days",
            "model": "crm.Lead",
            "trigger_kind": "time",
            "trigger": {"no_activity_days": 30},
            "is_active": False,
        },
    )
    entry = model_entry("crm.Lead")
    now = timezone.now()
    print(f"\nTime scan over {Lead.objects.count():,} leads (load {load()})\n")
    print("| window | leads crossing | time s |\n|---|---:|---:|")
    for label, span in (
        ("5 minutes", datetime.timedelta(minutes=5)),
        ("1 day", datetime.timedelta(days=1)),
        ("30 days", datetime.timedelta(days=30)),
    ):
        window, crossing = _time_window(rule, entry, now - span, now)
        query = (
            Lead.objects.filter(window)
            .annotate(crossing=crossing)
            .order_by("pk")
            .values_list("pk", "crossing")
        )
        started = time.perf_counter()
        count = sum(1 for _ in query.iterator(chunk_size=2000))
        elapsed = time.perf_counter() - started
        print(f"| {label} | {count:,} | {elapsed:.3f} |")
        if label == "1 day":
            plan = query.explain(analyze=True) if connection.vendor == "postgresql" else query.explain()
    print("\nPlan (1 day):\n")
    print(plan)
    rule.delete()


if __name__ == "__main__":
    main()
