"""Benchmark: customer service at scale (issue 20): the SLA scan over open tickets (target ≤ 5 s at
200,000) and the ticket queues (target p95 ≤ 300 ms at 1,000,000 tickets).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/crm_i20_bench \\
        .venv/bin/python benchmarks/service.py [--runs 20]   # BENCH_TICKETS=200000

The database is migrated first; the tickets are bulk-inserted once (kept for the next run): all open,
their SLA deadlines spread over the next 60 days, 100 of them due already (what one scan has to tell),
one in fifty assigned to the benchmark agent (a superuser: the visibility rule adds nothing). Cases:

* the SLA scan: ``ticket_sla_scan`` telling the 100 due tickets (their claims undone between runs,
  outside the timing); baseline: counting the open tickets with a bare cursor (what a scan that read
  every open ticket would at least cost);
* the queues through the real URLconf: the API list of "my tickets" and of "breaching soon", and the
  admin changelist of "my tickets"; baseline: the same first page's rows read with a bare cursor.

Not a test: numbers go to benchmarks/BENCHMARKS.md.
"""

import datetime
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (
    admin_client,
    api_client,
    arguments,
    bench_superuser,
    percentile,
    request_call,
    setup_django,
    time_interleaved,
)

DUE = 100
OPEN = "status NOT IN ('resolved', 'closed')"


def main() -> None:
    args = arguments(__doc__, runs=20, warmup=2)
    count = int(os.environ.get("BENCH_TICKETS", "200000"))
    setup_django()
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    from activities.models import Ticket
    from activities.service.sla import ticket_sla_scan

    call_command("migrate", verbosity=0)
    user, token = bench_superuser()
    have = Ticket.objects.count()
    now = timezone.now()
    if have < count:
        rng = random.Random(20)
        started = time.perf_counter()
        batch = []
        for index in range(have, count):
            due = now + datetime.timedelta(minutes=rng.randint(10, 60 * 24 * 60))
            batch.append(
                Ticket(
                    number=f"B-{index + 1:07d}",
                    subject=f"Bench ticket {index}",
                    status="open",
                    priority=rng.choice(["low", "medium", "high", "urgent"]),
                    assignee=user if index % 50 == 0 else None,
                    sla_due_at=due,
                    sla_warn_at=due - datetime.timedelta(hours=1),
                )
            )
            if len(batch) == 5000:
                Ticket.objects.bulk_create(batch)
                batch = []
        Ticket.objects.bulk_create(batch)
        print(f"inserted {count - have} tickets in {time.perf_counter() - started:.0f} s", flush=True)
    due_ids = list(Ticket.objects.order_by("pk").values_list("pk", flat=True)[:DUE])
    past = now - datetime.timedelta(minutes=5)
    Ticket.objects.filter(pk__in=due_ids).update(
        sla_due_at=past, sla_warn_at=past - datetime.timedelta(hours=1)
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE activities_ticket")

    def scan():
        Ticket.objects.filter(pk__in=due_ids).update(sla_breached_at=None, sla_warned_at=None)
        started = time.perf_counter()
        told = ticket_sla_scan(now=now)
        elapsed = (time.perf_counter() - started) * 1000
        assert told["breached"] == DUE, told
        return elapsed

    def count_open():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM activities_ticket WHERE status NOT IN ('resolved', 'closed')"
            )
            return cursor.fetchone()

    scans, baselines = [], []
    for _ in range(max(3, args.runs // 4)):
        scans.append(scan())
        started = time.perf_counter()
        count_open()
        baselines.append((time.perf_counter() - started) * 1000)

    api, admin = api_client(token), admin_client(user)
    cases = {
        "API tickets ?queue=mine": request_call(api, "/api/v1/crm/tickets/?queue=mine"),
        "API tickets ?queue=breaching": request_call(api, "/api/v1/crm/tickets/?queue=breaching"),
        "admin changelist ?queue=mine": request_call(admin, "/admin/activities/ticket/?queue=mine"),
    }

    def sql_page():
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT * FROM activities_ticket WHERE assignee_id = %s AND {OPEN} "
                "ORDER BY created_at DESC, id DESC LIMIT 50",
                [user.pk],
            )
            return cursor.fetchall()

    timings = time_interleaved([*cases.values(), sql_page], args.runs, args.warmup)
    print(f"\n{count:,} tickets; load average {os.getloadavg()[0]:.1f}")
    scan_p50, count_p50 = percentile(scans, 0.5), percentile(baselines, 0.5)
    print(
        f"| SLA scan, {DUE} due among {count:,} open | {scan_p50:.0f} ms | max {max(scans):.0f} ms ", end=""
    )
    print(f"| count of the open tickets {count_p50:.0f} ms |")
    sql = timings[-1]
    for (name, _), times in zip(cases.items(), timings, strict=False):
        print(
            f"| {name} | p50 {percentile(times, 0.5):.1f} ms | p95 {percentile(times, 0.95):.1f} ms ", end=""
        )
        print(f"| SQL page p50 {percentile(sql, 0.5):.1f} / p95 {percentile(sql, 0.95):.1f} ms |")


if __name__ == "__main__":
    main()
