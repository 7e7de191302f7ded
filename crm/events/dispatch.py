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


def kick_relay() -> None:
    """Run the outbox relay (registered with on_commit by the services that publish events)."""
    from crm.events.tasks import outbox_relay

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
    from crm_project.celery import app

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=2)
    except Exception:
        return "unavailable"
    broker_reset()
    return "ok"
