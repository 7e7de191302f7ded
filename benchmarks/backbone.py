"""Benchmark: the backbone's costs, on PostgreSQL with Redis and real Celery workers.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/crm_backbone_bench \\
        .venv/bin/python benchmarks/backbone.py [--updates 300] [--events 1500] [--rate 100] \\
        [--seconds 10] [--writers 4] [--subscriptions 2] [--pool solo --slots 1] [--redis-db 12]

The database is migrated first (a fresh one is fine). To measure another checkout's code with this
script (a baseline in the same run), set CRM_BENCH_ROOT to it and run that checkout's Python:

    CRM_BENCH_ROOT=/path/to/main DATABASE_URL=... /path/to/main/.venv/bin/python benchmarks/backbone.py

Measures:

1. the outbox's cost on a write — ``lead_update`` (a name change) timed with events on and off, in
   turns (one with, one without, again), p50 and p95; the baseline is the same call with
   CRM_EVENTS_ENABLED off. With events on, the call writes the outbox row and sends the relay's task to
   Redis after commit, as a web process does;
2. webhook delivery throughput — ``--events`` lead updates written with no worker running, one
   subscription; then two worker processes start and the receiver (``http.server`` on loopback, in
   this process) counts deliveries per second from the first to the last. Baseline: the same number of
   signed POSTs sent by two plain processes (no Celery, no database): what loopback and the receiver
   allow;
3. commit to received — with the two workers running, lead updates written at ``--rate`` per second
   by ``--writers`` threads for ``--seconds``, each event sent to ``--subscriptions`` subscriptions;
   for each delivery, the time from the write's commit to the receiver getting it, p50 and p95.

The receiver is an ``http.server`` in a process of its own that logs each request's ``webhook-id``
and arrival time (CLOCK_MONOTONIC, the same clock in every process).

Redis database 12 (``--redis-db``) is used and emptied. Not a test: numbers go to
benchmarks/BENCHMARKS.md.
"""

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(os.environ.get("CRM_BENCH_ROOT") or Path(__file__).resolve().parent.parent)
sys.path.insert(0, str(ROOT))
_REDIS_DB = sys.argv[sys.argv.index("--redis-db") + 1] if "--redis-db" in sys.argv else "12"
REDIS_URL = f"redis://127.0.0.1:6379/{_REDIS_DB}"
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crm_project.settings")
os.environ.setdefault("SECRET_KEY", "benchmark-only-secret-key")
os.environ.setdefault("LOG_LEVEL", "WARNING")
os.environ["CELERY_BROKER_URL"] = REDIS_URL
os.environ["WEBHOOK_ALLOWED_PRIVATE_TARGETS"] = "127.0.0.1"


def _receive(port_file: str, log_file: str) -> None:
    """A loopback webhook receiver in its own process: one "<webhook-id> <monotonic time>" line each."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    log = open(log_file, "a", buffering=1)  # noqa: SIM115 (the process's lifetime)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with lock:
                log.write(f"{self.headers.get('webhook-id')} {time.monotonic()}\n")
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    Path(port_file).write_text(str(server.server_address[1]))
    server.serve_forever()


class Receiver:
    def __init__(self):
        import multiprocessing
        import tempfile

        folder = Path(tempfile.mkdtemp(prefix="crm-bench-"))
        self.log, port_file = folder / "received.log", folder / "port"
        self.log.touch()
        self.process = multiprocessing.get_context("fork").Process(
            target=_receive, args=(str(port_file), str(self.log)), daemon=True
        )
        self.process.start()
        while not port_file.exists() or not port_file.read_text():
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{port_file.read_text()}/hook"

    def received(self) -> list[tuple[str, float]]:
        lines = self.log.read_text().splitlines()
        return [(line.split()[0], float(line.split()[1])) for line in lines if len(line.split()) == 2]

    def clear(self) -> None:
        self.log.write_text("")

    def wait_for(self, count: int, timeout: float) -> list[tuple[str, float]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            received = self.received()
            if len(received) >= count:
                return received
            time.sleep(0.1)
        raise SystemExit(f"only {len(self.received())} of {count} webhooks arrived")

    def stop(self) -> None:
        self.process.terminate()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def start_workers(count: int, pool: str = "solo", slots: int = 1) -> list[subprocess.Popen]:
    env = {**os.environ, "CONN_MAX_AGE": "600", "CELERY_WORKER_PREFETCH_MULTIPLIER": "8"}
    workers = []
    for n in range(count):
        log = open(f"/tmp/crm-bench-worker-{n}.log", "wb")  # noqa: SIM115 (lives as long as the worker)
        workers.append(
            subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "crm_project", "worker",
                 f"--pool={pool}", f"--concurrency={slots}", "--loglevel=WARNING",
                 "--without-gossip", "--without-mingle", "--without-heartbeat",
                 "-n", f"bench{n}@%h"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        )  # fmt: skip
    return workers


def stop_workers(workers) -> None:
    import signal

    for worker in workers:
        os.killpg(worker.pid, signal.SIGTERM)
    for worker in workers:
        worker.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--updates", type=int, default=300)
    parser.add_argument("--events", type=int, default=1500)
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--subscriptions", type=int, default=2)
    parser.add_argument("--pool", default="solo", help="the workers' pool: solo, threads, prefork")
    parser.add_argument("--slots", type=int, default=1, help="tasks at once per worker process")
    parser.add_argument("--redis-db", type=int, default=12, help="the Redis database (emptied)")
    parser.add_argument("--writes-only", action="store_true", help="measure the write cost (1.) only")
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        raise SystemExit("Set DATABASE_URL to a PostgreSQL database.")

    import django

    django.setup()
    import redis
    from django.conf import settings
    from django.core.management import call_command

    from crm import services
    from crm.actors import SYSTEM
    from crm.models import OutboxEvent, Pipeline, WebhookAttempt, WebhookDelivery, WebhookSubscription
    from crm.webhooks.services import webhook_subscription_create

    call_command("migrate", verbosity=0)
    redis.Redis.from_url(REDIS_URL).flushdb()
    if not Pipeline.objects.exists():
        pipeline = services.pipeline_create(user=SYSTEM, data={"name": "Bench", "is_default": True})
        services.stage_create(user=SYSTEM, data={"pipeline": pipeline, "name": "New", "sequence": 0})
    WebhookAttempt.objects.all().delete()
    WebhookDelivery.objects.all().delete()
    WebhookSubscription.objects.all().delete()
    OutboxEvent.objects.all().delete()
    leads = [services.lead_create(user=SYSTEM, data={"name": f"Bench {n}"}) for n in range(20)]
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    print(f"# code: {ROOT} at {commit}; workers --pool {args.pool} --slots {args.slots}")
    print(f"# load average before: {load()}")

    # 1. the outbox's cost on a write
    timings: dict[bool, list[float]] = {True: [], False: []}
    for n in range(args.updates):
        for enabled in (True, False):
            settings.CRM_EVENTS_ENABLED = enabled
            lead = leads[n % len(leads)]
            started = time.perf_counter()
            services.lead_update(lead=lead, user=SYSTEM, data={"name": f"Bench {n} {enabled}"})
            timings[enabled].append((time.perf_counter() - started) * 1000)
    settings.CRM_EVENTS_ENABLED = True
    on, off = (statistics.median(timings[True][10:]), statistics.median(timings[False][10:]))
    if args.writes_only:
        print(f"write cost: on {on:.2f} ms, off {off:.2f} ms, ratio **{on / off:.2f}x**; load {load()}")
        return
    print("\n## lead update, events on vs off")
    print("| | p50 | p95 |\n|---|---:|---:|")
    print(f"| events off (baseline) | {off:.2f} ms | {percentile(timings[False][10:], 0.95):.2f} ms |")
    print(f"| events on | {on:.2f} ms | {percentile(timings[True][10:], 0.95):.2f} ms |")
    print(f"ratio p50 on/off: **{on / off:.2f}x** ({args.updates} updates each, first 10 left out)")

    # 2. throughput with a backlog
    receiver = Receiver()
    OutboxEvent.objects.all().delete()
    redis.Redis.from_url(REDIS_URL).flushdb()
    webhook_subscription_create(user=SYSTEM, data={"target_url": receiver.url, "event_types": ["lead.*"]})
    for n in range(args.events):
        services.lead_update(lead=leads[n % len(leads)], user=SYSTEM, data={"name": f"Backlog {n}"})
    workers = start_workers(2, args.pool, args.slots)
    try:
        received = receiver.wait_for(args.events, timeout=600)
        times = sorted(at for _, at in received)
        rate = (args.events - 1) / (times[args.events - 1] - times[0])
        duplicates = len(received) - len({webhook_id for webhook_id, _ in received})
        receiver.clear()
        baseline = baseline_posts(receiver.url, args.events)
        print("\n## webhook delivery throughput, 2 worker processes, loopback receiver")
        print("| | deliveries/s |\n|---|---:|")
        print(f"| plain signed POSTs from 2 processes (baseline) | {baseline:.0f} |")
        print(f"| Celery workers: relay + claim + signed POST + log | {rate:.0f} |")
        print(f"{args.events} events, {duplicates} sent twice")

        # 3. commit to received under load, from several writer threads (each its own connection);
        # every event goes to --subscriptions subscriptions, so deliveries/s = writes/s x subscriptions.
        time.sleep(1)
        for _ in range(args.subscriptions - 1):
            webhook_subscription_create(user=SYSTEM, data={"target_url": receiver.url, "event_types": ["*"]})
        receiver.clear()
        committed: dict[str, float] = {}
        lock = threading.Lock()
        started = time.monotonic()
        per_writer = args.rate / args.writers

        def write(index: int) -> None:
            from django.db import connection

            n = 0
            while time.monotonic() - started < args.seconds:
                lead = leads[(n * args.writers + index) % len(leads)]
                lead = services.lead_update(lead=lead, user=SYSTEM, data={"name": f"Load {index} {n}"})
                committed_at = time.monotonic()
                event_id = (
                    OutboxEvent.objects.filter(record_id=lead.pk)
                    .order_by("-id")
                    .values_list("event_id", flat=True)[0]
                )
                with lock:
                    committed[f"msg_{event_id.hex}"] = committed_at
                n += 1
                time.sleep(max(0.0, started + n / per_writer - time.monotonic()))
            connection.close()

        threads = [threading.Thread(target=write, args=(i,)) for i in range(args.writers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        written_rate = len(committed) / (time.monotonic() - started)
        received = receiver.wait_for(len(committed) * args.subscriptions, timeout=120)
        latencies = [(at - committed[wid]) * 1000 for wid, at in received if wid in committed]
        print(
            f"\n## commit to received: {written_rate:.0f} writes/s ({args.writers} writer threads) x "
            f"{args.subscriptions} subscriptions = {written_rate * args.subscriptions:.0f} deliveries/s "
            f"for {args.seconds:g} s, 2 workers"
        )
        print("| p50 | p95 | max |\n|---:|---:|---:|")
        print(
            f"| {percentile(latencies, 0.5):.0f} ms | {percentile(latencies, 0.95):.0f} ms "
            f"| {max(latencies):.0f} ms |"
        )
    finally:
        stop_workers(workers)
        receiver.stop()
    print(f"\n# load average after: {load()}")


def _post_many(url: str, count: int, results, index: int) -> None:
    import http.client
    from urllib.parse import urlsplit

    from crm.webhooks import signing

    parts = urlsplit(url)
    secret = signing.secret_new()
    body = b'{"type":"lead.updated","record":{"id":1}}'
    for n in range(count):
        headers = signing.headers(
            secret=secret, webhook_id=f"msg_base{index}_{n}", timestamp=int(time.time()), body=body
        )
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
        conn.request("POST", parts.path, body=body, headers={"Content-Type": "application/json", **headers})
        conn.getresponse().read()
        conn.close()
    results[index] = count


def baseline_posts(url: str, count: int) -> float:
    """Signed POSTs from two plain processes (fork), one connection per POST as the workers do."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    results = context.Manager().dict()
    processes = [context.Process(target=_post_many, args=(url, count // 2, results, i)) for i in range(2)]
    started = time.monotonic()
    for process in processes:
        process.start()
    for process in processes:
        process.join()
    return sum(results.values()) / (time.monotonic() - started)


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    main()
