"""Real components for the backbone's tests: a webhook receiver on loopback and Celery workers.

The receiver is an ``http.server`` in a thread; what it answers depends on the path:
``/ok`` 200, ``/fail`` 500, ``/slow?s=3`` waits first, ``/big`` a 10 MB answer,
``/redirect?to=<url>`` 307 there, ``/hang-first`` waits 30 s on its first request only,
``/ok-then-close`` 200 and then closes the connection without saying so in the answer.
``smtp_server`` is an aiosmtpd server on loopback that keeps the messages it receives.
Workers are ``celery -A crm_project worker`` processes against the test database and a Redis
database of the test run's own.
"""

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import redis
from django.db import connection

BASE_DIR = Path(__file__).resolve().parent.parent
# Each pytest-xdist process gets Redis databases of its own, REDIS_SLOTS of them from
# CRM_TEST_REDIS_DB (default 10): gw0 10-12, gw1 13-15. Two processes sharing one would consume each
# other's tasks and flush each other's queues; two runs at once (CI runs PostgreSQL and SQLite side by
# side) set bases REDIS_SLOTS x their number of processes apart. Redis has 16 databases (0-15).
_XDIST_INDEX = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
REDIS_SLOTS = 3


def test_redis_db(slot: int) -> int:
    """This process's Redis database number ``slot``: 0 the Celery broker, 1 the metrics test's, 2 the
    shared throttle cache's."""
    return (int(os.environ.get("CRM_TEST_REDIS_DB", "10")) + REDIS_SLOTS * _XDIST_INDEX + slot) % 16


test_redis_db.__test__ = False  # a helper, not a test
REDIS_DB = test_redis_db(0)
BROKER_URL = f"redis://127.0.0.1:6379/{REDIS_DB}"
CLOSED_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1: a broker that is down


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    client: tuple = ()  # the sender's (address, port): the same port for POSTs on one kept-alive connection


@dataclass
class Receiver:
    server: ThreadingHTTPServer
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    hung_once: bool = False

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def url(self, path: str = "/ok") -> str:
        return self.base + path

    def wait_for(self, count: int, timeout: float = 20.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.requests) >= count:
                    return list(self.requests)
            time.sleep(0.02)
        with self.lock:
            raise AssertionError(f"expected {count} webhook requests, got {len(self.requests)}")

    def ids(self) -> list[str]:
        with self.lock:
            return [r.headers["webhook-id"] for r in self.requests]


def receiver_start() -> Receiver:
    receiver: Receiver

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            parts = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            headers = {k.lower(): v for k, v in self.headers.items()}
            with receiver.lock:
                receiver.requests.append(
                    Received(parts.path, headers, body, time.monotonic(), tuple(self.client_address))
                )
                first_hang = parts.path == "/hang-first" and not receiver.hung_once
                if first_hang:
                    receiver.hung_once = True
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self._answer(parts.path, query, first_hang)

        def _send(self, status: int, body: bytes = b"ok", extra: dict | None = None):
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            for key, value in (extra or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        def _answer(self, path, query, first_hang):
            if path == "/ok-then-close":
                self._send(200)
                self.close_connection = True
                return None
            if path == "/fail":
                return self._send(500, b"boom")
            if path == "/slow":
                time.sleep(float(query.get("s", "3")))
                return self._send(200)
            if path == "/hang-first" and first_hang:
                time.sleep(30)
                return self._send(200)
            if path == "/redirect":
                return self._send(307, b"", {"Location": query["to"]})
            if path == "/big":
                size = 10 * 1024 * 1024
                self.send_response(200)
                self.send_header("Content-Length", str(size))
                self.end_headers()
                chunk = b"x" * 65536
                for _ in range(size // len(chunk)):
                    self.wfile.write(chunk)
                return None
            return self._send(200, b'{"received": true}')

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver = Receiver(server)
    # shutdown() waits for the loop's next look at its flag: every 0.05 s, not the default 0.5 s.
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return receiver


# --- SMTP server ---------------------------------------------------------------------------------


@dataclass
class SmtpServer:
    controller: object
    messages: list = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def port(self) -> int:
        return self.controller.port

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def received(self) -> list:
        with self.lock:
            return list(self.messages)

    def wait_for(self, count: int, timeout: float = 20.0) -> list:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.received()) >= count:
                return self.received()
            time.sleep(0.02)
        raise AssertionError(f"expected {count} emails, got {len(self.received())}")


def smtp_start() -> SmtpServer:
    import email
    import socket

    from aiosmtpd.controller import Controller

    server: SmtpServer

    class Handler:
        async def handle_DATA(self, smtp, session, envelope):
            message = email.message_from_bytes(envelope.content)
            with server.lock:
                server.messages.append(message)
            return "250 OK"

    with socket.socket() as probe:  # a free port on loopback
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    server = SmtpServer(controller)
    controller.start()
    return server


# --- Celery workers --------------------------------------------------------------------------------


def test_database_url() -> str:
    """The URL of the test database this process uses, for a worker process to share it."""
    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{settings['NAME']}"
    user, host, port = settings["USER"], settings["HOST"] or "127.0.0.1", settings["PORT"] or 5432
    password = f":{settings['PASSWORD']}" if settings["PASSWORD"] else ""
    return f"postgres://{user}{password}@{host}:{port}/{settings['NAME']}"


def redis_flush() -> None:
    redis.Redis.from_url(BROKER_URL).flushdb()


@dataclass
class Worker:
    process: subprocess.Popen
    log: Path

    def kill(self) -> None:
        """SIGKILL the worker and its pool processes at once: a crash, not a shutdown."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def worker_start(tmp_path: Path, *, concurrency: int = 1, ready_timeout: float = 60.0, **env) -> Worker:
    """Start ``celery -A crm_project worker`` and wait until it consumes."""
    log = tmp_path / f"worker-{time.monotonic_ns()}.log"
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "crm_project.settings",
        "DATABASE_URL": test_database_url(),
        "CELERY_BROKER_URL": BROKER_URL,
        "CONN_MAX_AGE": "0",
        "WEBHOOK_ALLOWED_PRIVATE_TARGETS": "127.0.0.1",
        "PYTHONPATH": str(BASE_DIR),
        **{key: str(value) for key, value in env.items()},
    }
    command = [
        sys.executable, "-m", "celery", "-A", "crm_project", "worker",
        "--pool=prefork", f"--concurrency={concurrency}", "--loglevel=INFO",
        "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            cwd=BASE_DIR,
            env=environment,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    worker = Worker(process, log)
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the worker exited:\n{worker.output()}")
        if " ready." in worker.output():
            return worker
        time.sleep(0.1)
    worker.kill()
    raise AssertionError(f"the worker did not start:\n{worker.output()}")


def celery_point_at(url: str) -> None:
    """Point this process's Celery app at another broker (closing the connections it holds)."""
    from kombu import pools

    from crm.events import dispatch
    from crm_project.celery import app

    pools.reset()  # kombu keeps a pool per broker URL: closes and forgets them all
    app._pool = None
    app.amqp._producer_pool = None
    app.conf.broker_url = url
    dispatch.broker_reset()


def wait_until(predicate, timeout: float = 20.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("timed out waiting")


# --- fixtures ----------------------------------------------------------------------------------------


@pytest.fixture
def broker(settings):
    """This process sends tasks to the test run's Redis database, emptied first."""
    redis_flush()
    settings.CELERY_BROKER_URL = BROKER_URL
    celery_point_at(BROKER_URL)
    yield settings
    celery_point_at(BROKER_URL)


@pytest.fixture
def start_worker(request, tmp_path, broker):
    """``start_worker(**env)`` starts a worker on the test broker (killed at the end of the test); in a
    test that uses ``smtp_server``, the worker's email goes to it."""
    workers = []

    def start(**env):
        if "smtp_server" in request.fixturenames:
            env.setdefault("EMAIL_URL", request.getfixturevalue("smtp_server").url)
        worker = worker_start(tmp_path, **env)
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.kill()


@pytest.fixture
def receiver():
    receiver = receiver_start()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


@pytest.fixture
def webhook_settings(settings):
    """Loopback targets allowed (the receiver), short timeouts: what the tests of webhooks need."""
    settings.WEBHOOK_ALLOWED_PRIVATE_TARGETS = ["127.0.0.1"]
    settings.WEBHOOK_TIMEOUT = 2.0
    settings.WEBHOOK_CONNECT_TIMEOUT = 2.0
    return settings


@pytest.fixture
def smtp_server(settings):
    """A real SMTP server on loopback; this process's email goes to it (a worker gets ``EMAIL_URL``)."""
    server = smtp_start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", server.port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    yield server
    server.controller.stop()


@pytest.fixture
def consumers():
    """Register event consumers for one test only."""
    from crm.events import registry

    before = list(registry._consumers)
    yield registry.register_consumer
    registry._consumers[:] = before
