"""Issue 16, webhooks: signed deliveries to a real loopback receiver, retries with backoff, the
delivery log, disabling after repeated failures, SSRF refusals, timeouts, size caps, redelivery."""

import datetime
import itertools
import json
import logging
import time

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.utils import timezone
from standardwebhooks import Webhook

from crm import services as crm_services
from crm.events.relay import outbox_relay
from crm.models import DeliveryStatus, Notification, NotificationKind, OutboxEvent, WebhookDelivery
from crm.webhooks import services as webhook_services
from crm.webhooks.delivery import deliveries_due, webhook_deliver
from sales import services as sales_services
from tests.factories import PipelineFactory, StageFactory

pytestmark = pytest.mark.django_db


def subscribe(user, url, types=("*",), **data):
    return webhook_services.webhook_subscription_create(
        user=user, data={"target_url": url, "event_types": list(types), **data}
    )


def deliveries():
    return list(WebhookDelivery.objects.select_related("event", "subscription").order_by("id"))


def publish_and_relay(user, name="Acme"):
    account = crm_services.account_create(user=user, data={"name": name})
    outbox_relay()
    return account


def test_a_delivery_is_signed_as_standard_webhooks_says(admin_user, stages, receiver, webhook_settings):
    subscription = subscribe(admin_user, receiver.url("/ok"))
    assert subscription.secret.startswith("whsec_")
    publish_and_relay(admin_user)
    (delivery,) = deliveries()

    assert webhook_deliver(delivery.pk) == DeliveryStatus.SUCCEEDED

    (request,) = receiver.requests
    event = OutboxEvent.objects.get()
    # The reference library checks the signature and the timestamp, and returns the payload.
    assert Webhook(subscription.secret).verify(request.body, request.headers) == event.payload
    assert request.headers["webhook-id"] == f"msg_{event.event_id.hex}" == delivery.webhook_id
    assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 5
    assert request.headers["content-type"] == "application/json"
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("succeeded", 1, 200)
    assert delivery.last_response == '{"received": true}'
    assert delivery.attempt_log.get().status_code == 200


def test_a_wrong_secret_does_not_verify(admin_user, stages, receiver, webhook_settings):
    subscribe(admin_user, receiver.url("/ok"))
    publish_and_relay(admin_user)
    webhook_deliver(deliveries()[0].pk)

    other = webhook_services.webhook_subscription_create(
        user=admin_user, data={"target_url": receiver.url("/ok"), "event_types": ["lead.*"]}
    )
    from standardwebhooks.webhooks import WebhookVerificationError

    with pytest.raises(WebhookVerificationError):
        Webhook(other.secret).verify(receiver.requests[0].body, receiver.requests[0].headers)


def test_failures_are_retried_with_exponential_backoff_over_about_a_day(
    admin_user, stages, receiver, webhook_settings
):
    schedule = webhook_settings.WEBHOOK_RETRY_SCHEDULE
    assert all(later > earlier for earlier, later in itertools.pairwise(schedule))
    assert 18 * 3600 <= sum(schedule) <= 30 * 3600  # about a day
    subscribe(admin_user, receiver.url("/fail"))
    publish_and_relay(admin_user)
    (delivery,) = deliveries()
    start = timezone.now()

    with time_machine.travel(start, tick=True) as traveller:
        for attempt, delay in enumerate(schedule, start=1):
            assert webhook_deliver(delivery.pk) == DeliveryStatus.RETRYING
            delivery.refresh_from_db()
            assert delivery.attempts == attempt
            waited = (delivery.next_attempt_at - timezone.now()).total_seconds()
            assert delay - 2 <= waited <= delay
            # Not due before its time, due after.
            assert delivery.pk not in deliveries_due()
            assert webhook_deliver(delivery.pk) == "skipped"
            traveller.move_to(delivery.next_attempt_at + datetime.timedelta(seconds=1))
            assert delivery.pk in deliveries_due()
        assert webhook_deliver(delivery.pk) == DeliveryStatus.FAILED

    delivery.refresh_from_db()
    assert delivery.attempts == len(schedule) + 1 == len(receiver.requests)
    assert delivery.next_attempt_at is None
    assert delivery.last_status_code == 500 and delivery.last_response == "boom"
    assert delivery.attempt_log.count() == len(schedule) + 1
    # Every attempt of one delivery carries the same webhook-id.
    assert set(receiver.ids()) == {delivery.webhook_id}
    spent = receiver.requests[-1].at - receiver.requests[0].at
    assert spent < 60  # the real clock: time travelled, the test did not wait


def test_a_subscription_failing_n_times_in_a_row_is_disabled_and_its_owner_told(
    admin_user, stages, receiver, webhook_settings, caplog
):
    webhook_settings.WEBHOOK_DISABLE_AFTER_FAILURES = 3
    webhook_settings.WEBHOOK_RETRY_SCHEDULE = [0, 0, 0, 0, 0]
    subscription = subscribe(admin_user, receiver.url("/fail"))
    publish_and_relay(admin_user)
    (delivery,) = deliveries()

    with caplog.at_level(logging.WARNING, logger="crm.webhooks"):
        for _ in range(3):
            webhook_deliver(delivery.pk)

    subscription.refresh_from_db()
    assert not subscription.is_active
    assert subscription.consecutive_failures == 3
    assert subscription.disabled_at is not None
    assert "3 failed attempts in a row" in subscription.disabled_reason
    assert f"Webhook subscription {subscription.pk}" in caplog.text
    disabled = OutboxEvent.objects.get(type="webhook.disabled")
    assert disabled.payload["record"]["owner_id"] == admin_user.pk
    # A disabled subscription gets nothing more, and the internal event is not sent to webhooks.
    assert webhook_deliver(delivery.pk) == "skipped"
    outbox_relay()
    assert WebhookDelivery.objects.count() == 1
    # The relay handed the event to the notifications: the owner is told, once, with the reason.
    (told,) = Notification.objects.filter(recipient=admin_user, kind=NotificationKind.WEBHOOK_DISABLED)
    assert "3 failed attempts in a row" in told.body
    assert told.url.endswith(f"/webhooksubscription/{subscription.pk}/change/")
    outbox_relay()
    assert Notification.objects.filter(kind=NotificationKind.WEBHOOK_DISABLED).count() == 1


def test_a_success_resets_the_count_of_failures(admin_user, stages, receiver, webhook_settings):
    webhook_settings.WEBHOOK_RETRY_SCHEDULE = [0, 0]
    subscription = subscribe(admin_user, receiver.url("/fail"))
    publish_and_relay(admin_user)
    webhook_deliver(deliveries()[0].pk)
    subscription.refresh_from_db()
    assert subscription.consecutive_failures == 1

    webhook_services.webhook_subscription_update(
        subscription=subscription, user=admin_user, data={"target_url": receiver.url("/ok")}
    )
    webhook_deliver(deliveries()[0].pk)

    subscription.refresh_from_db()
    assert subscription.consecutive_failures == 0 and subscription.is_active


# --- SSRF, timeouts, sizes ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/hook",
        "http://0.0.0.0/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "ftp://example.com/hook",
        "http://user:pw@example.com/hook",
    ],
)
def test_a_subscription_to_a_private_or_odd_target_is_refused(admin_user, url):
    with pytest.raises(ValidationError) as refused:
        subscribe(admin_user, url)
    assert "target_url" in refused.value.message_dict


def test_loopback_is_allowed_only_when_the_setting_lists_it(admin_user, receiver, settings):
    settings.WEBHOOK_ALLOWED_PRIVATE_TARGETS = ["127.0.0.0/8"]
    assert subscribe(admin_user, receiver.url("/ok")).pk
    settings.WEBHOOK_ALLOWED_PRIVATE_TARGETS = []
    with pytest.raises(ValidationError):
        subscribe(admin_user, receiver.url("/ok"))


def test_a_target_that_became_private_is_refused_at_delivery_without_retries(
    admin_user, stages, receiver, webhook_settings
):
    subscribe(admin_user, receiver.url("/ok"))
    publish_and_relay(admin_user)
    webhook_settings.WEBHOOK_ALLOWED_PRIVATE_TARGETS = []

    assert webhook_deliver(deliveries()[0].pk) == DeliveryStatus.FAILED

    assert receiver.requests == []
    assert "private, loopback or link-local" in deliveries()[0].last_error


def test_a_redirect_to_a_private_address_is_refused(admin_user, stages, receiver, webhook_settings):
    subscribe(admin_user, receiver.url("/redirect?to=http://169.254.169.254/latest/meta-data/"))
    publish_and_relay(admin_user)

    assert webhook_deliver(deliveries()[0].pk) == DeliveryStatus.FAILED

    assert [r.path for r in receiver.requests] == ["/redirect"]
    assert "169.254.169.254" in deliveries()[0].last_error


def test_a_redirect_to_an_allowed_target_is_followed(admin_user, stages, receiver, webhook_settings):
    subscribe(admin_user, receiver.url(f"/redirect?to={receiver.url('/ok')}"))
    publish_and_relay(admin_user)

    assert webhook_deliver(deliveries()[0].pk) == DeliveryStatus.SUCCEEDED
    assert [r.path for r in receiver.requests] == ["/redirect", "/ok"]


def test_a_target_that_times_out_is_retried_and_holds_nothing_up(
    admin_user, stages, receiver, webhook_settings
):
    webhook_settings.WEBHOOK_TIMEOUT = 1.0
    subscribe(admin_user, receiver.url("/slow?s=5"))
    publish_and_relay(admin_user)
    started = time.monotonic()

    assert webhook_deliver(deliveries()[0].pk) == DeliveryStatus.RETRYING

    assert time.monotonic() - started < 2.5
    delivery = deliveries()[0]
    assert "Timed out" in delivery.last_error and delivery.last_status_code is None


def test_a_10_mb_answer_is_read_no_further_than_the_cap(admin_user, stages, receiver, webhook_settings):
    subscribe(admin_user, receiver.url("/big"))
    publish_and_relay(admin_user)
    started = time.monotonic()

    assert webhook_deliver(deliveries()[0].pk) == DeliveryStatus.SUCCEEDED

    assert time.monotonic() - started < 3
    delivery = deliveries()[0]
    assert len(delivery.last_response) == webhook_settings.WEBHOOK_RESPONSE_EXCERPT_BYTES


def test_a_500_is_logged_with_status_duration_and_first_bytes(admin_user, stages, receiver, webhook_settings):
    subscribe(admin_user, receiver.url("/fail"))
    publish_and_relay(admin_user)

    assert webhook_deliver(deliveries()[0].pk) == DeliveryStatus.RETRYING

    attempt = deliveries()[0].attempt_log.get()
    assert (attempt.status_code, attempt.response_excerpt) == (500, "boom")
    assert attempt.duration_ms >= 0 and attempt.error == ""


def test_an_event_over_the_size_cap_is_sent_without_its_record(
    admin_user, stages, receiver, webhook_settings
):
    webhook_settings.WEBHOOK_MAX_PAYLOAD_BYTES = 2000
    subscription = subscribe(admin_user, receiver.url("/ok"))
    lead = crm_services.lead_create(user=admin_user, data={"name": "Deal", "description": "x" * 5000})
    outbox_relay()

    webhook_deliver(deliveries()[0].pk)

    body = json.loads(receiver.requests[0].body)
    assert body["truncated"] is True and body["record"] == {"id": lead.pk}
    assert body["type"] == "lead.created"
    assert Webhook(subscription.secret).verify(receiver.requests[0].body, receiver.requests[0].headers)


# --- which events go where, redelivery ---------------------------------------------------------------


def test_subscriptions_get_the_event_types_and_pipeline_they_ask_for(
    admin_user, stages, receiver, webhook_settings
):
    other = PipelineFactory(name="Enterprise")
    StageFactory(pipeline=other, name="Start", sequence=0)
    deals = subscribe(admin_user, receiver.url("/ok"), types=["opportunity.*"])
    won = subscribe(admin_user, receiver.url("/ok"), types=["opportunity.won"])
    enterprise = subscribe(admin_user, receiver.url("/ok"), types=["*"], pipeline=other)
    everything = subscribe(admin_user, receiver.url("/ok"), types=["*"])
    deal = sales_services.opportunity_create(user=admin_user, data={"name": "Deal", "amount": "1"})
    sales_services.opportunity_mark_won(opportunity=deal, user=admin_user)
    crm_services.account_create(user=admin_user, data={"name": "Acme"})

    outbox_relay()
    outbox_relay()  # relayed again (at least once): no second delivery

    got = {(d.subscription_id, d.event.type) for d in deliveries()}
    assert got == {
        (deals.pk, "opportunity.created"),
        (deals.pk, "opportunity.won"),
        (won.pk, "opportunity.won"),
        (everything.pk, "opportunity.created"),
        (everything.pk, "opportunity.won"),
        (everything.pk, "account.created"),
    }
    assert not [d for d in deliveries() if d.subscription_id == enterprise.pk]


def test_an_unknown_event_type_is_refused(admin_user):
    with pytest.raises(ValidationError) as refused:
        subscribe(admin_user, "https://example.com/hook", types=["deal.won"])
    assert "No event matches deal.won" in refused.value.message_dict["event_types"][0]


def test_redeliver_sends_again_with_the_same_webhook_id(admin_user, stages, receiver, webhook_settings):
    subscribe(admin_user, receiver.url("/ok"))
    publish_and_relay(admin_user)
    (delivery,) = deliveries()
    webhook_deliver(delivery.pk)

    webhook_services.webhook_delivery_redeliver(delivery=delivery, user=admin_user)
    assert webhook_deliver(delivery.pk) == DeliveryStatus.SUCCEEDED

    first, second = receiver.requests
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == delivery.webhook_id
    assert first.body == second.body
    assert WebhookDelivery.objects.get().attempts == 2


def test_without_a_broker_a_write_is_delivered_in_process_after_commit(
    admin_user, stages, receiver, webhook_settings, django_capture_on_commit_callbacks
):
    subscription = subscribe(admin_user, receiver.url("/ok"), types=["lead.created"])

    with django_capture_on_commit_callbacks(execute=True):
        crm_services.lead_create(user=admin_user, data={"name": "Deal"})

    (request,) = receiver.requests
    assert Webhook(subscription.secret).verify(request.body, request.headers)["type"] == "lead.created"
    assert OutboxEvent.objects.get().status == "delivered"


# --- batches and kept-alive connections -------------------------------------------------------------


def test_one_batch_sends_several_deliveries_on_one_kept_alive_connection(
    admin_user, stages, receiver, webhook_settings
):
    from crm.webhooks.delivery import webhook_deliver_batch
    from crm.webhooks.sending import Session

    subscribe(admin_user, receiver.url("/ok"))
    for n in range(4):
        publish_and_relay(admin_user, name=f"Acme {n}")

    with Session() as session:
        statuses = webhook_deliver_batch(session=session)
        assert session.opened == 1

    assert sorted(statuses.values()) == [DeliveryStatus.SUCCEEDED] * 4
    assert len({r.client for r in receiver.requests}) == 1  # one connection for the four POSTs
    assert sorted(receiver.ids()) == sorted(d.webhook_id for d in deliveries())
    assert all(d.attempts == 1 and d.attempt_log.get().status_code == 200 for d in deliveries())
    assert webhook_deliver_batch() == {}  # nothing left due


def test_a_batch_takes_at_most_the_batch_size_oldest_first(admin_user, stages, receiver, webhook_settings):
    from crm.webhooks.delivery import webhook_deliver_batch

    webhook_settings.WEBHOOK_DELIVERY_BATCH = 2
    subscribe(admin_user, receiver.url("/ok"))
    for n in range(3):
        publish_and_relay(admin_user, name=f"Acme {n}")
    first, second, third = deliveries()

    assert set(webhook_deliver_batch()) == {first.pk, second.pk}
    assert set(webhook_deliver_batch()) == {third.pk}


def test_a_failing_target_gets_one_attempt_a_batch_and_holds_up_no_other(
    admin_user, stages, receiver, webhook_settings
):
    from crm.webhooks.delivery import webhook_deliver_batch
    from tests.backbone import receiver_start

    webhook_settings.WEBHOOK_TIMEOUT = 1.0
    other = receiver_start()  # another target (another port): its deliveries go out regardless
    try:
        slow = subscribe(admin_user, receiver.url("/slow?s=5"))
        subscribe(admin_user, other.url("/ok"))
        for n in range(3):
            publish_and_relay(admin_user, name=f"Acme {n}")

        statuses = webhook_deliver_batch()

        assert len(other.requests) == 3
    finally:
        other.server.shutdown()
        other.server.server_close()
    by_target = {}
    for delivery in deliveries():
        by_target.setdefault(delivery.subscription_id == slow.pk, []).append(delivery)
    assert [d.status for d in by_target[False]] == [DeliveryStatus.SUCCEEDED] * 3
    timed_out, *handed_back = by_target[True]
    assert timed_out.status == DeliveryStatus.RETRYING and "Timed out" in timed_out.last_error
    # The slow target's other deliveries were not attempted: due again, no attempt counted or logged.
    assert [(d.status, d.attempts, d.attempt_log.count()) for d in handed_back] == [
        (DeliveryStatus.PENDING, 0, 0)
    ] * 2
    assert len(statuses) == 6
    assert [r.path for r in receiver.requests] == ["/slow"]
    assert set(deliveries_due()) == {d.pk for d in handed_back}


def test_a_failure_then_a_success_in_one_batch_count_as_they_would_one_by_one(
    admin_user, stages, receiver, webhook_settings
):
    from crm.webhooks.delivery import webhook_deliver_batch

    subscription = subscribe(admin_user, receiver.url("/ok"))
    publish_and_relay(admin_user)
    subscription.consecutive_failures = 3
    subscription.save(update_fields=["consecutive_failures"])

    assert list(webhook_deliver_batch().values()) == [DeliveryStatus.SUCCEEDED]

    subscription.refresh_from_db()
    assert subscription.consecutive_failures == 0


def test_a_kept_alive_connection_is_not_used_once_the_target_is_no_longer_allowed(receiver, webhook_settings):
    from crm.webhooks.sending import Session, post

    with Session() as session:
        first = post(receiver.url("/ok"), b"{}", {"webhook-id": "msg_1"}, session=session)
        second = post(receiver.url("/ok"), b"{}", {"webhook-id": "msg_2"}, session=session)
        assert first.ok and second.ok and session.opened == 1
        assert receiver.requests[0].client == receiver.requests[1].client  # the connection was reused

        # The address the host resolves to is checked again before every POST, open connection or not.
        webhook_settings.WEBHOOK_ALLOWED_PRIVATE_TARGETS = []
        third = post(receiver.url("/ok"), b"{}", {"webhook-id": "msg_3"}, session=session)

    assert third.refused and "private, loopback or link-local" in third.error
    assert receiver.ids() == ["msg_1", "msg_2"]


def test_a_connection_the_target_closed_is_replaced_and_the_post_sent(receiver, webhook_settings):
    from crm.webhooks.sending import Session, post

    with Session() as session:
        # The receiver closes its side after answering, without saying so (as at the end of its
        # keep-alive time): the next POST finds the connection dead and goes out on a new one.
        assert post(receiver.url("/ok-then-close"), b"{}", {"webhook-id": "msg_1"}, session=session).ok
        time.sleep(0.2)
        assert post(receiver.url("/ok"), b"{}", {"webhook-id": "msg_2"}, session=session).ok
        assert session.opened == 2

    assert receiver.ids() == ["msg_1", "msg_2"]


def test_an_answer_over_the_cap_closes_the_connection_instead_of_reusing_it(receiver, webhook_settings):
    from crm.webhooks.sending import Session, post

    with Session() as session:
        assert post(receiver.url("/big"), b"{}", {"webhook-id": "msg_1"}, session=session).ok
        assert post(receiver.url("/ok"), b"{}", {"webhook-id": "msg_2"}, session=session).ok
        assert session.opened == 2
    first, second = receiver.requests
    assert first.client != second.client
