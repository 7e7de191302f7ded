"""Issue 16 item 6: the back office's pages of the backbone for a CRM Admin (not only a superuser): the
outbox by status, the webhook deliveries with status, duration and answer, and beat's schedules."""

import pytest
from django.urls import reverse

from crm import services as crm_services
from crm.models import DeliveryStatus, OutboxEvent, OutboxStatus, WebhookDelivery
from crm.webhooks.services import webhook_subscription_create

pytestmark = pytest.mark.django_db


def test_a_crm_admin_filters_the_outbox_by_status(client, crm_admin, stages):
    for name in ("Pending", "Delivered", "Failed"):
        crm_services.account_create(user=crm_admin, data={"name": name})
    pending, delivered, failed = OutboxEvent.objects.order_by("id")
    OutboxEvent.objects.filter(pk=delivered.pk).update(status=OutboxStatus.DELIVERED)
    OutboxEvent.objects.filter(pk=failed.pk).update(status=OutboxStatus.FAILED)
    client.force_login(crm_admin)
    url = reverse("admin:crm_outboxevent_changelist")

    page = client.get(url)
    assert page.status_code == 200
    for choice in ("?status__exact=pending", "?status__exact=delivered", "?status__exact=failed"):
        assert choice in page.content.decode()  # the filter's three links
    for status, event in (("pending", pending), ("delivered", delivered), ("failed", failed)):
        assert list(client.get(url, {"status__exact": status}).context["cl"].result_list) == [event]


def test_the_deliveries_list_shows_status_duration_and_answer(client, crm_admin, stages, webhook_settings):
    subscription = webhook_subscription_create(
        user=crm_admin, data={"target_url": "http://127.0.0.1:9/hook", "event_types": ["*"]}
    )
    crm_services.account_create(user=crm_admin, data={"name": "Acme"})
    WebhookDelivery.objects.create(
        subscription=subscription,
        event=OutboxEvent.objects.get(),
        webhook_id="msg_1",
        status=DeliveryStatus.RETRYING,
        attempts=1,
        last_status_code=503,
        last_duration_ms=1234,
        last_response="Service unavailable " + "x" * 200,
    )
    client.force_login(crm_admin)

    page = client.get(reverse("admin:crm_webhookdelivery_changelist"))

    html = page.content.decode()
    assert page.status_code == 200
    assert "Failed, will retry" in html and "503" in html and "1234" in html
    assert "Service unavailable " + "x" * 60 in html and "x" * 200 not in html  # the first bytes only
    assert (
        client.get(reverse("admin:crm_webhookdelivery_changelist"), {"status__exact": "retrying"}).status_code
        == 200
    )


def test_a_crm_admin_sees_and_edits_the_schedules(client, crm_admin):
    client.force_login(crm_admin)

    for name in ("periodictask", "intervalschedule", "crontabschedule", "clockedschedule", "solarschedule"):
        assert client.get(reverse(f"admin:django_celery_beat_{name}_changelist")).status_code == 200, name
    response = client.post(
        reverse("admin:django_celery_beat_intervalschedule_add"), {"every": 45, "period": "seconds"}
    )
    assert response.status_code == 302
    index = client.get(reverse("admin:index")).content.decode()
    assert reverse("admin:django_celery_beat_periodictask_changelist") in index


def test_a_sales_rep_sees_no_schedule(client, owner):
    client.force_login(owner)

    assert client.get(reverse("admin:django_celery_beat_periodictask_changelist")).status_code == 403
    assert client.get(reverse("admin:django_celery_beat_intervalschedule_add")).status_code == 403
