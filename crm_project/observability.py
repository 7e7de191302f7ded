"""Metrics for Prometheus and a request id on every log line.

``GET /metrics`` (Prometheus' text format) answers only a caller with ``Authorization: Bearer
<CRM_METRICS_TOKEN>`` or from an address in ``CRM_METRICS_ALLOWED_IPS``; anyone else gets a 403, and
with neither setting the endpoint does not exist (404). It shows:

- ``crm_http_request_duration_seconds{view,method,status}``: request latency by view (the URL
  pattern's name, never the path: ids would make a series each; a method outside HTTP's usual seven
  is ``other``, for the same reason);
- ``crm_http_request_queries{view}``: database statements per request;
- ``crm_celery_queue_length{queue}``: tasks waiting in the broker (Redis ``LLEN`` of each queue);
- ``crm_celery_tasks_total{task,outcome}``: task outcomes (success, failure, retry), counted by the
  workers in Redis (a hash every process shares), or in this process when there is no broker;
- ``crm_outbox_lag_seconds`` and ``crm_outbox_pending``: the age of the oldest event not yet relayed
  and how many wait.

Several gunicorn workers: set ``PROMETHEUS_MULTIPROC_DIR`` to an empty folder (the client's
multiprocess mode), so whichever worker answers the scrape reports them all.

The request id: ``RequestIdMiddleware`` takes ``X-Request-ID`` from the request when it is sane (1-128
letters, digits, ``.``, ``_``, ``-``), else makes one, answers it in the same header and puts it in
every log record written while the request runs (``request_id=`` in the logfmt lines).
"""

import hmac
import logging
import os
import re
import time
import uuid

from django.conf import settings
from django.core.signals import request_finished
from django.db import connections
from django.http import Http404, HttpResponse, HttpResponseForbidden
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from crm_project.logging import RequestIdFilter, request_id_var

__all__ = ["MetricsMiddleware", "RequestIdFilter", "RequestIdMiddleware", "metrics_view"]

logger = logging.getLogger("crm.metrics")

_SANE_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")

REQUEST_LATENCY = Histogram(
    "crm_http_request_duration_seconds",
    "Request latency by view.",
    ["view", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
REQUEST_QUERIES = Histogram(
    "crm_http_request_queries",
    "Database statements per request, by view.",
    ["view"],
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500),
)
LOCAL_TASKS = Counter(
    "crm_celery_local_tasks", "Task outcomes in this process (no broker).", ["task", "outcome"]
)
TASKS_KEY = "crm:metrics:tasks"


class RequestIdMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        offered = request.headers.get("X-Request-ID", "")
        request_id = offered if _SANE_ID.match(offered) else uuid.uuid4().hex
        request.request_id = request_id
        # Left set until the response is finished (request_finished): Django logs a 4xx or 5xx
        # answer after the middleware has returned it, and that line carries the id too.
        request_id_var.set(request_id)
        response = self.get_response(request)
        response["X-Request-ID"] = request_id
        return response


def _request_finished(**kwargs) -> None:
    request_id_var.set("")


request_finished.connect(_request_finished, dispatch_uid="crm_request_id_finished")


class _QueryCounter:
    def __init__(self):
        self.count = 0

    def __call__(self, execute, sql, params, many, context):
        self.count += 1
        return execute(sql, params, many, context)


class MetricsMiddleware:
    """Times each request and counts its statements, labelled by the view's URL name."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        counter = _QueryCounter()
        started = time.perf_counter()
        wrapped = []
        for alias in connections:
            connection = connections[alias]
            connection.execute_wrappers.append(counter)
            wrapped.append(connection)
        try:
            response = self.get_response(request)
        finally:
            for connection in wrapped:
                if counter in connection.execute_wrappers:
                    connection.execute_wrappers.remove(counter)
        view = _view_name(request)
        if view != "metrics":
            method = request.method if request.method in _METHODS else "other"
            REQUEST_LATENCY.labels(view, method, str(response.status_code)).observe(
                time.perf_counter() - started
            )
            REQUEST_QUERIES.labels(view).observe(counter.count)
        return response


# Any token is a method to the server; labelled as sent, each would make a series of its own.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _view_name(request) -> str:
    match = getattr(request, "resolver_match", None)
    if match is None:
        return "unmatched"
    return match.view_name or match._func_path or "unnamed"


# --- task outcomes, counted where the task runs ---------------------------------------------------------


def _redis():
    from crm.events.dispatch import _redis as broker_redis

    return broker_redis()


def _broker_is_redis() -> bool:
    return bool(settings.CELERY_BROKER_URL) and settings.CELERY_BROKER_URL.startswith(
        ("redis://", "rediss://")
    )


def task_outcome(task_name: str, outcome: str) -> None:
    """Count one outcome of ``task_name`` (Celery's signals call it in every worker)."""
    if _broker_is_redis():
        try:
            _redis().hincrby(TASKS_KEY, f"{task_name}|{outcome}", 1)
            return
        except Exception:
            logger.warning("Broker unavailable: task outcome of %s not counted", task_name)
            return
    LOCAL_TASKS.labels(task_name, outcome).inc()


def connect_task_signals() -> None:
    from celery import signals

    def success(sender=None, **kwargs):
        task_outcome(getattr(sender, "name", str(sender)), "success")

    def failure(sender=None, **kwargs):
        task_outcome(getattr(sender, "name", str(sender)), "failure")

    def retry(sender=None, **kwargs):
        task_outcome(getattr(sender, "name", str(sender)), "retry")

    signals.task_success.connect(success, weak=False, dispatch_uid="crm_metrics_success")
    signals.task_failure.connect(failure, weak=False, dispatch_uid="crm_metrics_failure")
    signals.task_retry.connect(retry, weak=False, dispatch_uid="crm_metrics_retry")


# --- what is read at scrape time --------------------------------------------------------------------------


class BackboneCollector:
    """Celery queue lengths, task outcomes (from Redis) and the outbox's lag, read when scraped."""

    def describe(self):
        # The names, without reading anything (the registry asks at import, before Django is ready).
        yield GaugeMetricFamily("crm_outbox_lag_seconds", "")
        yield GaugeMetricFamily("crm_outbox_pending", "")
        yield GaugeMetricFamily("crm_celery_queue_length", "", labels=["queue"])
        yield CounterMetricFamily("crm_celery_tasks", "", labels=["task", "outcome"])

    def collect(self):
        from django.db.models import Min
        from django.utils import timezone

        from crm.models import OutboxEvent, OutboxStatus

        lag = GaugeMetricFamily(
            "crm_outbox_lag_seconds", "Age of the oldest event not relayed yet (0: none)."
        )
        pending = GaugeMetricFamily("crm_outbox_pending", "Events waiting for the relay.")
        try:
            row = OutboxEvent.objects.filter(status=OutboxStatus.PENDING).aggregate(
                oldest=Min("occurred_at"), count=models_count()
            )
            oldest = row["oldest"]
            lag.add_metric([], (timezone.now() - oldest).total_seconds() if oldest else 0.0)
            pending.add_metric([], row["count"] or 0)
        except Exception:
            logger.exception("Metrics: the outbox could not be read")
        yield lag
        yield pending
        if not _broker_is_redis():
            return
        queues = GaugeMetricFamily(
            "crm_celery_queue_length", "Tasks waiting in the broker.", labels=["queue"]
        )
        tasks = CounterMetricFamily(
            "crm_celery_tasks", "Task outcomes, every worker.", labels=["task", "outcome"]
        )
        try:
            client = _redis()
            for queue in _queue_names():
                queues.add_metric([queue], client.llen(queue))
            for key, value in sorted(client.hgetall(TASKS_KEY).items()):
                task, _, outcome = key.decode().rpartition("|")
                tasks.add_metric([task, outcome], int(value))
        except Exception:
            logger.warning("Metrics: the broker could not be read")
        yield queues
        yield tasks


def models_count():
    from django.db.models import Count

    return Count("id")


def _queue_names() -> list[str]:
    names = {settings.CELERY_TASK_DEFAULT_QUEUE}
    routes = getattr(settings, "CELERY_TASK_ROUTES", None) or {}
    if isinstance(routes, dict):
        names.update(
            route["queue"] for route in routes.values() if isinstance(route, dict) and "queue" in route
        )
    return sorted(names)


_backbone = BackboneCollector()
REGISTRY.register(_backbone)


def _registry() -> CollectorRegistry:
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    registry.register(_backbone)
    return registry


def _allowed(request) -> bool:
    token = settings.CRM_METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    # Bytes: a header arrives decoded as latin-1, and compare_digest refuses a str that is not ASCII.
    offered = header[7:].strip().encode()
    if token and header.startswith("Bearer ") and hmac.compare_digest(offered, token.encode()):
        return True
    return request.META.get("REMOTE_ADDR", "") in settings.CRM_METRICS_ALLOWED_IPS


def metrics_view(request):
    """``GET /metrics``: 404 unless a token or an allow-list is set, 403 for anyone else."""
    if not settings.CRM_METRICS_TOKEN and not settings.CRM_METRICS_ALLOWED_IPS:
        raise Http404("Metrics are off: set CRM_METRICS_TOKEN or CRM_METRICS_ALLOWED_IPS.")
    if not _allowed(request):
        return HttpResponseForbidden("Metrics need a bearer token or an allowed address.\n")
    return HttpResponse(generate_latest(_registry()), content_type=CONTENT_TYPE_LATEST)
