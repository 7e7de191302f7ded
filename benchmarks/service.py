"""Benchmark: customer service at scale (issue 20): the SLA scan over the open tickets (target ≤ 5 s at
200,000 open) and the work queues (target p95 ≤ 300 ms at 1,000,000 tickets, a fixed query count).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/crm_i20svc_bench \\
        .venv/bin/python benchmarks/service.py [--runs 20]   # BENCH_TICKETS=1000000 (a fifth open)

The database is migrated first (seed its accounts and users with ``manage.py crm_seed`` at small sizes
first); the tickets are inserted once, set-based (one ``INSERT ... SELECT`` from ``generate_series``),
and kept for the next run: one in five open (new, open, on hold; pending customer with the clock
paused), the rest resolved or closed; 98% assigned among the users (the other 2%, a tenth of the open
tickets, wait in a queue), 6 queues (teams) of 10 with a manager; open deadlines from two days ago
(those told already) to 60 days ahead. The benchmark agent is a Sales Rep (not a superuser: the
visibility rule applies), member of two queues.

Cases, through the real URLconf as that agent: the API list ``tickets/?queue=`` of each queue (mine,
unassigned in my teams, breaching soon), the admin changelist of each, the admin board by status (all,
and of my tickets); baseline: the first page of "my tickets" read with a bare cursor. The query count
of each case is printed beside it. The SLA scan tells ``DUE`` tickets made due (their claims undone
between runs, outside the timing); its baseline counts the open tickets with a bare cursor.

Not a test: numbers go to benchmarks/BENCHMARKS.md.
"""

import datetime
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (
    admin_client,
    api_client,
    arguments,
    count_queries,
    percentile,
    request_call,
    setup_django,
    time_interleaved,
)

DUE = 100
TEAMS = 10
AGENT = "bench_agent"
OPEN = "status NOT IN ('resolved', 'closed')"

# One row per number g of generate_series: %(now)s is the run's time, %(users)s the user ids, %(teams)s
# the queues' ids, %(count)s the last number.
INSERT = """
INSERT INTO activities_ticket (
    created_at, updated_at, number, subject, description, requester_email, channel, ticket_type,
    priority, status, resolved_at, closed_at, assignee_id, team_id, sla_paused_seconds, sla_paused_at,
    sla_due_at, sla_warn_at, sla_warned_at, sla_breached_at
)
SELECT
    t.created, t.created, 'B-' || lpad(g::text, 7, '0'), 'Bench ticket ' || g, '', '', 'email', 'question',
    (ARRAY['low', 'medium', 'high', 'urgent'])[1 + g %% 4], t.status,
    CASE WHEN t.status IN ('resolved', 'closed') THEN t.created + interval '1 day' END,
    CASE WHEN t.status = 'closed' THEN t.created + interval '2 days' END,
    CASE WHEN g %% 50 <> 0 THEN (%(users)s::int[])[1 + (g * 7) %% cardinality(%(users)s::int[])] END,
    CASE WHEN g %% 10 < 6 OR g %% 50 = 0
        THEN (%(teams)s::bigint[])[1 + (g / 7) %% cardinality(%(teams)s::bigint[])] END,
    0,
    CASE WHEN t.status = 'pending_customer' THEN %(now)s - interval '1 hour' END,
    CASE WHEN t.open AND t.status <> 'pending_customer' THEN t.due END,
    CASE WHEN t.open AND t.status <> 'pending_customer' THEN t.due - interval '1 hour' END,
    CASE WHEN t.open AND t.due - interval '1 hour' <= %(now)s THEN t.due - interval '1 hour' END,
    CASE WHEN t.open AND t.due <= %(now)s THEN t.due END
FROM generate_series(%(first)s, %(count)s) AS g,
LATERAL (
    SELECT
        %(now)s - (%(count)s - g) * interval '30 seconds' AS created,
        g %% 5 = 0 AS open,
        CASE
            WHEN g %% 5 <> 0 THEN (ARRAY['resolved', 'closed'])[1 + g %% 2]
            ELSE (ARRAY['new', 'open', 'open', 'pending_customer', 'on_hold'])[1 + (g / 5) %% 5]
        END AS status,
        %(now)s + ((g::bigint * 7919) %% (62 * 24 * 60) - 2 * 24 * 60) * interval '1 minute' AS due
) AS t
"""


def _agent():
    """The benchmark's agent: a Sales Rep, staff, member of the first two queues; and its API token."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from rest_framework.authtoken.models import Token

    from crm.models import SalesTeam

    User = get_user_model()
    agent, _ = User.objects.get_or_create(username=AGENT, defaults={"is_staff": True})
    agent.groups.add(Group.objects.get(name="Sales Rep"))
    managers = list(User.objects.filter(is_superuser=False).exclude(pk=agent.pk).order_by("pk")[:TEAMS])
    teams = []
    for index in range(TEAMS):
        team, _ = SalesTeam.objects.get_or_create(
            name=f"Support queue {index}", defaults={"manager": managers[index % len(managers)]}
        )
        teams.append(team)
    for team in teams[:2]:
        team.members.add(agent)
    token, _ = Token.objects.get_or_create(user=agent)
    return agent, token.key, teams


def _seed(*, count: int, agent, teams, now) -> None:
    from django.contrib.auth import get_user_model
    from django.db import connection

    from activities.models import Ticket

    have = Ticket.objects.count()
    if have >= count:
        return
    users = list(get_user_model().objects.filter(is_active=True).order_by("pk").values_list("pk", flat=True))
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            INSERT,
            {
                "now": now,
                "users": users,
                "teams": [team.pk for team in teams[:6]],
                "first": have + 1,
                "count": count,
            },
        )
        cursor.execute("VACUUM ANALYZE activities_ticket")
    print(f"inserted {count - have:,} tickets in {time.perf_counter() - started:.0f} s", flush=True)


def main() -> None:
    args = arguments(__doc__, runs=20, warmup=2)
    count = int(os.environ.get("BENCH_TICKETS", "1000000"))
    setup_django()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    from activities.models import Ticket
    from activities.service.sla import ticket_sla_scan

    call_command("migrate", verbosity=0)
    # The scan emails the queue managers: kept in memory, not printed.
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    agent, token, teams = _agent()
    now = timezone.now()
    _seed(count=count, agent=agent, teams=teams, now=now)
    # DUE running tickets of the agent's queues, made due now (the rest were told when they fell due).
    running = Ticket.objects.filter(status__in=["new", "open", "on_hold"], sla_due_at__gt=now)
    due_ids = list(running.filter(team__in=teams[:2]).order_by("pk").values_list("pk", flat=True)[:DUE])
    past = now - datetime.timedelta(minutes=5)
    Ticket.objects.filter(pk__in=due_ids).update(
        sla_due_at=past, sla_warn_at=past - datetime.timedelta(hours=1)
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE activities_ticket")
        cursor.execute(f"SELECT count(*) FILTER (WHERE {OPEN}), count(*) FROM activities_ticket")
        open_count, total = cursor.fetchone()

    def scan():
        Ticket.objects.filter(pk__in=due_ids).update(sla_breached_at=None, sla_warned_at=None)
        started = time.perf_counter()
        told = ticket_sla_scan(now=now)
        elapsed = (time.perf_counter() - started) * 1000
        assert told["breached"] == DUE, told
        return elapsed

    def count_open():
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT count(*) FROM activities_ticket WHERE {OPEN}")
            return cursor.fetchone()

    # Tickets that fell due since the seeding (or the last run) are told first, untimed: each timed
    # scan then tells exactly the DUE tickets made due again.
    ticket_sla_scan(now=now)
    scans, baselines = [], []
    for _ in range(max(3, args.runs // 4)):
        scans.append(scan())
        started = time.perf_counter()
        count_open()
        baselines.append((time.perf_counter() - started) * 1000)

    api, admin = api_client(token), admin_client(agent)
    cases = {}
    for queue in ("mine", "unassigned", "breaching"):
        cases[f"API `tickets/?queue={queue}`"] = request_call(api, f"/api/v1/crm/tickets/?queue={queue}")
    for queue in ("mine", "unassigned", "breaching"):
        cases[f"admin changelist `?queue={queue}`"] = request_call(
            admin, f"/admin/activities/ticket/?queue={queue}"
        )
    cases["admin board, every visible ticket"] = request_call(admin, "/admin/activities/ticket/board/")
    cases["admin board `?queue=mine`"] = request_call(admin, "/admin/activities/ticket/board/?queue=mine")

    def sql_page():
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT * FROM activities_ticket WHERE assignee_id = %s AND {OPEN} "
                "ORDER BY created_at DESC, id DESC LIMIT 50",
                [agent.pk],
            )
            return cursor.fetchall()

    queries = {name: count_queries(call) for name, call in cases.items()}
    load_before = os.getloadavg()
    timings = time_interleaved([*cases.values(), sql_page], args.runs, args.warmup)
    load_after = os.getloadavg()
    print(
        f"\n{total:,} tickets, {open_count:,} open; load average (1, 5, 15 min) before "
        f"{load_before[0]:.1f}/{load_before[1]:.1f}/{load_before[2]:.1f}, after "
        f"{load_after[0]:.1f}/{load_after[1]:.1f}/{load_after[2]:.1f}"
    )
    scan_p50, count_p50 = percentile(scans, 0.5), percentile(baselines, 0.5)
    print(
        f"| SLA scan, {DUE} due among {open_count:,} open | {scan_p50:.0f} ms | max {max(scans):.0f} ms ",
        end="",
    )
    print(f"| count of the open tickets {count_p50:.0f} ms | — |")
    sql = timings[-1]
    for (name, _), times in zip(cases.items(), timings, strict=False):
        print(
            f"| {name} | {percentile(times, 0.5):.1f} ms | {percentile(times, 0.95):.1f} ms "
            f"| SQL page {percentile(sql, 0.5):.1f} / {percentile(sql, 0.95):.1f} ms | {queries[name]} |"
        )


if __name__ == "__main__":
    main()
