"""The load test's request types replayed in one process: what each costs in Python and in PostgreSQL.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/crm_copy \\
        .venv/bin/python benchmarks/loadtest/in_process.py [--n 40] [--only kanban,list] [--profile out.prof]

The load test (``run.py``) gives throughput and latency under load, where every figure depends on
everything else running; this gives each request type's own cost, to find where a request's CPU goes
and to compare two versions of the code on the same database. It WRITES like the load test (leads,
activities, conversions, imports, stage moves): point it at a copy of a seeded database.

It prepares the load test's plan (``run.prepare_plan``: the first ``--reps`` sales reps, their API
tokens, open leads and deals), sets Django up as the WSGI entry point does, and sends each request
type ``--n`` times after 3 untimed, through Django's test client with the reps' tokens, taking turns
among the reps. Per type it prints the process's CPU time a request (least and median: the machine is
shared), the CPU time its PostgreSQL backend spent (``/proc/<pid>/stat``, so PostgreSQL on this
machine) and the statements a request; then the medians weighted by the load test's mix
(``locustfile.READS`` and ``WRITES``, read from its text). ``--profile`` writes a cProfile of the
timed requests. ``--calls`` sends each type ``--n`` times more under cProfile and prints the Python
function calls a request: unlike the times, a count the machine's load does not move, to compare two
versions of the code on a shared machine.
"""

import argparse
import ast
import cProfile
import csv
import io
import json
import os
import pstats
import random
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

API = "/api/v1/crm"
IMPORT_ROWS = 100


class Rep:
    """One rep of the plan: an API client with their token, their open leads and deals."""

    def __init__(self, plan: dict):
        from django.test import Client

        self.plan = plan
        self.client = Client(
            HTTP_AUTHORIZATION=f"Token {plan['token']}",
            HTTP_X_FORWARDED_PROTO="https",
            HTTP_ACCEPT="application/json",
        )
        self.leads = list(plan["open_leads"])
        self.to_convert = random.sample(self.leads, len(self.leads))
        self.deals = [tuple(deal) for deal in plan["open_deals"]]
        self.stages = {int(pipeline): ids for pipeline, ids in plan["open_stages"].items()}

    def get(self, url: str):
        return self.client.get(url)

    def post(self, url: str, body: dict):
        return self.client.post(url, data=json.dumps(body), content_type="application/json")


# The locustfile's requests, with the same bodies (its task names are the keys of READS and WRITES).


def lead_list(rep):
    return rep.get(f"{API}/leads/?status=open&owner={rep.plan['user_id']}")


def opportunity_list(rep):
    return rep.get(f"{API}/opportunities/?status=open")


def lead_kanban(rep):
    return rep.get(f"{API}/leads/kanban/?owner={rep.plan['user_id']}")


def opportunity_kanban(rep):
    return rep.get(f"{API}/opportunities/kanban/")


def lead_detail(rep):
    return rep.get(f"{API}/leads/{random.choice(rep.leads)}/")


def opportunity_detail(rep):
    return rep.get(f"{API}/opportunities/{random.choice(rep.deals)[0]}/")


def lead_search(rep):
    return rep.get(f"{API}/leads/?search={random.choice(rep.plan['search'])}")


def dashboard(rep):
    return rep.get(f"{API}/dashboard/")


def lead_create(rep):
    tag = uuid.uuid4().hex[:12]
    response = rep.post(
        f"{API}/leads/",
        {
            "name": f"Load test {tag} — inbound enquiry",
            "contact_name": f"Pat {tag}",
            "email": f"pat.{tag}@loadtest.example",
            "company_name": f"Loadtest {tag} Ltd",
            "priority": "medium",
            "source": "website",
            "expected_revenue": "12000.00",
            "owner_id": rep.plan["user_id"],
        },
    )
    if response.status_code == 201:
        rep.leads.append(response.json()["id"])
    return response


def activity_log(rep):
    return rep.post(
        f"{API}/activities/",
        {
            "subject": "Call: discussed next steps",
            "activity_type": "call",
            "status": "completed",
            "due_date": datetime.now(UTC).isoformat(),
            "lead_id": random.choice(rep.leads),
            "owner_id": rep.plan["user_id"],
        },
    )


def opportunity_move_stage(rep):
    deal_id, pipeline = random.choice(rep.deals)
    return rep.post(
        f"{API}/opportunities/{deal_id}/move-stage/", {"stage_id": random.choice(rep.stages[pipeline])}
    )


def lead_convert(rep):
    return rep.post(f"{API}/leads/{rep.to_convert.pop()}/convert/", {})


def lead_import_100(rep):
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["name", "contact_name", "email", "company_name", "priority", "source", "owner"])
    batch = uuid.uuid4().hex[:10]
    for n in range(IMPORT_ROWS):
        writer.writerow(
            [
                f"Trade show lead {batch}-{n}",
                f"Sam Visitor{n}",
                f"sam.{batch}.{n}@loadtest.example",
                f"Expo {batch} {n} GmbH",
                "low",
                "trade_show",
                rep.plan["username"],
            ]
        )
    upload = io.BytesIO(out.getvalue().encode())
    upload.name = f"expo-{batch}.csv"
    return rep.client.post(f"{API}/leads/import/", {"file": upload})


REQUESTS = {
    function.__name__: function
    for function in (
        lead_list,
        opportunity_list,
        lead_kanban,
        opportunity_kanban,
        lead_detail,
        opportunity_detail,
        lead_search,
        dashboard,
        lead_create,
        activity_log,
        opportunity_move_stage,
        lead_convert,
        lead_import_100,
    )
}


def mix_weights() -> dict[str, int]:
    """The locustfile's READS and WRITES, read from its text: importing it would import locust, which
    patches the standard library (sockets, threads) with gevent."""
    tree = ast.parse((HERE / "locustfile.py").read_text())
    found = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", "") for t in node.targets] in (
            ["READS"],
            ["WRITES"],
        ):
            found.update(ast.literal_eval(node.value))
    return found


def backend_cpu_seconds() -> float:
    """CPU time this process's PostgreSQL backend has spent (user + system)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=40, help="timed requests a type (default 40)")
    parser.add_argument("--reps", type=int, default=5, help="reps taking turns (default 5)")
    parser.add_argument("--only", default="", help="comma-separated parts of the type names to run")
    parser.add_argument("--profile", type=Path, default=None, help="write a cProfile of the timed requests")
    parser.add_argument(
        "--calls",
        action="store_true",
        help="also send each type --n times more under cProfile and print the Python function calls a "
        "request: a count that the machine's load does not change, to compare two versions of the code",
    )
    args = parser.parse_args(argv)

    from _harness import commit, database_summary, load, setup_django
    from run import prepare_plan

    setup_django()
    print(f"commit {commit()}; database {database_summary()}; load {load()}")
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    weights = mix_weights()
    assert set(weights) == set(REQUESTS), "the locustfile's request types and these differ"
    reps = [Rep(plan) for plan in prepare_plan(args.reps, 300, 100)["reps"]]
    wanted = [part for part in args.only.split(",") if part]
    profile = cProfile.Profile() if args.profile else None
    weighted = {"python": 0.0, "postgres": 0.0, "calls": 0.0, "weight": 0}
    print(
        f"{'request type':24} {'weight':>6} {'py min':>7} {'py med':>7} {'pg':>6} {'stmts':>6}"
        + (f" {'calls':>8}" if args.calls else "")
        + "  (ms a req.)"
    )
    for name, send in REQUESTS.items():
        if wanted and not any(part in name for part in wanted):
            continue
        for n in range(3):
            response = send(reps[n % len(reps)])
            if response.status_code >= 300:
                raise SystemExit(f"{name} answered {response.status_code}: {response.content[:300]!r}")
        times, statements = [], 0
        backend_before = backend_cpu_seconds()
        for n in range(args.n):
            started = time.process_time()
            if profile:
                profile.enable()
            with CaptureQueriesContext(connection) as queries:
                response = send(reps[n % len(reps)])
            if profile:
                profile.disable()
            times.append((time.process_time() - started) * 1000)
            statements += len(queries.captured_queries)
            if response.status_code >= 300:
                raise SystemExit(f"{name} answered {response.status_code}: {response.content[:300]!r}")
        postgres = (backend_cpu_seconds() - backend_before) * 1000 / args.n
        median = statistics.median(times)
        weighted["python"] += median * weights[name]
        weighted["postgres"] += postgres * weights[name]
        weighted["weight"] += weights[name]
        calls = ""
        if args.calls:
            counted = cProfile.Profile()
            for n in range(args.n):
                counted.enable()
                send(reps[n % len(reps)])
                counted.disable()
            per_request = pstats.Stats(counted).total_calls / args.n
            weighted["calls"] += per_request * weights[name]
            calls = f" {per_request:8,.0f}"
        print(
            f"{name:24} {weights[name]:>6} {min(times):7.1f} {median:7.1f} {postgres:6.1f} "
            f"{statements / args.n:6.1f}{calls}",
            flush=True,
        )
    if weighted["weight"]:
        total = weighted["weight"]
        print(
            f"weighted by the mix: Python {weighted['python'] / total:.1f} ms, "
            f"PostgreSQL {weighted['postgres'] / total:.1f} ms a request"
            + (f", {weighted['calls'] / total:,.0f} Python function calls" if args.calls else "")
        )
    if profile:
        profile.dump_stats(args.profile)


if __name__ == "__main__":
    main()
