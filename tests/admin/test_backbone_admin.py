"""Issue 16, the admin pages of the backbone: the outbox, webhook subscriptions and deliveries, schedules."""

import pytest
from django.contrib.auth.models import Group
from django.contrib.messages import get_messages
from django.urls import reverse

from crm import services as crm_services
from crm.events.relay import outbox_relay
from crm.models import OutboxEvent, OutboxStatus, WebhookDelivery, WebhookSubscription
from crm.webhooks.delivery import webhook_deliver
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def messages_of(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def test_the_outbox_lists_pending_delivered_and_failed_events(admin_client, admin_user, stages):
    for name in ("Pending", "Delivered", "Failed"):
        crm_services.account_create(user=admin_user, data={"name": name})
    pending, delivered, failed = OutboxEvent.objects.order_by("id")
    OutboxEvent.objects.filter(pk=delivered.pk).update(status=OutboxStatus.DELIVERED)
    OutboxEvent.objects.filter(pk=failed.pk).update(status=OutboxStatus.FAILED, last_error="consumer down")
    url = reverse("admin:crm_outboxevent_changelist")

    for status, event in (("pending", pending), ("delivered", delivered), ("failed", failed)):
        response = admin_client.get(url, {"status__exact": status})
        assert response.status_code == 200
        assert list(response.context["cl"].result_list) == [event]
    page = admin_client.get(reverse("admin:crm_outboxevent_change", args=[failed.pk]))
    assert page.status_code == 200 and b"consumer down" in page.content and b"account.created" in page.content

    response = admin_client.post(
        url, {"action": "relay_again", "_selected_action": [failed.pk, delivered.pk]}, follow=True
    )
    assert "1 failed event(s) put back in the outbox." in messages_of(response)
    assert OutboxEvent.objects.get(pk=failed.pk).status == OutboxStatus.PENDING
    assert OutboxEvent.objects.get(pk=delivered.pk).status == OutboxStatus.DELIVERED


def test_a_webhook_subscription_is_added_through_its_service(
    admin_client, admin_user, receiver, webhook_settings
):
    response = admin_client.post(
        reverse("admin:crm_webhooksubscription_add"),
        {
            "name": "ERP",
            "target_url": receiver.url("/ok"),
            "event_types": "lead.*, opportunity.won",
            "is_active": "on",
        },
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    subscription = WebhookSubscription.objects.get()
    assert subscription.event_types == ["lead.*", "opportunity.won"]
    assert subscription.secret.startswith("whsec_") and subscription.owner == admin_user


def test_the_admin_refuses_a_private_target(admin_client):
    response = admin_client.post(
        reverse("admin:crm_webhooksubscription_add"),
        {"target_url": "http://169.254.169.254/latest", "event_types": "*", "is_active": "on"},
        follow=True,
    )

    assert any("private, loopback or link-local" in m for m in messages_of(response))
    assert not WebhookSubscription.objects.exists()


def test_deliveries_show_their_log_and_can_be_redelivered(
    admin_client, admin_user, stages, receiver, webhook_settings, django_capture_on_commit_callbacks
):
    from crm.webhooks.services import webhook_subscription_create

    webhook_subscription_create(
        user=admin_user, data={"target_url": receiver.url("/ok"), "event_types": ["*"]}
    )
    crm_services.account_create(user=admin_user, data={"name": "Acme"})
    outbox_relay()
    delivery = WebhookDelivery.objects.get()
    webhook_deliver(delivery.pk)

    changelist = admin_client.get(reverse("admin:crm_webhookdelivery_changelist"))
    assert changelist.status_code == 200 and delivery.webhook_id.encode() in changelist.content
    page = admin_client.get(reverse("admin:crm_webhookdelivery_change", args=[delivery.pk]))
    assert page.status_code == 200 and b"received" in page.content

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            reverse("admin:crm_webhookdelivery_changelist"),
            {"action": "redeliver", "_selected_action": [delivery.pk]},
            follow=True,
        )

    assert "1 delivery queued again." in messages_of(response)
    assert len(receiver.requests) == 2


def test_the_beat_schedules_are_in_the_admin(admin_client):
    assert admin_client.get(reverse("admin:django_celery_beat_periodictask_changelist")).status_code == 200
    assert (
        admin_client.get(reverse("admin:django_celery_beat_intervalschedule_changelist")).status_code == 200
    )


def test_a_periodic_task_whose_task_field_is_refused_is_a_form_error_not_a_500(admin_client):
    # Beat's form read cleaned_data["task"] in clean(): a refused task (a null character, or longer
    # than the field) was a KeyError, and the add page a 500.
    from django_celery_beat.models import PeriodicTask

    url = reverse("admin:django_celery_beat_periodictask_add")
    for task in ("a\x00b", "x" * 300):
        response = admin_client.post(url, {"name": "Nightly", "task": task, "enabled": "on"})
        assert response.status_code == 200
        assert response.context["adminform"].form.errors["task"]
    assert not PeriodicTask.objects.filter(name="Nightly").exists()


def test_a_sales_rep_does_not_see_the_backbone_pages(client):
    rep = UserFactory(username="rep", is_staff=True)
    rep.groups.add(Group.objects.get(name="Sales Rep"))
    client.force_login(rep)

    for name in ("crm_outboxevent", "crm_webhooksubscription", "crm_webhookdelivery"):
        assert client.get(reverse(f"admin:{name}_changelist")).status_code == 403
