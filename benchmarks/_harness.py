"""What the scale benchmarks share: Django set up for measuring, timing, query counts, the result table.

Every scale benchmark (``api_lists.py``, ``boards_reports.py``, ``admin_pages.py``) measures pages and
endpoints server side, in this process: a request goes through the real URLconf and middleware with
Django's test ``Client`` (no network, no web server), against the database in DATABASE_URL, with DEBUG
off. Each case is requested ``--warmup`` times first (warm caches, the user's permissions loaded), then
timed ``--runs`` times; the table gives the median (p50) and the 95th percentile (p95) of those runs.
Queries per request are counted on one more request, apart from the timed ones, so that capturing them
costs the timings nothing.

Each case carries its baselines, timed the same way in the same run, in turns with it (one request of
ours, one of each baseline, again), so that a change in the machine's load falls on all of them:

* SQL — hand-written SQL that returns the same rows and columns, run on the same connection through a
  bare psycopg cursor: what the database itself needs, the physical limit;
* plain DRF — for lists, a stock ``ModelViewSet`` with a ``ModelSerializer(fields="__all__")`` and no
  query tuning, mounted on a benchmark-only URLconf: what a user would otherwise get.

A case whose request takes over a second is timed fewer times (at least 5). The machine is shared, so
the load average is printed before and after.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import types
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_USERNAME = "bench-superuser"

# Production-like settings for an in-process client: DEBUG off (no query log, no debug pages), the
# client's host allowed, no HTTPS redirect (there is no proxy in front of the test client), plain static
# files (the hashed manifest only exists after collectstatic), and a request budget the benchmark cannot
# run out of. These are always set; the development .env (DEBUG on) never applies.
BENCH_ENV = {
    "DEBUG": "false",
    "ALLOWED_HOSTS": "testserver",
    "SECURE_SSL_REDIRECT": "false",
    "STATICFILES_STORAGE": "django.contrib.staticfiles.storage.StaticFilesStorage",
    "API_RATE_USER": "1000000/minute",
}
# Defaults the environment may change: a connection kept for the whole run, as a long-lived worker
# keeps it, and quiet logs.
BENCH_DEFAULTS = {
    "DJANGO_SETTINGS_MODULE": "crm_project.settings",
    "SECRET_KEY": "benchmark-only-secret-key",
    "CONN_MAX_AGE": "3600",
    "LOG_LEVEL": "WARNING",
}


def setup_django(extra_urlpatterns: Callable[[], list] | None = None) -> None:
    """Set Django up for measuring. ``extra_urlpatterns`` (called after setup) returns URL patterns
    mounted beside the product's in a benchmark-only root URLconf (the plain DRF baselines)."""
    sys.path.insert(0, str(ROOT))
    os.environ.update(BENCH_ENV)
    for name, value in BENCH_DEFAULTS.items():
        os.environ.setdefault(name, value)
    if not os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")):
        raise SystemExit("Set DATABASE_URL to a PostgreSQL database seeded with manage.py crm_seed.")

    import django

    # Whitenoise warns that collectstatic never ran; the pages measured serve no static files.
    warnings.filterwarnings("ignore", message="No directory at")
    django.setup()
    if extra_urlpatterns is not None:
        from django.conf import settings
        from django.urls import clear_url_caches, include, path

        module = types.ModuleType("benchmark_urls")
        module.urlpatterns = [*extra_urlpatterns(), path("", include(settings.ROOT_URLCONF))]
        sys.modules[module.__name__] = module
        settings.ROOT_URLCONF = module.__name__
        clear_url_caches()
    # As the WSGI entry point does before a server's first request.
    from crm_project.runtime import settle_after_startup

    settle_after_startup()


def arguments(description: str, argv: Sequence[str] | None = None, **defaults) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--runs", type=int, default=defaults.get("runs", 30), help="timed requests per case")
    parser.add_argument(
        "--warmup", type=int, default=defaults.get("warmup", 3), help="untimed requests per case first"
    )
    parser.add_argument("--only", default="", help="run only the cases whose name contains this text")
    parser.add_argument("--json", type=Path, default=None, help="also write the results to this file")
    return parser.parse_args(argv)


# --- the user ---------------------------------------------------------------------------------------


def bench_superuser():
    """The superuser the benchmark signs in as (created on first use), and an API token for it."""
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    User = get_user_model()
    user = User.objects.filter(username=BENCH_USERNAME).first()
    if user is None:
        user = User.objects.create_superuser(BENCH_USERNAME, f"{BENCH_USERNAME}@example.com", None)
    token, _ = Token.objects.get_or_create(user=user)
    return user, token.key


def api_client(token: str):
    from django.test import Client

    return Client(HTTP_AUTHORIZATION=f"Token {token}")


def admin_client(user):
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client


# --- measuring ----------------------------------------------------------------------------------------


def get_ok(client, url: str):
    """GET ``url``; anything but a 200 stops the benchmark (a fast error page proves nothing)."""
    response = client.get(url)
    if response.status_code != 200:
        body = response.content[:500].decode(errors="replace")
        raise SystemExit(f"GET {url} answered {response.status_code}: {body}")
    return response


def request_call(client, url: str) -> Callable[[], object]:
    return lambda: get_ok(client, url)


def sql_call(statements: Callable[[], list[tuple[str, Sequence]]]) -> Callable[[], list[list[tuple]]]:
    """Run each (sql, params) on a bare psycopg cursor of Django's connection, fetching every row.

    ``statements`` is called each time, so a statement may use the rows of the one before it
    (``sql_chain``) or fresh parameters.
    """

    def run():
        from django.db import connection

        connection.ensure_connection()
        results = []
        with connection.connection.cursor() as cursor:
            for sql, params in statements():
                cursor.execute(sql, params)
                results.append(cursor.fetchall())
        return results

    return run


def sql_chain(*steps: Callable[[list[list[tuple]]], tuple[str, Sequence] | None]) -> Callable[[], list]:
    """Run SQL steps in order, each built from the rows of the steps before it (e.g. the tags of the
    rows of a page), on a bare psycopg cursor of Django's connection."""

    def run():
        from django.db import connection

        connection.ensure_connection()
        results: list[list[tuple]] = []
        with connection.connection.cursor() as cursor:
            for step in steps:
                statement = step(results)
                if statement is None:
                    results.append([])
                    continue
                cursor.execute(*statement)
                results.append(cursor.fetchall())
        return results

    return run


def count_queries(call: Callable[[], object]) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as context:
        call()
    return len(context.captured_queries)


# A slow case (a sequential scan of a million rows) is timed fewer times, at least MIN_RUNS, so that
# one call's measurement stays near TIME_BUDGET_S seconds.
TIME_BUDGET_S = 20.0
MIN_RUNS = 5


def time_ms(call: Callable[[], object], runs: int, warmup: int) -> list[float]:
    return time_interleaved([call], runs, warmup)[0]


def time_interleaved(calls: list[Callable[[], object]], runs: int, warmup: int) -> list[list[float]]:
    """Time each of ``calls`` ``runs`` times, in rounds (one call of each, in turn), so that a change of
    the machine's load falls on ours and its baselines alike. Returns each call's timings in ms."""
    start = time.perf_counter()
    done = 0
    while done < max(1, warmup) and (done == 0 or time.perf_counter() - start < TIME_BUDGET_S / 4):
        for call in calls:
            call()
        done += 1
    each = (time.perf_counter() - start) / done / len(calls)
    runs = min(runs, max(MIN_RUNS, int(TIME_BUDGET_S / max(each, 1e-6))))
    timings: list[list[float]] = [[] for _ in calls]
    for _ in range(runs):
        for call, times in zip(calls, timings, strict=True):
            started = time.perf_counter()
            call()
            times.append((time.perf_counter() - started) * 1000)
    return timings


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile: the smallest value with at least ``share`` of the values at or below."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * share // 1))
    return ordered[int(rank) - 1]


@dataclass
class Timing:
    p50: float
    p95: float
    runs: int
    queries: int | None = None

    @classmethod
    def of(cls, timings: list[float], queries: int | None = None) -> "Timing":
        return cls(
            p50=statistics.median(timings), p95=percentile(timings, 0.95), runs=len(timings), queries=queries
        )


@dataclass
class Case:
    """One page or endpoint, how to request it, its baselines and its target."""

    name: str
    call: Callable[[], object]
    target: str = ""
    # A number, or computed from the results measured before this case (e.g. 1.5 × page 1's p95).
    target_p95_ms: float | Callable[[dict[str, "Result"]], float] | None = None
    sql: Callable[[], object] | None = None
    plain: Callable[[], object] | None = None
    max_sql_ratio: float | None = None  # target: p95 at most this many times the SQL baseline's
    # (label, call) pairs for the query count at other sizes: it must not change.
    sizes: list[tuple[str, Callable[[], object]]] = field(default_factory=list)
    # Extra verification: a note, and False when it fails a target ("index used") or None.
    check: Callable[[], tuple[str, bool | None]] | None = None
    # (label, call) pairs timed apart and reported as a note: where the SQL baseline's time goes.
    parts: list[tuple[str, Callable[[], object]]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class Result:
    name: str
    ours: Timing
    sql: Timing | None
    plain: Timing | None
    target: str
    met: bool | None
    size_queries: dict[str, int]
    notes: list[str]

    @property
    def sql_ratio(self) -> float | None:
        return self.ours.p50 / self.sql.p50 if self.sql else None

    @property
    def plain_ratio(self) -> float | None:
        return self.ours.p50 / self.plain.p50 if self.plain else None


def measure(case: Case, runs: int, warmup: int, earlier: dict[str, Result]) -> Result:
    calls = [call for call in (case.call, case.sql, case.plain) if call is not None]
    timings = iter(time_interleaved(calls, runs, warmup))
    ours = Timing.of(next(timings), count_queries(case.call))
    sql = Timing.of(next(timings)) if case.sql else None
    plain = Timing.of(next(timings), count_queries(case.plain)) if case.plain else None
    size_queries = {label: count_queries(call) for label, call in case.sizes}
    notes = list(case.notes)
    if case.parts:
        parts = [(label, statistics.median(time_ms(call, runs, 1))) for label, call in case.parts]
        notes.append("SQL baseline parts, p50: " + ", ".join(f"{label} {ms:.1f} ms" for label, ms in parts))
    if ours.runs < runs:
        notes.append(f"slow: timed {ours.runs} times, not {runs}")
    check_ok = None
    if case.check is not None:
        note, check_ok = case.check()
        notes.append(note)
    met = None
    target_p95_ms = case.target_p95_ms
    if callable(target_p95_ms):
        target_p95_ms = target_p95_ms(earlier)
        notes.append(f"target p95 here: {target_p95_ms:.1f} ms")
    if target_p95_ms is not None:
        met = ours.p95 <= target_p95_ms
        if case.max_sql_ratio is not None and sql is not None:
            met = met and ours.p95 <= case.max_sql_ratio * sql.p95
    if check_ok is False:
        met = False
    if size_queries and len(set(size_queries.values()) | {ours.queries}) > 1:
        met = False
        notes.append("query count changes with the page size")
    return Result(case.name, ours, sql, plain, case.target, met, size_queries, notes)


# --- hand-written SQL shared by the baselines -------------------------------------------------------

# A lead as the API shows it (crm.api.serializers.LeadSerializer): its columns and its relations' names.
LEAD_COLUMNS = """
    l.id, l.name, l.contact_name, l.email, l.phone, l.company_name, l.job_title, l.pipeline_id,
    p.name AS pipeline_name, l.stage_id, s.name AS stage_name, l.priority, l.rating, l.source,
    l.expected_revenue, l.probability, l.description, l.status, l.lost_reason_id,
    lr.name AS lost_reason_name, l.lost_note, l.converted_at, l.converted_account_id,
    l.converted_contact_id, o.id AS converted_opportunity_id, l.owner_id, u.username, l.score,
    sb.lines AS score_breakdown, l.created_at, l.updated_at
"""
LEAD_JOINS = """
    FROM crm_lead l
    JOIN crm_pipeline p ON p.id = l.pipeline_id
    JOIN crm_stage s ON s.id = l.stage_id
    LEFT JOIN auth_user u ON u.id = l.owner_id
    LEFT JOIN crm_lostreason lr ON lr.id = l.lost_reason_id
    LEFT JOIN sales_opportunity o ON o.lead_id = l.id
    LEFT JOIN crm_scorebreakdown sb ON sb.id = l.score_breakdown_id
"""
# An opportunity as the API shows it (sales.api.serializers.OpportunitySerializer).
OPPORTUNITY_COLUMNS = """
    x.id, x.name, x.account_id, a.name AS account_name, x.contact_id,
    c.first_name || ' ' || c.last_name AS contact_name, x.pipeline_id, p.name AS pipeline_name,
    x.stage_id, s.name AS stage_name, x.amount, x.probability, x.close_date, x.opportunity_type,
    x.priority, x.status, x.closed_at, x.lost_reason_id, lr.name AS lost_reason_name, x.lost_note,
    x.lead_id, x.description, x.owner_id, u.username, x.created_at, x.updated_at
"""
OPPORTUNITY_JOINS = """
    FROM sales_opportunity x
    JOIN crm_pipeline p ON p.id = x.pipeline_id
    JOIN crm_stage s ON s.id = x.stage_id
    LEFT JOIN crm_account a ON a.id = x.account_id
    LEFT JOIN crm_contact c ON c.id = x.contact_id
    LEFT JOIN auth_user u ON u.id = x.owner_id
    LEFT JOIN crm_lostreason lr ON lr.id = x.lost_reason_id
"""


def tags_sql(table: str, column: str, step: int = 0):
    """A step giving the tags of the rows step ``step`` read (their id first), in the API's order."""

    def tags(results):
        ids = [row[0] for row in results[step]]
        return (
            f"SELECT lt.{column}, t.id FROM {table} lt JOIN crm_tag t ON t.id = lt.tag_id "
            f"WHERE lt.{column} = ANY(%s) ORDER BY t.name, t.id",
            [ids],
        )

    return tags


lead_tags_sql = tags_sql("crm_lead_tags", "lead_id")


# --- reporting ------------------------------------------------------------------------------------


def commit() -> str:
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{sha}{' (uncommitted changes)' if dirty else ''}"


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f} (1, 5, 15 min; {os.cpu_count()} cores)"


def database_summary() -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT (SELECT count(*) FROM crm_lead), (SELECT count(*) FROM sales_opportunity), "
            "(SELECT count(*) FROM crm_account), (SELECT count(*) FROM crm_contact), "
            "(SELECT count(*) FROM activities_activity), current_setting('server_version')"
        )
        leads, opportunities, accounts, contacts, activities, version = cursor.fetchone()
        # The planner prices an index-only scan by the share of pages the visibility map marks: a board
        # measured without it reads another way (BENCHMARKS.md, twenty-third pass).
        cursor.execute(
            "SELECT COALESCE(sum(relallvisible), 0), COALESCE(sum(relpages), 0) FROM pg_class "
            "WHERE oid = ANY(%s::regclass[])",
            [list(RECORD_TABLES)],
        )
        visible, pages = cursor.fetchone()
    return (
        f"{connection.settings_dict['NAME']} (PostgreSQL {version}): {leads:,} leads, "
        f"{opportunities:,} opportunities, {accounts:,} accounts, {contacts:,} contacts, "
        f"{activities:,} activities; {visible / pages if pages else 0:.0%} of their pages all-visible"
        + (
            ""
            if pages and visible >= pages * 0.9
            else " (VACUUM them first: crm_seed does, autovacuum may not)"
        )
    )


RECORD_TABLES = ("crm_lead", "sales_opportunity", "crm_account", "crm_contact", "activities_activity")


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def _ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}×"


def run(title: str, cases: list[Case], args: argparse.Namespace) -> list[Result]:
    """Measure ``cases`` (those matching --only), print the table, optionally write JSON."""
    selected = [case for case in cases if args.only.lower() in case.name.lower()]
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    header = [
        f"# {title}",
        f"date {started}, commit {commit()}",
        f"database {database_summary()}",
        f"runs {args.runs} timed after {args.warmup} warm-up requests per case; load before {load()}",
    ]
    print("\n".join(header), flush=True)
    results: dict[str, Result] = {}
    for case in selected:
        print(f"  … {case.name}", file=sys.stderr, flush=True)
        results[case.name] = measure(case, args.runs, args.warmup, results)
    results = list(results.values())
    print(f"load after {load()}")
    print(table(results))
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {
                    "title": title,
                    "date": started,
                    "commit": commit(),
                    "load_after": load(),
                    "runs": args.runs,
                    "results": [
                        {
                            "name": r.name,
                            "p50_ms": r.ours.p50,
                            "p95_ms": r.ours.p95,
                            "queries": r.ours.queries,
                            "sql_p50_ms": r.sql and r.sql.p50,
                            "sql_p95_ms": r.sql and r.sql.p95,
                            "plain_p50_ms": r.plain and r.plain.p50,
                            "plain_p95_ms": r.plain and r.plain.p95,
                            "plain_queries": r.plain and r.plain.queries,
                            "size_queries": r.size_queries,
                            "target": r.target,
                            "met": r.met,
                            "notes": r.notes,
                        }
                        for r in results
                    ],
                },
                indent=2,
            )
        )
    return results


def table(results: list[Result]) -> str:
    """A Markdown table of the results, notes below it."""
    lines = [
        "| what | p50 ms | p95 ms | queries/request | SQL p50 / p95 ms | ×SQL (p50) "
        "| plain DRF p50 / p95 ms (queries) | ×plain DRF (p50) | target | met |",
        "|---|---:|---:|---|---:|---:|---:|---:|---|---|",
    ]
    for r in results:
        queries = str(r.ours.queries)
        if r.size_queries:
            queries += " (" + ", ".join(f"{label}: {n}" for label, n in r.size_queries.items()) + ")"
        sql = f"{_ms(r.sql.p50)} / {_ms(r.sql.p95)}" if r.sql else "—"
        plain = f"{_ms(r.plain.p50)} / {_ms(r.plain.p95)} ({r.plain.queries})" if r.plain else "—"
        met = {True: "met", False: "**not met**", None: "—"}[r.met]
        lines.append(
            f"| {r.name} | {_ms(r.ours.p50)} | {_ms(r.ours.p95)} | {queries} | {sql} | "
            f"{_ratio(r.sql_ratio)} | {plain} | {_ratio(r.plain_ratio)} | {r.target or '—'} | {met} |"
        )
    notes = [f"- {r.name}: {note}" for r in results for note in r.notes]
    return "\n".join(lines + (["", *notes] if notes else []))


def explain(queryset) -> tuple[str, list[str]]:
    """PostgreSQL's plan for ``queryset``, and the indexes it reads (bitmap index scans first)."""
    import re

    plan = queryset.explain()
    bitmap = re.findall(r"Bitmap Index Scan on (\S+)", plan)
    scans = re.findall(r"Index(?: Only)? Scan(?: Backward)? using (\S+)", plan)
    return plan, list(dict.fromkeys(bitmap + scans))
