"""Issue 16, the webhooks API: subscriptions, their deliveries and redelivery; CRM Admins only."""

import pytest
from django.contrib.auth.models import Group
from rest_framework.test import APIClient

from crm import services as crm_services
from crm.events.relay import outbox_relay
from crm.models import WebhookDelivery, WebhookSubscription
from crm.webhooks.delivery import webhook_deliver
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def crm_admin(db):
    user = UserFactory(username="crm_admin")
    user.groups.add(Group.objects.get(name="CRM Admin"))
    return user


@pytest.fixture
def rep(db):
    user = UserFactory(username="rep")
    user.groups.add(Group.objects.get(name="Sales Rep"))
    return user


def test_a_crm_admin_creates_reads_updates_and_deletes_a_subscription(crm_admin, receiver, webhook_settings):
    api = client_for(crm_admin)

    created = api.post(
        "/api/v1/crm/webhooks/",
        {
            "name": "ERP",
            "target_url": receiver.url("/ok"),
            "event_types": ["opportunity.*", "lead.converted"],
        },
    )

    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["secret"].startswith("whsec_")
    assert body["owner_id"] == crm_admin.pk and body["is_active"] is True
    assert body["event_types"] == ["opportunity.*", "lead.converted"]
    url = f"/api/v1/crm/webhooks/{body['id']}/"
    assert api.get(url).json() == body
    assert api.get("/api/v1/crm/webhooks/").json()["count"] == 1

    changed = api.patch(url, {"event_types": ["*"], "is_active": False})
    assert changed.status_code == 200
    assert WebhookSubscription.objects.get().event_types == ["*"]

    assert api.delete(url).status_code == 204
    assert not WebhookSubscription.objects.exists()


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"target_url": "http://169.254.169.254/latest", "event_types": ["*"]}, "target_url"),
        ({"target_url": "http://10.0.0.5/hook", "event_types": ["*"]}, "target_url"),
        ({"target_url": "https://example.com/hook", "event_types": ["deal.won"]}, "event_types"),
        ({"target_url": "https://example.com/hook", "event_types": []}, "event_types"),
        ({"target_url": "https://example.com/hook", "event_types": ["*"], "secret": "plain"}, "secret"),
        ({"target_url": "not a url", "event_types": ["*"]}, "target_url"),
    ],
)
def test_bad_subscriptions_are_a_400_on_their_field(crm_admin, data, field):
    response = client_for(crm_admin).post("/api/v1/crm/webhooks/", data)

    assert response.status_code == 400
    assert field in response.json()
    assert not WebhookSubscription.objects.exists()


def test_a_sales_rep_may_not_see_or_manage_webhooks(rep, crm_admin, receiver, webhook_settings):
    client_for(crm_admin).post("/api/v1/crm/webhooks/", {"target_url": receiver.url(), "event_types": ["*"]})
    api = client_for(rep)

    assert api.get("/api/v1/crm/webhooks/").status_code == 403
    assert (
        api.post("/api/v1/crm/webhooks/", {"target_url": receiver.url(), "event_types": ["*"]}).status_code
        == 403
    )
    assert WebhookSubscription.objects.count() == 1


def test_deliveries_list_their_attempts_and_redeliver_sends_again(
    crm_admin, stages, receiver, webhook_settings, django_capture_on_commit_callbacks
):
    api = client_for(crm_admin)
    subscription = api.post(
        "/api/v1/crm/webhooks/", {"target_url": receiver.url("/ok"), "event_types": ["account.created"]}
    ).json()
    crm_services.account_create(user=crm_admin, data={"name": "Acme"})
    outbox_relay()
    delivery = WebhookDelivery.objects.get()
    webhook_deliver(delivery.pk)

    listed = api.get(f"/api/v1/crm/webhooks/{subscription['id']}/deliveries/")

    assert listed.status_code == 200
    (item,) = listed.json()["results"]
    assert item["status"] == "succeeded" and item["event_type"] == "account.created"
    assert item["webhook_id"] == delivery.webhook_id
    assert item["last_status_code"] == 200 and item["last_response"] == '{"received": true}'
    assert [a["status_code"] for a in item["attempt_log"]] == [200]

    with django_capture_on_commit_callbacks(execute=True):
        redelivered = api.post(f"/api/v1/crm/webhooks/deliveries/{delivery.pk}/redeliver/")

    assert redelivered.status_code == 202
    assert len(receiver.requests) == 2
    assert {r.headers["webhook-id"] for r in receiver.requests} == {delivery.webhook_id}
    assert api.get(f"/api/v1/crm/webhooks/deliveries/{delivery.pk}/").json()["attempts"] == 2
    assert client_for_rep_forbidden(delivery)


def client_for_rep_forbidden(delivery) -> bool:
    rep = UserFactory(username="another_rep")
    return (
        client_for(rep).post(f"/api/v1/crm/webhooks/deliveries/{delivery.pk}/redeliver/").status_code == 403
    )


def test_an_unknown_delivery_is_a_404(crm_admin):
    assert client_for(crm_admin).post("/api/v1/crm/webhooks/deliveries/999/redeliver/").status_code == 404
