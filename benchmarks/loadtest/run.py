"""Load test: gunicorn on loopback with 1, 2 and 4 workers, driven by locust (headless, time-bounded).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/crm_copy \\
        .venv/bin/python benchmarks/loadtest/run.py --workers 1 2 4 --run-time 60

The load test WRITES (leads, activities, conversions, imports, stage moves): point it at a copy of a
seeded database (``createdb -T crm_full crm_copy``), never at one people use. It

1. prepares the plan: ``--reps`` seeded sales reps (users of the "Sales Rep" role that own leads), each
   with an API token (made if missing), some of their open leads and open deals, the open stages of
   each pipeline and search words from their leads' contact names (``<out>/plan.json``);
2. for each worker count starts ``gunicorn crm_project.wsgi`` on 127.0.0.1 as production runs it
   (DEBUG off, the throttles' counters and the broker in Redis, behind a TLS proxy: the requests say
   ``X-Forwarded-Proto: https``), waits for ``/healthz``, runs locust headless for ``--run-time``
   seconds with one simulated user per rep (``--reps``), samples the database's connections
   (``pg_stat_activity``) every second and measures the CPU time gunicorn, the database's backends
   and locust spent in the run (``CpuMeter``), then stops gunicorn;
3. prints a markdown table per worker count (throughput, p50/p95/p99 per request type, failures,
   connections, CPU per request, load average) and writes the numbers to ``<out>/results.json``.

No Celery worker runs: what the writes queue for the background (webhook relay and the like) waits in
Redis, as it would for workers on other machines; ``--redis-db`` is flushed afterwards.
"""

import argparse
import csv
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOCUSTFILE = Path(__file__).with_name("locustfile.py")
BIN = Path(sys.executable).parent


def prepare_plan(reps: int, leads_per_rep: int, deals_per_rep: int) -> dict:
    """Reps with tokens, their open leads and deals, each pipeline's open stages, search words."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crm_project.settings")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    from crm.models import Lead, Stage
    from sales.models import Opportunity

    users = list(
        get_user_model()
        .objects.filter(is_active=True, is_superuser=False, groups__name="Sales Rep")
        .order_by("id")[:reps]
    )
    if len(users) < reps:
        raise SystemExit(f"Only {len(users)} active Sales Reps in this database; seed it (crm_seed) first.")
    open_stages: dict[int, list[int]] = {}
    for stage in Stage.objects.filter(is_won=False, is_lost=False, pipeline__is_active=True).order_by(
        "pipeline_id", "sequence"
    ):
        open_stages.setdefault(stage.pipeline_id, []).append(stage.pk)
    plan = []
    for user in users:
        token, _ = Token.objects.get_or_create(user=user)
        leads = list(
            Lead.objects.filter(owner=user, status="open")
            .order_by("-id")
            .values_list("id", "contact_name")[:leads_per_rep]
        )
        deals = list(
            Opportunity.objects.filter(owner=user, status="open", pipeline_id__in=open_stages)
            .order_by("-id")
            .values_list("id", "pipeline_id")[:deals_per_rep]
        )
        words = sorted({name.split()[-1] for _id, name in leads if name and name.split()})[:10]
        if not leads or not deals or not words:
            raise SystemExit(f"Rep {user.username} owns no open lead or deal: seed a larger database.")
        plan.append(
            {
                "user_id": user.pk,
                "username": user.username,
                "token": token.key,
                "open_leads": [lead_id for lead_id, _name in leads],
                "open_deals": deals,
                "open_stages": {str(pipeline): ids for pipeline, ids in open_stages.items()},
                "search": words,
            }
        )
    return {"reps": plan}


class ConnectionSampler(threading.Thread):
    """Counts the target database's connections (pg_stat_activity) every second, from the postgres DB."""

    def __init__(self, database_url: str, dbname: str):
        super().__init__(daemon=True)
        import psycopg

        self.connection = psycopg.connect(database_url.rsplit("/", 1)[0] + "/postgres", autocommit=True)
        self.dbname = dbname
        self.samples: list[tuple[int, int]] = []
        self.stopping = threading.Event()
        self.lock = threading.Lock()

    def query(self, sql: str, params: list) -> list[tuple]:
        with self.lock:
            return self.connection.execute(sql, params).fetchall()

    def run(self):
        while not self.stopping.wait(1.0):
            ((total, active),) = self.query(
                "SELECT count(*), count(*) FILTER (WHERE state = 'active') FROM pg_stat_activity "
                "WHERE datname = %s",
                [self.dbname],
            )
            self.samples.append((total, active))

    def stop(self) -> dict:
        self.stopping.set()
        self.join()
        self.connection.close()
        totals = [total for total, _ in self.samples] or [0]
        actives = [active for _, active in self.samples] or [0]
        return {
            "max": max(totals),
            "median": statistics.median(totals),
            "max_active": max(actives),
            "median_active": statistics.median(actives),
        }


class CpuMeter:
    """CPU seconds (user + system) spent during the measured run by gunicorn (the master and its
    workers), by the PostgreSQL backends serving the target database, and by locust: where the two
    cores went. A backend that connects during the run counts whole; one that leaves before its end is
    missed (the import's writer connection, if it closes). Locust's count includes its own start-up
    (about a second)."""

    def __init__(self, gunicorn_pid: int, sampler: ConnectionSampler):
        import psutil

        self.psutil = psutil
        self.gunicorn_pid = gunicorn_pid
        self.sampler = sampler
        self.started = self._snapshot()

    def _backends(self) -> list[int]:
        rows = self.sampler.query(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s", [self.sampler.dbname]
        )
        return [pid for (pid,) in rows]

    def _gunicorn(self) -> list[int]:
        try:
            master = self.psutil.Process(self.gunicorn_pid)
            return [master.pid, *(child.pid for child in master.children(recursive=True))]
        except self.psutil.NoSuchProcess:
            return []

    def _seconds(self, pids) -> dict[int, float]:
        found = {}
        for pid in pids:
            try:
                times = self.psutil.Process(pid).cpu_times()
            except (self.psutil.NoSuchProcess, self.psutil.AccessDenied):
                continue
            found[pid] = times.user + times.system
        return found

    def _snapshot(self) -> dict:
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return {
            "gunicorn": self._seconds(self._gunicorn()),
            "postgres": self._seconds(self._backends()),
            "children": children.ru_utime + children.ru_stime,
        }

    def stop(self, seconds: float) -> dict:
        ended = self._snapshot()

        def spent(kind):
            before = self.started[kind]
            return sum(now - before.get(pid, 0.0) for pid, now in ended[kind].items())

        return {
            "gunicorn": round(spent("gunicorn"), 1),
            "postgres": round(spent("postgres"), 1),
            # locust ran and ended between the two snapshots; gunicorn, a child too, is not reaped yet
            "locust": round(ended["children"] - self.started["children"], 1),
            "available": round(seconds * (os.cpu_count() or 1), 1),
        }


def server_env(args) -> dict:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=args.database_url,
        DEBUG="false",
        SECRET_KEY=env.get("SECRET_KEY") or "loadtest-" + "x" * 50,
        ALLOWED_HOSTS="127.0.0.1,localhost",
        USE_X_FORWARDED_PROTO="true",
        CACHE_URL=f"redis://127.0.0.1:6379/{args.redis_db}",
        CELERY_BROKER_URL=f"redis://127.0.0.1:6379/{args.redis_db}",
        CRM_EMBEDDED_SCHEDULER="false",
        CONN_MAX_AGE="600",
        LOG_LEVEL="WARNING",
    )
    return env


def wait_until_up(port: int, seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/healthz", headers={"X-Forwarded-Proto": "https"}
    )
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    raise SystemExit(f"gunicorn did not answer /healthz on port {port} within {seconds:.0f} s")


def read_stats(prefix: Path) -> list[dict]:
    with open(f"{prefix}_stats.csv", newline="") as handle:
        return [
            {
                "name": row["Name"] if row["Type"] else "all requests",
                "requests": int(row["Request Count"]),
                "failures": int(row["Failure Count"]),
                "rps": float(row["Requests/s"]),
                "p50": float(row["50%"] or 0),
                "p95": float(row["95%"] or 0),
                "p99": float(row["99%"] or 0),
            }
            for row in csv.DictReader(handle)
        ]


def read_failures(prefix: Path) -> list[dict]:
    path = Path(f"{prefix}_failures.csv")
    if not path.exists():
        return []
    with open(path, newline="") as handle:
        return [
            {"name": row["Name"], "error": row["Error"], "count": int(row["Occurrences"])}
            for row in csv.DictReader(handle)
        ]


def locust(args, port: int, seconds: int, prefix: Path, log: Path, phase: int) -> None:
    with open(log, "w") as output:
        subprocess.run(
            [
                str(BIN / "locust"),
                "-f",
                str(LOCUSTFILE),
                "--headless",
                "--users",
                str(args.reps),
                "--spawn-rate",
                str(args.spawn_rate),
                "--run-time",
                f"{seconds}s",
                "--stop-timeout",
                "30",
                "--host",
                f"http://127.0.0.1:{port}",
                "--csv",
                str(prefix),
                "--only-summary",
                "--loglevel",
                "WARNING",
            ],
            cwd=ROOT,
            env={
                **os.environ,
                "LOADTEST_PLAN": str(args.out / "plan.json"),
                "LOADTEST_PHASE": f"{phase}/{2 * len(args.workers)}",
                "LOADTEST_WAIT_MIN": str(args.wait_min),
                "LOADTEST_WAIT_MAX": str(args.wait_max),
            },
            stdout=output,
            stderr=subprocess.STDOUT,
            check=False,
        )


def run_one(args, n: int, port: int, env: dict, out: Path) -> dict:
    workers = args.workers[n]
    gunicorn_log = open(out / f"gunicorn-{workers}.log", "w")  # noqa: SIM115 (closed below)
    gunicorn = subprocess.Popen(
        [
            str(BIN / "gunicorn"),
            "crm_project.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--timeout",
            "120",
        ],
        cwd=ROOT,
        env=env,
        stdout=gunicorn_log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until_up(port)
        # Each worker loads the views, the URLconf and the database's connection on its first
        # requests (seconds): a short run, not measured, warms them all before the measured one.
        locust(args, port, args.warm_up, out / f"warm-up-{workers}", out / f"warm-up-{workers}.log", 2 * n)
        dbname = args.database_url.rsplit("/", 1)[1].split("?")[0]
        sampler = ConnectionSampler(args.database_url, dbname)
        load_before = os.getloadavg()
        prefix = out / f"workers-{workers}"
        sampler.start()
        cpu = CpuMeter(gunicorn.pid, sampler)
        started = time.monotonic()
        locust(args, port, args.run_time, prefix, out / f"locust-{workers}.log", 2 * n + 1)
        seconds = time.monotonic() - started
        cpu_seconds = cpu.stop(seconds)
        connections = sampler.stop()
        load_after = os.getloadavg()
    finally:
        gunicorn.send_signal(signal.SIGTERM)
        try:
            gunicorn.wait(timeout=60)
        except subprocess.TimeoutExpired:
            gunicorn.kill()
        gunicorn_log.close()
    return {
        "workers": workers,
        "reps": args.reps,
        "seconds": round(seconds, 1),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in load_after],
        "connections": connections,
        "cpu_seconds": cpu_seconds,
        "stats": read_stats(prefix),
        "failures": read_failures(prefix),
    }


def cpu_line(cpu: dict, requests: int) -> str:
    """Where the cores went during the measured run, in seconds and per request."""
    each = max(requests, 1)
    parts = [
        f"{label} {cpu[key]:.1f} s ({1000 * cpu[key] / each:.1f} ms a request)"
        for key, label in (("gunicorn", "gunicorn"), ("postgres", "PostgreSQL"), ("locust", "locust"))
    ]
    used = cpu["gunicorn"] + cpu["postgres"] + cpu["locust"]
    return (
        f"CPU in the measured run: {', '.join(parts)}; {used:.0f} of the {cpu['available']:.0f} s "
        "the cores had."
    )


def markdown(result: dict) -> str:
    total = next(row for row in result["stats"] if row["name"] == "all requests")
    c = result["connections"]
    lines = [
        f"### {result['workers']} gunicorn worker(s), {result['reps']} simulated reps, "
        f"{result['seconds']:.0f} s",
        "",
        f"Throughput **{total['rps']:.1f} requests/s**, p50/p95/p99 "
        f"**{total['p50']:.0f} / {total['p95']:.0f} / {total['p99']:.0f} ms**, "
        f"{total['requests']:,} requests, **{total['failures']} errors**; database "
        f"connections max {c['max']} (median {c['median']:.0f}; active at once max {c['max_active']}); load "
        f"average before {' '.join(map(str, result['load_before']))}, after "
        f"{' '.join(map(str, result['load_after']))}.",
        "",
        cpu_line(result["cpu_seconds"], total["requests"]),
        "",
        "| request type | requests | req/s | p50 ms | p95 ms | p99 ms | errors |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in result["stats"]:
        name = f"**{row['name']}**" if row["name"] == "all requests" else f"`{row['name']}`"
        lines.append(
            f"| {name} | {row['requests']:,} | {row['rps']:.1f} | {row['p50']:.0f} | {row['p95']:.0f} | "
            f"{row['p99']:.0f} | {row['failures']} |"
        )
    for failure in result["failures"]:
        lines.append(f"\nError: {failure['count']} × `{failure['name']}`: {failure['error'][:300]}")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL", ""))
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--reps", type=int, default=50, help="simulated users, each its own rep (default 50)")
    parser.add_argument("--run-time", type=int, default=60, help="seconds of load per worker count")
    parser.add_argument("--warm-up", type=int, default=15, help="seconds of unmeasured load first")
    parser.add_argument("--spawn-rate", type=float, default=10, help="users started per second")
    parser.add_argument("--wait-min", type=float, default=0.5, help="a rep's least pause between requests, s")
    parser.add_argument(
        "--wait-max", type=float, default=1.5, help="a rep's longest pause between requests, s"
    )
    parser.add_argument("--leads-per-rep", type=int, default=300)
    parser.add_argument("--deals-per-rep", type=int, default=100)
    parser.add_argument("--port", type=int, default=8791)
    parser.add_argument("--redis-db", type=int, default=int(os.environ.get("CRM_TEST_REDIS_DB", "15")))
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "loadtest")
    args = parser.parse_args(argv)
    if not args.database_url.startswith("postgres"):
        raise SystemExit("Give --database-url (or DATABASE_URL) of a PostgreSQL copy of a seeded database.")
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ["DATABASE_URL"] = args.database_url
    plan = prepare_plan(args.reps, args.leads_per_rep, args.deals_per_rep)
    (args.out / "plan.json").write_text(json.dumps(plan))
    env = server_env(args)
    results = []
    try:
        for n in range(len(args.workers)):
            result = run_one(args, n, args.port + n, env, args.out)
            results.append(result)
            print(markdown(result), flush=True)
            (args.out / "results.json").write_text(json.dumps(results, indent=1))
    finally:
        import redis

        redis.Redis(host="127.0.0.1", port=6379, db=args.redis_db).flushdb()


if __name__ == "__main__":
    main()
