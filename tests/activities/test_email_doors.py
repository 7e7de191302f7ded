"""The doors of email: ``mailboxes/`` (own or shared, password never shown), ``emails/send/``,
``activities/{id}/send-invitation/``, the BCC endpoint (a secret, raw RFC 822, deduplicated), the list of
emails (only on records the reader sees), and the admin's Send email page and mailbox form."""

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from activities.mail import outbound
from activities.models import Activity, ActivityType, EmailMessage, Mailbox
from crm.models import OutgoingEmail

pytestmark = pytest.mark.django_db

MAILBOX = {
    "name": "Ann's inbox",
    "host": "127.0.0.1",
    "port": 18493,
    "use_ssl": False,
    "username": "ann@example.com",
    "password": "top-secret",
}


def test_a_rep_creates_their_own_mailbox_and_its_password_is_never_shown(api_as, people):
    response = api_as("owner").post("/api/v1/crm/mailboxes/", {**MAILBOX, "owner_id": None}, format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert "password" not in body and "top-secret" not in str(body)
    assert body["owner_id"] == people.users["owner"].pk  # a rep's mailbox is theirs, not shared
    mailbox = Mailbox.objects.get()
    assert "top-secret" not in mailbox.password_encrypted

    assert api_as("teammate").get(f"/api/v1/crm/mailboxes/{mailbox.pk}/").status_code == 404
    assert api_as("teammate").patch(f"/api/v1/crm/mailboxes/{mailbox.pk}/", {"name": "x"}).status_code == 404
    assert [m["id"] for m in api_as("crm_admin").get("/api/v1/crm/mailboxes/").json()["results"]] == [
        mailbox.pk
    ]


def test_a_mailbox_without_password_or_with_a_bad_port_is_a_400(api_as, people):
    client = api_as("crm_admin")
    no_password = client.post("/api/v1/crm/mailboxes/", {**MAILBOX, "password": ""}, format="json")
    bad_port = client.post("/api/v1/crm/mailboxes/", {**MAILBOX, "port": 70000}, format="json")

    assert no_password.status_code == 400 and "password" in no_password.json()
    assert bad_port.status_code == 400 and "port" in bad_port.json()
    assert not Mailbox.objects.exists()


def test_send_from_a_record_by_the_api(api_as, people, django_capture_on_commit_callbacks):
    contact = people.records["owner"].contact
    contact.email = "buyer@customer.test"
    contact.save()
    client = api_as("owner")

    response = client.post(
        "/api/v1/crm/emails/send/",
        {"record_type": "contact", "record_id": contact.pk, "subject": "Hello", "body": "Hi"},
        format="json",
    )

    assert response.status_code == 202, response.json()
    assert response.json()["message_id"].startswith("<") and response.json()["status"] == "queued"
    assert OutgoingEmail.objects.get().to == "buyer@customer.test"
    # Another team's record is as unknown as a missing one; an opted-out address is refused.
    other = people.records["outsider"].lead
    hidden = client.post(
        "/api/v1/crm/emails/send/",
        {"record_type": "lead", "record_id": other.pk, "subject": "x", "body": "y"},
        format="json",
    )
    assert hidden.status_code == 400 and "record_id" in hidden.json()
    type(contact).objects.filter(pk=contact.pk).update(email_opt_out=True)
    opted_out = client.post(
        "/api/v1/crm/emails/send/",
        {"record_type": "contact", "record_id": contact.pk, "subject": "x", "body": "y"},
        format="json",
    )
    assert opted_out.status_code == 400 and "to" in opted_out.json()
    assert OutgoingEmail.objects.count() == 1


def test_send_invitation_by_the_api_refuses_a_call(api_as, people):
    activity = people.records["owner"].activity  # a call
    response = api_as("owner").post(
        f"/api/v1/crm/activities/{activity.pk}/send-invitation/", {}, format="json"
    )
    assert response.status_code == 400 and "activity" in response.json()


def test_the_emails_list_shows_only_what_is_logged_on_records_the_reader_sees(api_as, people):
    lead = people.records["owner"].lead
    message = EmailMessage.objects.create(direction="in", message_id="<x@y>", subject="Hello")
    message.activities.add(
        Activity.objects.create(
            subject="Hello", activity_type=ActivityType.EMAIL, lead=lead, owner=lead.owner
        )
    )

    mine = api_as("owner").get("/api/v1/crm/emails/").json()["results"]
    theirs = api_as("outsider").get("/api/v1/crm/emails/").json()["results"]

    assert [m["message_id"] for m in mine] == ["<x@y>"] and theirs == []
    assert api_as("outsider").get(f"/api/v1/crm/emails/{message.pk}/").status_code == 404


RAW = (
    b"From: Lead Person <{email}>\r\nTo: ann@example.com\r\nBcc: crm@example.com\r\nSubject: Catch-up\r\n"
    b"Message-ID: <bcc-1@example.com>\r\nDate: Thu, 03 Dec 2026 09:00:00 +0000\r\n\r\nSee you Monday.\r\n"
)


def test_the_bcc_endpoint_logs_a_raw_message_once_for_the_right_secret(people, settings):
    settings.CRM_INBOUND_EMAIL_SECRET = "bcc-secret"
    lead = people.records["owner"].lead
    raw = RAW.replace(b"{email}", lead.email.encode())
    client = APIClient()
    url = "/api/v1/crm/mailboxes/inbound/"

    assert client.post(url, raw, content_type="message/rfc822").status_code == 404
    wrong = client.post(url, raw, content_type="message/rfc822", HTTP_X_CRM_INBOUND_SECRET="nope")
    assert wrong.status_code == 404
    first = client.post(url, raw, content_type="message/rfc822", HTTP_X_CRM_INBOUND_SECRET="bcc-secret")
    again = client.post(url, raw, content_type="message/rfc822", HTTP_X_CRM_INBOUND_SECRET="bcc-secret")

    assert first.status_code == 201 and first.json() == {
        "message_id": "<bcc-1@example.com>",
        "logged": True,
        "duplicate": False,
    }
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert EmailMessage.objects.get().activities.get().lead == lead


def test_a_message_with_null_characters_in_its_headers_and_body_is_logged_without_them(people, settings):
    # Real mail carries NUL bytes now and then (a broken client, an 8-bit body); PostgreSQL's text
    # cannot hold one. The message is still logged, its text without them.
    settings.CRM_INBOUND_EMAIL_SECRET = "bcc-secret"
    lead = people.records["owner"].lead
    raw = (
        RAW.replace(b"{email}", lead.email.encode())
        .replace(b"Subject: Catch-up", b"Subject: Catch\x00-up")
        .replace(b"See you Monday.", b"See you\x00 Monday.")
    )
    response = APIClient().post(
        "/api/v1/crm/mailboxes/inbound/",
        raw,
        content_type="message/rfc822",
        HTTP_X_CRM_INBOUND_SECRET="bcc-secret",
    )

    assert response.status_code == 201, response.content
    message = EmailMessage.objects.get()
    assert message.subject == "Catch-up"
    activity = message.activities.get()
    assert activity.lead == lead
    assert activity.subject == "Catch-up" and "See you Monday." in activity.description


def test_the_bcc_endpoint_answers_a_400_for_what_is_not_an_email(settings, db):
    settings.CRM_INBOUND_EMAIL_SECRET = "bcc-secret"
    client = APIClient()
    for body in (b"", b"\x00\x01\x02 not a message", b"%PDF-1.4 binary"):
        response = client.post(
            "/api/v1/crm/mailboxes/inbound/",
            body,
            content_type="application/octet-stream",
            HTTP_X_CRM_INBOUND_SECRET="bcc-secret",
        )
        assert response.status_code == 400, body
    settings.CRM_INBOUND_EMAIL_SECRET = ""
    off = APIClient().post(
        "/api/v1/crm/mailboxes/inbound/", RAW, content_type="message/rfc822", HTTP_X_CRM_INBOUND_SECRET=""
    )
    assert off.status_code == 404
    assert not EmailMessage.objects.exists()


def test_admin_send_email_page_from_a_deal(admin_as, people, django_capture_on_commit_callbacks):
    records = people.records["owner"]
    records.contact.email = "buyer@customer.test"
    records.contact.save()
    client = admin_as("owner")
    deal_url = reverse("admin:sales_opportunity_change", args=[records.opportunity.pk])
    assert "Send email" in client.get(deal_url).content.decode()
    compose = reverse("admin:activities_emailmessage_compose")

    page = client.get(compose, {"record_type": "opportunity", "record_id": records.opportunity.pk})
    assert page.status_code == 200 and "buyer@customer.test" in page.content.decode()
    empty = client.post(
        compose,
        {
            "record_type": "opportunity",
            "record_id": records.opportunity.pk,
            "to": f"contact:{records.contact.pk}",
        },
    )
    assert empty.status_code == 200 and not OutgoingEmail.objects.exists()  # no subject, no body
    sent = client.post(
        compose,
        {
            "record_type": "opportunity",
            "record_id": records.opportunity.pk,
            "to": f"contact:{records.contact.pk}",
            "subject": "Proposal",
            "body": "Here it is.",
            "next": deal_url,
        },
    )
    assert sent.status_code == 302 and sent["Location"] == deal_url
    message = EmailMessage.objects.get()
    assert (message.record_type, message.record_id) == ("opportunity", records.opportunity.pk)
    # Another team's deal is not offered.
    hidden = client.get(
        compose, {"record_type": "opportunity", "record_id": people.records["outsider"].opportunity.pk}
    )
    assert hidden.status_code == 302


def test_admin_mailbox_form_keeps_the_password_encrypted(admin_as, people):
    client = admin_as("crm_admin")
    response = client.post(
        reverse("admin:activities_mailbox_add"),
        {**MAILBOX, "folder": "INBOX", "is_active": "on"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    mailbox = Mailbox.objects.get()
    stored = mailbox.password_encrypted
    change = client.get(reverse("admin:activities_mailbox_change", args=[mailbox.pk])).content.decode()
    assert "top-secret" not in change and stored not in change
    data = {**MAILBOX, "password": "", "folder": "INBOX", "name": "Renamed"}
    assert client.post(reverse("admin:activities_mailbox_change", args=[mailbox.pk]), data).status_code == 302
    mailbox.refresh_from_db()
    assert mailbox.name == "Renamed" and mailbox.password_encrypted == stored


def test_compose_refuses_a_record_without_a_reachable_address(people):
    account = people.records["owner"].account
    type(account.contacts.first()).objects.filter(account=account).update(email="")
    with pytest.raises(Exception) as refused:
        outbound.email_compose(user=people.users["owner"], record=account, subject="x", body="y")
    assert "to" in refused.value.message_dict


def test_email_and_mailbox_lists_cost_a_fixed_number_of_queries(
    api_as, admin_as, people, django_assert_max_num_queries
):
    lead = people.records["owner"].lead
    api = api_as("owner")
    admin = admin_as("owner")
    for size in (2, 8):
        for index in range(size):
            message = EmailMessage.objects.create(
                direction="in", message_id=f"<{size}-{index}@q>", subject="Q"
            )
            message.activities.add(
                Activity.objects.create(
                    subject="Q", activity_type=ActivityType.EMAIL, lead=lead, owner=lead.owner
                )
            )
            api.post("/api/v1/crm/mailboxes/", {**MAILBOX, "name": f"Box {size}-{index}"}, format="json")
        api.get("/api/v1/crm/emails/")
        admin.get(reverse("admin:activities_emailmessage_changelist"))
        with django_assert_max_num_queries(10):
            assert api.get("/api/v1/crm/emails/").status_code == 200
        with django_assert_max_num_queries(8):
            assert api.get("/api/v1/crm/mailboxes/").status_code == 200
        # Every admin list also reads the user's saved views, their role and their teams (3 queries).
        with django_assert_max_num_queries(21):
            assert admin.get(reverse("admin:activities_emailmessage_changelist")).status_code == 200
        with django_assert_max_num_queries(21):
            assert admin.get(reverse("admin:activities_mailbox_changelist")).status_code == 200
