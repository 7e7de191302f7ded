"""Sending tasks: to the broker when there is one, else in this process once the transaction commits.

A broker that is down never fails or holds up a write: sending is tried once, quickly, and then not
again for CRM_BROKER_BACKOFF_SECONDS; what the task would have done waits in the outbox (events)
or in the deliveries table, and the periodic relay of ``celery beat`` picks it up.
"""

import logging
import time

from django.conf import settings
from django.db import transaction

logger = logging.getLogger("crm.events")

_broker_down_until = 0.0


def broker_configured() -> bool:
    return bool(settings.CELERY_BROKER_URL)


def send(task, *args, countdown: float | None = None) -> bool:
    """Run ``task`` now: queue it on the broker, or run it here when there is no broker (embedded).

    Returns False when the broker could not take it (the caller's work stays where the safety net
    finds it). Never raises: a failing task or broker must not break the request that asked for it.
    """
    global _broker_down_until
    if not broker_configured():
        try:
            task(*args)
        except Exception:
            logger.exception("Task %s failed in process", task.name)
        return True
    if time.monotonic() < _broker_down_until:
        return False
    try:
        task.apply_async(args=args, countdown=countdown, retry=False)
    except Exception as exc:  # kombu raises OperationalError, redis ConnectionError...: all "down"
        _broker_down_until = time.monotonic() + settings.CRM_BROKER_BACKOFF_SECONDS
        logger.warning("Broker unavailable, %s left for the periodic relay: %s", task.name, exc)
        return False
    return True


def send_after_commit(task, *args, countdown: float | None = None) -> None:
    transaction.on_commit(lambda: send(task, *args, countdown=countdown))


# Set while a relay task waits in the queue: the commits meanwhile need no task of their own, since
# that relay will see their events. The relay clears it as it starts; it expires in case none runs.
RELAY_QUEUED_KEY = "crm:outbox:relay-queued"
_redis_clients: dict = {}


def _redis():
    url = settings.CELERY_BROKER_URL
    if url not in _redis_clients:
        import redis

        timeout = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("socket_connect_timeout", 2)
        _redis_clients[url] = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=5)
    return _redis_clients[url]


def _relay_already_queued() -> bool:
    if not settings.CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
        return False
    return not _redis().set(RELAY_QUEUED_KEY, "1", nx=True, ex=30)


def relay_started() -> None:
    """Called by the relay task as it starts: the next commit queues a relay again."""
    if broker_configured() and settings.CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
        try:
            _redis().delete(RELAY_QUEUED_KEY)
        except Exception:
            logger.warning("Broker unavailable: could not clear %s", RELAY_QUEUED_KEY)


def kick_relay() -> None:
    """Run the outbox relay (registered with on_commit by the services that publish events); one
    relay task waits in the queue at a time, however many transactions commit meanwhile."""
    from crm.events.tasks import outbox_relay

    if broker_configured() and time.monotonic() >= _broker_down_until:
        try:
            if _relay_already_queued():
                return
        except Exception:
            pass  # the broker is down: send() below notes it and backs off
    send(outbox_relay)
    if not broker_configured():
        # No beat in the embedded mode: retries that fell due go out with the next relay.
        from crm.webhooks.tasks import webhook_deliveries_due

        send(webhook_deliveries_due)


def broker_reset() -> None:
    """Forget a past broker failure (tests, and the health check when the broker answers again)."""
    global _broker_down_until
    _broker_down_until = 0.0


def broker_status() -> str:
    """``embedded`` (no broker configured), ``ok``, or ``unavailable``: for the health check."""
    if not broker_configured():
        return "embedded"
    from celery import current_app as app  # the project's app (crm_project.celery), set as current

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=2)
    except Exception:
        return "unavailable"
    broker_reset()
    return "ok"
