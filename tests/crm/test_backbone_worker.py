"""Issue 16, through real components: a Celery worker process on Redis relays the outbox and sends
webhooks to a loopback receiver; a broker that is down loses nothing; a worker killed mid-delivery
sends again under the same webhook-id."""

import time

import pytest
from standardwebhooks import Webhook

from crm import services as crm_services
from crm.events.dispatch import send
from crm.models import DeliveryStatus, OutboxEvent, OutboxStatus, WebhookDelivery
from crm.webhooks import services as webhook_services
from crm.webhooks.tasks import webhook_deliveries_due
from tests.backbone import (
    BROKER_URL,
    CLOSED_BROKER_URL,
    celery_point_at,
    wait_until,
)

pytestmark = [pytest.mark.celery_worker, pytest.mark.django_db(transaction=True)]


def subscribe(user, url, types=("*",)):
    return webhook_services.webhook_subscription_create(
        user=user, data={"target_url": url, "event_types": list(types)}
    )


def test_an_event_reaches_the_receiver_through_a_real_worker(
    admin_user, stages, receiver, webhook_settings, start_worker
):
    start_worker()
    subscription = subscribe(admin_user, receiver.url("/ok"), types=["lead.*"])

    lead = crm_services.lead_create(user=admin_user, data={"name": "Deal"})

    (request,) = receiver.wait_for(1)
    payload = Webhook(subscription.secret).verify(request.body, request.headers)
    assert payload["type"] == "lead.created" and payload["record"]["id"] == lead.pk
    wait_until(lambda: WebhookDelivery.objects.filter(status=DeliveryStatus.SUCCEEDED).exists())
    assert OutboxEvent.objects.get().status == OutboxStatus.DELIVERED


def test_broker_down_then_up_delivers_every_event_once(
    admin_user, stages, receiver, webhook_settings, broker, start_worker, client
):
    broker.CELERY_BROKER_URL = CLOSED_BROKER_URL
    celery_point_at(CLOSED_BROKER_URL)
    subscribe(admin_user, receiver.url("/ok"))
    started = time.monotonic()

    leads = [crm_services.lead_create(user=admin_user, data={"name": f"Deal {n}"}) for n in range(5)]
    for lead in leads:
        crm_services.lead_update(lead=lead, user=admin_user, data={"description": "Called"})

    # Writes succeed and do not wait for the broker; their events wait in the outbox.
    assert time.monotonic() - started < 10
    assert OutboxEvent.objects.filter(status=OutboxStatus.PENDING).count() == 10
    health = client.get("/healthz")
    assert health.status_code == 200
    assert health.json() == {"status": "degraded", "database": "ok", "broker": "unavailable"}

    # The broker is back and a worker starts: it relays what waited.
    broker.CELERY_BROKER_URL = BROKER_URL
    celery_point_at(BROKER_URL)
    start_worker(concurrency=2)

    receiver.wait_for(10, timeout=30)
    time.sleep(2)  # anything sent twice would arrive by now
    event_ids = {f"msg_{event.event_id.hex}" for event in OutboxEvent.objects.all()}
    assert sorted(receiver.ids()) == sorted(event_ids)  # each event once
    assert set(OutboxEvent.objects.values_list("status", flat=True)) == {OutboxStatus.DELIVERED}
    assert client.get("/healthz").json() == {"status": "ok", "database": "ok", "broker": "ok"}


def test_a_worker_killed_mid_delivery_delivers_again_with_the_same_webhook_id(
    admin_user, stages, receiver, webhook_settings, start_worker
):
    # A short lease: timeout 3 s, no redirects (the lease is the longest an attempt can take, + 5 s).
    env = {"WEBHOOK_TIMEOUT": 3, "WEBHOOK_MAX_REDIRECTS": 0}
    first = start_worker(**env)
    subscribe(admin_user, receiver.url("/hang-first"))

    crm_services.account_create(user=admin_user, data={"name": "Acme"})
    receiver.wait_for(1)  # the worker is waiting for the answer...
    first.kill()  # ...and dies
    assert WebhookDelivery.objects.get().status == DeliveryStatus.DELIVERING

    start_worker(**env)

    def swept_and_received():
        send(webhook_deliveries_due)  # what celery beat sends every 15 s
        return len(receiver.requests) >= 2

    wait_until(swept_and_received, timeout=40, interval=1.0)
    first_try, second_try = receiver.wait_for(2)[:2]
    assert first_try.headers["webhook-id"] == second_try.headers["webhook-id"]
    assert first_try.body == second_try.body
    wait_until(lambda: WebhookDelivery.objects.get().status == DeliveryStatus.SUCCEEDED)
    assert WebhookDelivery.objects.get().attempts == 2


def test_deliveries_go_out_in_batches_not_a_task_each(
    admin_user, stages, receiver, webhook_settings, start_worker
):
    from django.db import transaction

    worker = start_worker(WEBHOOK_DELIVERY_BATCH=5)
    subscribe(admin_user, receiver.url("/ok"))

    with transaction.atomic():  # twelve events, one relay
        for n in range(12):
            crm_services.account_create(user=admin_user, data={"name": f"Acme {n}"})

    receiver.wait_for(12)
    wait_until(lambda: WebhookDelivery.objects.filter(status=DeliveryStatus.SUCCEEDED).count() == 12)
    time.sleep(1)  # anything sent twice would arrive by now
    assert sorted(receiver.ids()) == sorted(WebhookDelivery.objects.values_list("webhook_id", flat=True))
    # The relay sent the first five itself and queued batch tasks for the other seven: two, or a few more
    # when the worker's periodic relay pass claims some of them first (seen on a loaded SQLite run: 4).
    # Never a task per delivery.
    log = worker.output()
    assert "crm.webhooks.tasks.webhook_deliver[" not in log
    assert log.count("crm.webhooks.tasks.webhook_deliver_batch[") >= 1
    batches = [line for line in log.splitlines() if "webhook_deliver_batch[" in line and "received" in line]
    assert 2 <= len(batches) <= 4, log[-3000:]
    # On kept-alive connections: far fewer connections than POSTs.
    assert len({request.client for request in receiver.requests}) <= 3


def test_a_worker_killed_mid_batch_sends_the_batch_again_with_the_same_webhook_ids(
    admin_user, stages, receiver, webhook_settings, start_worker
):
    from django.db import transaction

    env = {"WEBHOOK_TIMEOUT": 3, "WEBHOOK_MAX_REDIRECTS": 0}
    first = start_worker(**env)
    subscribe(admin_user, receiver.url("/hang-first"))

    with transaction.atomic():
        for n in range(3):
            crm_services.account_create(user=admin_user, data={"name": f"Acme {n}"})
    receiver.wait_for(1)  # the batch's first POST waits for its answer...
    first.kill()  # ...and the worker dies with the batch claimed
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {DeliveryStatus.DELIVERING}

    start_worker(**env)

    def swept_and_received():
        send(webhook_deliveries_due)  # what celery beat sends every 15 s
        return len(receiver.requests) >= 4

    wait_until(swept_and_received, timeout=40, interval=1.0)
    wait_until(lambda: WebhookDelivery.objects.filter(status=DeliveryStatus.SUCCEEDED).count() == 3)
    hung, *again = receiver.requests
    webhook_ids = set(WebhookDelivery.objects.values_list("webhook_id", flat=True))
    assert sorted(r.headers["webhook-id"] for r in again) == sorted(webhook_ids)  # each once more
    assert hung.headers["webhook-id"] in webhook_ids
    assert next(r for r in again if r.headers["webhook-id"] == hung.headers["webhook-id"]).body == hung.body
