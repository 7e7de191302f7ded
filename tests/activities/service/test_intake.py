"""Issue 20 item 4: the public support form (throttled, honeypot, answers with the number) and raw email
posted by a mail forwarder, threaded by the number in the subject or by In-Reply-To."""

from email.message import EmailMessage

import pytest
from django.core import mail

from activities.models import Attachment, Ticket, TicketMessage, TicketStatus
from activities.service import services
from crm.actors import SYSTEM
from tests.factories import ContactFactory

FORM, INBOUND = "/support/", "/api/v1/crm/inbound/email/"
SECRET = "s3cret-inbound"
pytestmark = pytest.mark.django_db


@pytest.fixture
def inbound(settings, client, media):
    settings.CRM_INBOUND_EMAIL_SECRET = SECRET

    def post(raw: bytes, secret: str = SECRET):
        return client.post(INBOUND, raw, content_type="message/rfc822", HTTP_X_INBOUND_SECRET=secret)

    return post


def raw_email(
    subject="Printer on fire",
    body="Help!",
    sender="ana@example.com",
    message_id="<a1@mail.example>",
    **headers,
):
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = f"Ana <{sender}>", "support@example.com", subject
    message["Message-ID"] = message_id
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content(body)
    return message


# --- the web form ----------------------------------------------------------------------------------------


def test_the_form_opens_a_ticket_and_answers_with_its_number(client):
    contact = ContactFactory(email="ana@example.com")
    assert client.get(FORM).status_code == 200
    response = client.post(
        FORM,
        {
            "name": "Ana",
            "email": "ana@example.com",
            "subject": "Broken",
            "message": "It broke",
            "website": "",
        },
    )
    assert response.status_code == 200 and b"T-000001" in response.content
    ticket = Ticket.objects.get()
    assert (ticket.channel, ticket.contact, ticket.requester_email) == ("web", contact, "ana@example.com")
    assert list(ticket.messages.values_list("from_customer", "body")) == [(True, "It broke")]


def test_the_honeypot_thanks_a_robot_and_stores_nothing(client):
    response = client.post(
        FORM,
        {
            "name": "Bot",
            "email": "bot@example.com",
            "subject": "Buy",
            "message": "x",
            "website": "http://spam",
        },
    )
    assert response.status_code == 200 and b"T-0" not in response.content
    assert not Ticket.objects.exists()


def test_bad_input_is_a_form_error(client):
    response = client.post(FORM, {"name": "Ana", "email": "not an address", "subject": "", "message": "x"})
    assert response.status_code == 400 and b"Enter a valid email address" in response.content
    assert not Ticket.objects.exists()


def test_a_flood_is_throttled_per_address(client, settings):
    settings.CRM_SUPPORT_FORM_RATE = 2
    body = {"name": "Ana", "email": "ana@example.com", "subject": "x", "message": "y"}
    statuses = [client.post(FORM, body).status_code for _ in range(4)]
    assert statuses == [200, 200, 429, 429]
    assert Ticket.objects.count() == 2


# --- inbound email ---------------------------------------------------------------------------------------


def test_inbound_is_off_without_a_secret_and_refuses_a_wrong_one(client, inbound, settings):
    assert inbound(raw_email().as_bytes(), secret="guess").status_code == 403
    settings.CRM_INBOUND_EMAIL_SECRET = ""
    assert inbound(raw_email().as_bytes()).status_code == 404
    assert not Ticket.objects.exists()


def test_a_new_email_opens_a_ticket_with_its_attachment(inbound):
    message = raw_email()
    message.add_attachment(b"log line", maintype="text", subtype="plain", filename="error.txt")
    response = inbound(message.as_bytes())
    assert response.status_code == 201 and response.json()["ticket"] == "T-000001"
    ticket = Ticket.objects.get()
    assert (ticket.channel, ticket.requester_email, ticket.subject) == (
        "email",
        "ana@example.com",
        "Printer on fire",
    )
    posted = ticket.messages.get()
    assert posted.from_customer and posted.message_id == "<a1@mail.example>" and posted.body == "Help!"
    assert Attachment.objects.get().record_id == posted.pk


def test_a_reply_threads_by_the_number_in_its_subject(inbound):
    inbound(raw_email().as_bytes())
    response = inbound(
        raw_email(subject="Re: [T-000001] Printer on fire", body="Still", message_id="<a2@x>").as_bytes()
    )
    assert response.status_code == 200
    assert response.json() == {"ticket": "T-000001", "ticket_id": Ticket.objects.get().pk, "created": False}
    assert Ticket.objects.get().messages.count() == 2


def test_a_reply_threads_by_in_reply_to_and_reopens_a_resolved_ticket(inbound):
    inbound(raw_email().as_bytes())
    ticket = Ticket.objects.get()
    services.ticket_set_status(ticket=ticket, user=SYSTEM, status=TicketStatus.RESOLVED)
    response = inbound(
        raw_email(subject="Re: your printer", message_id="<a3@x>", In_Reply_To="<a1@mail.example>").as_bytes()
    )
    assert response.status_code == 200
    ticket.refresh_from_db()
    assert ticket.status == TicketStatus.OPEN and ticket.messages.count() == 2


def test_an_agent_reply_is_emailed_and_the_customers_answer_threads_back(
    inbound, django_capture_on_commit_callbacks
):
    inbound(raw_email().as_bytes())
    ticket = Ticket.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        reply = services.ticket_message_create(ticket=ticket, user=SYSTEM, body="Unplug it")
    (sent,) = mail.outbox
    assert sent.to == ["ana@example.com"] and sent.subject == "[T-000001] Printer on fire"
    assert sent.extra_headers["Message-ID"] == reply.message_id
    assert sent.extra_headers["In-Reply-To"] == "<a1@mail.example>"
    response = inbound(
        raw_email(subject="Re: thanks", message_id="<a4@x>", In_Reply_To=reply.message_id).as_bytes()
    )
    assert response.status_code == 200 and ticket.messages.count() == 3


def test_a_reply_to_a_closed_ticket_opens_a_new_one(inbound):
    inbound(raw_email().as_bytes())
    services.ticket_set_status(ticket=Ticket.objects.get(), user=SYSTEM, status=TicketStatus.CLOSED)
    response = inbound(raw_email(subject="Re: [T-000001] again", message_id="<a5@x>").as_bytes())
    assert response.status_code == 201 and response.json()["ticket"] == "T-000002"
    assert Ticket.objects.get(number="T-000001").messages.count() == 1


def test_the_same_message_posted_twice_is_kept_once(inbound):
    inbound(raw_email().as_bytes())
    assert inbound(raw_email().as_bytes()).status_code == 200
    assert TicketMessage.objects.count() == 1 and Ticket.objects.count() == 1


def test_garbage_is_a_400_and_stores_nothing(inbound):
    assert inbound(b"\x00\xff not a message").status_code == 400
    assert inbound(b"   ").status_code == 400
    assert not Ticket.objects.exists()


def test_an_email_with_null_characters_opens_its_ticket_without_them(inbound):
    # PostgreSQL's text cannot hold a NUL: the Message-ID's lookup was a 500, and the subject and body
    # would have refused the ticket. The customer's mail opens one, its text as it reads.
    raw = raw_email(subject="Printer on fire", body="Help!", message_id="<a9@mail.example>").as_bytes()
    raw = raw.replace(b"Printer on fire", b"Printer\x00 on fire").replace(b"Help!", b"He\x00lp!")
    raw = raw.replace(b"<a9@mail.example>", b"<a9\x00@mail.example>")
    raw = raw.replace(b"Subject: Printer\x00 on fire", b"Subject: =?utf-8?q?Printer=00_on_fire?=")
    response = inbound(raw)

    assert response.status_code == 201, response.content
    ticket = Ticket.objects.get()
    assert ticket.subject == "Printer on fire"
    posted = ticket.messages.get()
    assert posted.body == "Help!" and posted.message_id == "<a9@mail.example>"
    assert inbound(raw).status_code in (200, 201) and Ticket.objects.count() == 1  # kept once
