"""Benchmark: importing a 100,000-row lead file on PostgreSQL, against two baselines.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/crm_imports_bench \\
        .venv/bin/python benchmarks/import_leads.py [--rows 100000]

Generates a lead CSV (90% new leads, 10% updates of stored leads; pipeline, stage and owner by name,
1–3 tags a row) and, resetting the data before each run, times:

1. ours  — ``manage.py crm_import leads FILE`` in a child process, end to end (start-up, parse,
   validate, dedupe, write, tags), peak memory measured by /usr/bin/time -v;
2. stock — django-import-export's ModelResource with its documented bulk options (use_bulk,
   batch_size=1000, skip_diff) on the same file, in a child process the same way;
3. COPY  — the same rows, already resolved to ids, written with PostgreSQL COPY (inserts, an
   UPDATE from a COPY-filled temporary table, tag links): the physical limit of the database.

It prints rows/s, the ratios and peak memory. Not a test: numbers go to benchmarks/BENCHMARKS.md.
"""

import argparse
import csv
import io
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crm_project.settings")
os.environ.setdefault("SECRET_KEY", "benchmark-only-secret-key")
os.environ.setdefault("LOG_LEVEL", "WARNING")

EXISTING = 0.10  # share of the file's rows that update stored leads
STAGES = [("New", 10), ("Qualified", 30), ("Proposal", 60), ("Negotiation", 80)]
PRIORITIES = ["low", "medium", "high", "urgent"]
RATINGS = ["", "cold", "warm", "hot"]
SOURCES = ["website", "referral", "cold_call", "email_campaign", "trade_show", "partner"]
TAG_NAMES = [f"Segment {i:02d}" for i in range(30)]
USERS = [f"rep{i:02d}" for i in range(20)]
COLUMNS = [
    "name",
    "contact_name",
    "email",
    "phone",
    "company_name",
    "job_title",
    "pipeline",
    "stage",
    "priority",
    "rating",
    "source",
    "expected_revenue",
    "probability",
    "description",
    "owner",
    "tags",
]


def setup_django():
    import django

    django.setup()


def python() -> str:
    return sys.executable


# -- data -----------------------------------------------------------------------------------------------
def seed_reference_data():
    """Pipelines, stages, users, tags: created once, kept across runs."""
    from django.contrib.auth import get_user_model

    from crm.models import Pipeline, Stage, Tag

    if Pipeline.objects.filter(name="Sales Pipeline").exists():
        return
    sales = Pipeline.objects.create(name="Sales Pipeline", is_default=True)
    for seq, (name, prob) in enumerate([*STAGES, ("Won", 100), ("Lost", 0)]):
        Stage.objects.create(
            pipeline=sales,
            name=name,
            sequence=seq,
            probability=prob,
            is_won=name == "Won",
            is_lost=name == "Lost",
        )
    enterprise = Pipeline.objects.create(name="Enterprise Deals")
    for seq, name in enumerate(["Discovery", "Proposal", "Negotiation", "Won", "Lost"]):
        Stage.objects.create(
            pipeline=enterprise, name=name, sequence=seq, is_won=name == "Won", is_lost=name == "Lost"
        )
    User = get_user_model()
    User.objects.bulk_create([User(username=name, email=f"{name}@example.com") for name in USERS])
    Tag.objects.bulk_create([Tag(name=name) for name in TAG_NAMES])


def reset_leads(existing: int):
    """Empty the lead tables and store ``existing`` leads (emails stored0@…) with two tags each."""
    from django.db import connection, transaction

    from crm.models import Lead, Pipeline, Tag

    with transaction.atomic(), connection.cursor() as cursor:
        # The lead's audit history too: ours writes a version per imported lead, and a history grown by
        # earlier runs would make each run slower than the one before.
        cursor.execute("TRUNCATE crm_lead_tags, crm_lead, crm_historicallead RESTART IDENTITY CASCADE")
        Tag.objects.exclude(name__in=TAG_NAMES).delete()
        pipeline = Pipeline.objects.get(name="Sales Pipeline")
        stage = pipeline.first_stage()
        Lead.objects.bulk_create(
            [
                Lead(
                    name=f"Stored lead {i}",
                    email=f"stored{i}@example.com",
                    pipeline=pipeline,
                    stage=stage,
                    probability=stage.probability,
                )
                for i in range(existing)
            ],
            batch_size=2000,
        )
        tag_ids = list(Tag.objects.filter(name__in=TAG_NAMES[:2]).values_list("id", flat=True))
        Through = Lead.tags.through
        Through.objects.bulk_create(
            [
                Through(lead_id=pk, tag_id=t)
                for pk in Lead.objects.values_list("id", flat=True)
                for t in tag_ids
            ],
            batch_size=5000,
        )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE crm_lead; ANALYZE crm_lead_tags")
        # Every run starts just after a checkpoint, so each pays for the same full-page writes.
        cursor.execute("CHECKPOINT")


def generate_csv(path: Path, rows: int, existing: int):
    rng = random.Random(20261121)
    updates = set(rng.sample(range(rows), existing))
    stored = iter(range(existing))
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for i in range(rows):
            stage, probability = rng.choice(STAGES)
            email = f"stored{next(stored)}@example.com" if i in updates else f"lead{i}@example.com"
            writer.writerow(
                [
                    f"Lead {i} — {rng.choice(['seats', 'licences', 'services'])}",
                    f"Person {i}",
                    email,
                    f"555-{i:07d}",
                    f"Company {i % 5000}",
                    rng.choice(["CEO", "CTO", "Buyer", "Head of IT", ""]),
                    "Sales Pipeline",
                    stage,
                    rng.choice(PRIORITIES),
                    rng.choice(RATINGS),
                    rng.choice(SOURCES),
                    f"{rng.randint(0, 500000)}.{rng.randint(0, 99):02d}",
                    probability,
                    "Imported from the old CRM." if i % 3 else "",
                    rng.choice(USERS),
                    ", ".join(rng.sample(TAG_NAMES, rng.randint(1, 3))),
                ]
            )


# -- runs -----------------------------------------------------------------------------------------------
def timed_child(args: list[str]) -> tuple[float, int, str]:
    """Run a child under /usr/bin/time -v: (wall seconds, peak RSS in MB, its stdout)."""
    started = time.perf_counter()
    done = subprocess.run(
        ["/usr/bin/time", "-v", *args], capture_output=True, text=True, cwd=ROOT, env=os.environ
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1))
    return elapsed, peak_kb // 1024, done.stdout


def check_result(rows: int, existing: int) -> str:
    from crm.models import Lead

    total = Lead.objects.count()
    links = Lead.tags.through.objects.count()
    updated = Lead.objects.filter(email__startswith="stored", name__startswith="Lead ").count()
    expected = existing + rows - existing
    status = "ok" if total == expected and updated == existing else "WRONG"
    return f"{status}: {total} leads, {updated} updated, {links} tag links"


def run_ours(path: Path) -> tuple[float, int]:
    elapsed, peak, out = timed_child(
        [python(), "manage.py", "crm_import", "leads", str(path), "--no-progress"]
    )
    print(f"    {out.strip().splitlines()[-1]}")
    return elapsed, peak


def run_stock(path: Path) -> tuple[float, int]:
    elapsed, peak, out = timed_child([python(), __file__, "--child-stock", str(path)])
    print(f"    {out.strip().splitlines()[-1]}")
    return elapsed, peak


def stock_import(path: Path):
    """The child: django-import-export's ModelResource, tuned with its documented bulk options."""
    setup_django()
    import tablib
    from django.contrib.auth import get_user_model
    from import_export import fields, resources, widgets

    from crm.models import Lead, Pipeline, Stage

    class StageWidget(widgets.ForeignKeyWidget):
        # Stage names repeat across pipelines: look the stage up in the row's pipeline.
        def get_queryset(self, value, row, *args, **kwargs):
            return Stage.objects.filter(pipeline__name=row["pipeline"])

    class StockLeadResource(resources.ModelResource):
        pipeline = fields.Field("pipeline", "pipeline", widgets.ForeignKeyWidget(Pipeline, "name"))
        stage = fields.Field("stage", "stage", StageWidget(Stage, "name"))
        owner = fields.Field("owner", "owner", widgets.ForeignKeyWidget(get_user_model(), "username"))

        class Meta:
            model = Lead
            # Bulk mode cannot write many-to-many fields (bulk_update refuses them): no tags column.
            fields = [c for c in COLUMNS if c != "tags"]
            import_id_fields = ("email",)
            use_bulk = True
            batch_size = 1000
            skip_diff = True

    dataset = tablib.Dataset().load(path.read_text(encoding="utf-8"), format="csv")
    result = StockLeadResource().import_data(dataset, dry_run=False, use_transactions=True)
    if result.has_errors() or result.has_validation_errors():
        errors = [str(e.error) for _, row_errors in result.row_errors()[:3] for e in row_errors]
        errors += [str(r.error_dict) for r in result.invalid_rows[:3]]
        errors += [f"{e.error!r}\n{e.traceback}" for e in result.base_errors[:1]]
        sys.exit(f"stock import failed: {errors}")
    print(f"stock: {dict(result.totals)}")


def run_copy(path: Path) -> float:
    """Resolve the file to ids up front (untimed), then time the database work alone with COPY."""
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction
    from django.utils import timezone

    from crm.models import Lead, Pipeline, Stage, Tag

    pipelines = dict(Pipeline.objects.values_list("name", "id"))
    stages = {(p, n): i for i, p, n in Stage.objects.values_list("id", "pipeline_id", "name")}
    users = dict(get_user_model().objects.values_list("username", "id"))
    tags = dict(Tag.objects.values_list("name", "id"))
    stored = dict(Lead.objects.values_list("email", "id"))
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute("SELECT last_value FROM crm_lead_id_seq")
    columns = [
        "id",
        "created_at",
        "updated_at",
        "name",
        "contact_name",
        "email",
        "phone",
        "company_name",
        "job_title",
        "pipeline_id",
        "stage_id",
        "priority",
        "rating",
        "source",
        "expected_revenue",
        "probability",
        "description",
        "status",
        "lost_note",
        "owner_id",
    ]
    inserts, updates, links = io.StringIO(), io.StringIO(), io.StringIO()
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    with connection.cursor() as cursor:
        cursor.execute("SELECT nextval('crm_lead_id_seq') FROM generate_series(1, %s)", [len(rows)])
        new_ids = iter(row[0] for row in cursor.fetchall())
    for row in rows:
        pid = pipelines[row["pipeline"]]
        pk = stored.get(row["email"])
        target = updates if pk else inserts
        pk = pk or next(new_ids)
        values = [
            pk,
            now.isoformat(),
            now.isoformat(),
            row["name"],
            row["contact_name"],
            row["email"],
            row["phone"],
            row["company_name"],
            row["job_title"],
            pid,
            stages[pid, row["stage"]],
            row["priority"],
            row["rating"],
            row["source"],
            row["expected_revenue"] or "\\N",
            row["probability"],
            row["description"],
            "open",
            "",
            users[row["owner"]],
        ]
        target.write("\t".join(str(v) for v in values) + "\n")
        for name in row["tags"].split(","):
            links.write(f"{pk}\t{tags[name.strip()]}\n")
    set_columns = ", ".join(f"{c} = s.{c}" for c in columns[2:])
    started = time.perf_counter()
    marks = []

    def mark(what):
        marks.append((what, time.perf_counter()))

    with transaction.atomic(), connection.cursor() as cursor:
        raw = cursor.cursor
        with raw.copy(f"COPY crm_lead ({', '.join(columns)}) FROM STDIN") as copy:
            copy.write(inserts.getvalue())
        mark("insert")
        cursor.execute("CREATE TEMP TABLE bench_lead (LIKE crm_lead) ON COMMIT DROP")
        with raw.copy(f"COPY bench_lead ({', '.join(columns)}) FROM STDIN") as copy:
            copy.write(updates.getvalue())
        cursor.execute("ANALYZE bench_lead")
        cursor.execute(f"UPDATE crm_lead t SET {set_columns} FROM bench_lead s WHERE t.id = s.id")
        mark("update")
        cursor.execute("DELETE FROM crm_lead_tags WHERE lead_id IN (SELECT id FROM bench_lead)")
        mark("untag")
        with raw.copy("COPY crm_lead_tags (lead_id, tag_id) FROM STDIN") as copy:
            copy.write(links.getvalue())
        mark("tags")
    mark("commit")
    if os.environ.get("BENCH_VERBOSE"):
        last = started
        for what, at in marks:
            print(f"    {what}: {at - last:.2f}s")
            last = at
    return time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--skip-stock", action="store_true", help="leave out the (slow) stock baseline")
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs of ours and of COPY; the best and the median are shown"
    )
    parser.add_argument("--child-stock", metavar="FILE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_stock:
        stock_import(Path(args.child_stock))
        return

    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        sys.exit(
            "Set DATABASE_URL to a PostgreSQL database, e.g. postgres://postgres@127.0.0.1:5432/crm_imports_bench"
        )
    create_database(url)
    setup_django()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    seed_reference_data()
    existing = int(args.rows * EXISTING)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "leads.csv"
        generate_csv(path, args.rows, existing)
        size_mb = path.stat().st_size / 1e6
        with connection.cursor() as cursor:
            cursor.execute("SELECT version()")
            version = cursor.fetchone()[0].split(" on ")[0]
        print(
            f"{args.rows:,} rows ({size_mb:.1f} MB CSV): {args.rows - existing:,} new, {existing:,} updates"
        )
        print(f"{version}, Python {sys.version.split()[0]}, {os.cpu_count()} cores")
        results = {}

        # Ours and COPY run in turn (ours, COPY, ours, COPY, ...): on a shared machine whose load
        # drifts, the ratio of each pair stays meaningful when the absolute times do not.
        runs, copies, pair_ratios = [], [], []
        for attempt in range(args.repeat):
            reset_leads(existing)
            print(f"ours (manage.py crm_import leads FILE), run {attempt + 1}:")
            with WalMeter() as wal:
                runs.append(run_ours(path))
            print(
                f"    {runs[-1][0]:.2f} s, peak {runs[-1][1]} MB, WAL {wal.mb:.0f} MB; "
                f"{check_result(args.rows, existing)}"
            )
            reset_leads(existing)
            print(f"raw PostgreSQL COPY of the same rows, resolved beforehand, run {attempt + 1}:")
            with WalMeter() as wal:
                copies.append((run_copy(path), None))
            print(f"    {copies[-1][0]:.2f} s, WAL {wal.mb:.0f} MB; {check_result(args.rows, existing)}")
            pair_ratios.append(runs[-1][0] / copies[-1][0])
        results["ours"] = summarise(runs)
        results["copy"] = summarise(copies)

        if not args.skip_stock:
            reset_leads(existing)
            print("stock django-import-export ModelResource (use_bulk, batch_size=1000, skip_diff):")
            # Stock finds each row's lead with email = %s; the model indexes lower(email) only, so give
            # it a plain index for this run (its best case) rather than a sequential scan per row.
            with connection.cursor() as cursor:
                cursor.execute("CREATE INDEX IF NOT EXISTS bench_stock_lead_email ON crm_lead (email)")
            try:
                seconds, peak = run_stock(path)
            finally:
                with connection.cursor() as cursor:
                    cursor.execute("DROP INDEX IF EXISTS bench_stock_lead_email")
            print(f"    {check_result(args.rows, existing)} (bulk mode writes no many-to-many: no tags)")
            results["stock"] = (seconds, seconds, peak)

    print()
    print(f"{'run':<8}{'best s':>9}{'median s':>10}{'best rows/s':>13}{'median rows/s':>15}{'peak MB':>9}")
    for name, (best, median, peak) in results.items():
        print(
            f"{name:<8}{best:>9.2f}{median:>10.2f}{args.rows / best:>13,.0f}{args.rows / median:>15,.0f}"
            f"{(peak or 0):>9}"
        )
    ours = results["ours"]
    if "stock" in results:
        stock = results["stock"][0]
        print(f"ours is {stock / ours[0]:.1f}x (best) / {stock / ours[1]:.1f}x (median) the stock resource")
    copy = results["copy"]
    print(f"ours takes {ours[0] / copy[0]:.2f}x (best) / {ours[1] / copy[1]:.2f}x (median) the time of COPY")
    print(
        f"ours / COPY run pair by pair: {', '.join(f'{r:.2f}' for r in pair_ratios)}"
        f" (median {statistics.median(pair_ratios):.2f})"
    )
    print(
        json.dumps(
            {
                name: {"best_s": round(b, 2), "median_s": round(m, 2), "peak_mb": p}
                for name, (b, m, p) in results.items()
            }
        )
    )


def create_database(url: str) -> None:
    """Create the benchmark's database when it does not exist yet (a fresh machine)."""
    import psycopg

    name = url.rstrip("/").rsplit("/", 1)[1].split("?")[0]
    server = url.rstrip("/").rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(server, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


class WalMeter:
    """Megabytes of write-ahead log a run makes: what the database had to write, whatever the load
    of the machine (a steadier measure of work than seconds on a shared disk)."""

    def __enter__(self):
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_current_wal_lsn()")
            self.start = cursor.fetchone()[0]
        return self

    def __exit__(self, *exc):
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s)", [self.start])
            self.mb = float(cursor.fetchone()[0]) / 1e6


def summarise(runs: list[tuple[float, int | None]]) -> tuple[float, float, int | None]:
    """(best seconds, median seconds, highest peak MB) of repeated runs on a shared machine."""
    seconds = sorted(s for s, _ in runs)
    peaks = [p for _, p in runs if p is not None]
    return seconds[0], statistics.median(seconds), max(peaks) if peaks else None


if __name__ == "__main__":
    main()
