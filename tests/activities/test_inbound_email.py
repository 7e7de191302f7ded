"""Inbound email against a real IMAP server (dovecot on loopback, started by the fixture): messages are
matched to contacts and leads by address and to the thread of a message we sent, logged once per
Message-ID with their attachments as files; bad input and failing mailboxes are logged skips."""

import socket
import threading
from email.message import EmailMessage as Mime

import pytest
from django.utils import timezone

from activities.mail import inbound
from activities.mail.crypto import secret_decrypt
from activities.models import Activity, ActivityType, Attachment, EmailDirection, EmailMessage, Mailbox
from crm.actors import SYSTEM
from crm.models import Lead
from tests.factories import AccountFactory, ContactFactory, LeadFactory, OpportunityFactory

pytestmark = pytest.mark.django_db


def mail(
    *,
    message_id: str,
    sender: str = "jane@customer.test",
    to: str = "sales@example.com",
    subject: str = "Hello",
    body: str = "Hi there",
    in_reply_to: str = "",
    attachments: tuple[tuple[str, bytes, str], ...] = (),
) -> bytes:
    message = Mime()
    message["From"] = f"Jane Doe <{sender}>"
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = "Thu, 03 Dec 2026 09:00:00 +0000"
    message["Message-ID"] = message_id
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
        message["References"] = in_reply_to
    message.set_content(body)
    for name, payload, mime in attachments:
        main, sub = mime.split("/")
        message.add_attachment(payload, maintype=main, subtype=sub, filename=name)
    return message.as_bytes()


def shared_mailbox(server, **extra) -> Mailbox:
    data = {
        "name": "Sales",
        "host": server.host,
        "port": server.port,
        "use_ssl": False,
        "username": "sales@example.com",
        "password": "s3cret-sales",
        **extra,
    }
    return inbound.mailbox_create(user=SYSTEM, data=data)


def test_password_is_encrypted_at_rest(dovecot):
    mailbox = shared_mailbox(dovecot)
    stored = Mailbox.objects.values_list("password_encrypted", flat=True).get(pk=mailbox.pk)
    assert "s3cret" not in stored and stored.startswith("gAAAAA")  # a Fernet token
    assert secret_decrypt(stored) == "s3cret-sales"


def test_new_messages_are_logged_on_the_matching_contact_and_lead(dovecot, stages):
    account = AccountFactory()
    contact = ContactFactory(email="Jane@Customer.test", account=account)
    lead = LeadFactory(email="jane@customer.test")
    dovecot.append("sales@example.com", mail(message_id="<m1@customer.test>", subject="Pricing?"))
    mailbox = shared_mailbox(dovecot)

    result = inbound.mailbox_poll(mailbox=mailbox)

    assert (result.fetched, result.logged, result.error) == (1, 1, "")
    message = EmailMessage.objects.get(message_id="<m1@customer.test>")
    assert message.direction == EmailDirection.INBOUND and message.mailbox == mailbox
    activity = message.activities.get()
    assert activity.activity_type == ActivityType.EMAIL and activity.subject == "Pricing?"
    assert (activity.contact, activity.account, activity.lead) == (contact, account, lead)
    assert "Hi there" in activity.description
    assert Lead.objects.get(pk=lead.pk).last_activity_at is not None
    mailbox.refresh_from_db()
    assert mailbox.last_uid == 1 and mailbox.uid_validity and mailbox.last_error == ""


def test_second_poll_fetches_only_new_messages_and_a_message_id_is_logged_once(dovecot):
    ContactFactory(email="jane@customer.test")
    dovecot.append("sales@example.com", mail(message_id="<a@customer.test>"))
    mailbox = shared_mailbox(dovecot)
    assert inbound.mailbox_poll(mailbox=mailbox).logged == 1

    nothing_new = inbound.mailbox_poll(mailbox=Mailbox.objects.get(pk=mailbox.pk))
    assert (nothing_new.fetched, nothing_new.logged) == (0, 0)

    # The same message again (a copy filed twice) and a new one: the copy is a duplicate.
    dovecot.append(
        "sales@example.com", mail(message_id="<a@customer.test>"), mail(message_id="<b@customer.test>")
    )
    again = inbound.mailbox_poll(mailbox=Mailbox.objects.get(pk=mailbox.pk))
    assert (again.fetched, again.logged, again.duplicates) == (2, 1, 1)
    assert EmailMessage.objects.filter(message_id="<a@customer.test>").count() == 1
    assert Activity.objects.filter(activity_type="email").count() == 2

    # Read from the start again (a new UIDVALIDITY, a moved folder): nothing is logged twice.
    Mailbox.objects.filter(pk=mailbox.pk).update(last_uid=0, uid_validity=None)
    reread = inbound.mailbox_poll(mailbox=Mailbox.objects.get(pk=mailbox.pk))
    assert (reread.fetched, reread.logged, reread.duplicates) == (3, 0, 3)


def test_a_reply_joins_the_thread_of_the_message_we_sent(dovecot, stages):
    contact = ContactFactory(email="buyer@customer.test")
    deal = OpportunityFactory(contact=contact)
    sent_activity = Activity.objects.create(
        subject="Proposal",
        activity_type="email",
        opportunity=deal,
        contact=contact,
        status="completed",
        completed_at=timezone.now(),
    )
    sent = EmailMessage.objects.create(
        direction=EmailDirection.OUTBOUND, message_id="<proposal-1@crm.test>", subject="Proposal"
    )
    sent.activities.add(sent_activity)
    # The reply comes from another address of the customer's, unknown to the CRM: the thread links it.
    dovecot.append(
        "sales@example.com",
        mail(
            message_id="<reply-1@other.test>",
            sender="buyer.private@other.test",
            subject="Re: Proposal",
            in_reply_to="<proposal-1@crm.test>",
        ),
    )

    inbound.mailbox_poll(mailbox=shared_mailbox(dovecot))

    reply = EmailMessage.objects.get(message_id="<reply-1@other.test>")
    assert reply.in_reply_to == "<proposal-1@crm.test>"
    activity = reply.activities.get()
    assert (activity.opportunity, activity.contact) == (deal, contact)


def test_attachments_become_files_and_one_over_the_limit_is_skipped(dovecot, settings, caplog):
    settings.CRM_FILE_MAX_BYTES = 1024 * 1024
    ContactFactory(email="jane@customer.test")
    dovecot.append(
        "sales@example.com",
        mail(
            message_id="<files@customer.test>",
            attachments=(
                ("offer.pdf", b"%PDF-1.4 small offer", "application/pdf"),
                ("huge.zip", b"z" * (30 * 1024 * 1024), "application/zip"),
            ),
        ),
    )

    result = inbound.mailbox_poll(mailbox=shared_mailbox(dovecot))

    assert (result.logged, result.error) == (1, "")
    message = EmailMessage.objects.get(message_id="<files@customer.test>")
    activity = message.activities.get()
    files = list(Attachment.objects.filter(record_type="activity", record_id=activity.pk))
    assert [(f.name, f.file.read()) for f in files] == [("offer.pdf", b"%PDF-1.4 small offer")]
    assert "huge.zip" in message.skipped and "CRM_FILE_MAX_BYTES" in message.skipped
    assert "huge.zip" in caplog.text


def test_broken_mime_is_logged_with_what_can_be_read_and_the_poll_goes_on(dovecot):
    ContactFactory(email="jane@customer.test")
    broken = (
        b"From: jane@customer.test\r\nTo: sales@example.com\r\nSubject: Broken\r\n"
        b"Message-ID: <broken@customer.test>\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="never-closed"\r\n\r\n'
        b"--never-closed\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        b'!!!not base64!!!\r\n--never-closed\r\nContent-Type: application/pdf; name="x.pdf"\r\n'
        b'Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename="x.pdf"\r\n\r\n'
        b"JVBER%%%\r\n"
    )
    dovecot.append("sales@example.com", broken, mail(message_id="<fine@customer.test>"))

    result = inbound.mailbox_poll(mailbox=shared_mailbox(dovecot))

    assert result.error == "" and result.fetched == 2
    assert EmailMessage.objects.filter(message_id="<fine@customer.test>").exists()
    assert result.logged + result.skipped == 2
    broken_logged = EmailMessage.objects.filter(message_id="<broken@customer.test>").first()
    if broken_logged is not None:  # logged with what could be read, linked like any other
        assert broken_logged.activities.count() == 1


def test_unmatched_sender_creates_a_lead_only_when_the_mailbox_says_so(dovecot, stages):
    dovecot.append("sales@example.com", mail(message_id="<new1@prospect.test>", sender="new@prospect.test"))
    mailbox = shared_mailbox(dovecot)
    assert inbound.mailbox_poll(mailbox=mailbox).unmatched == 1
    assert not Lead.objects.exists() and not EmailMessage.objects.exists()

    dovecot.append("sales@example.com", mail(message_id="<new2@prospect.test>", sender="new@prospect.test"))
    Mailbox.objects.filter(pk=mailbox.pk).update(create_leads=True)
    inbound.mailbox_poll(mailbox=Mailbox.objects.get(pk=mailbox.pk))

    lead = Lead.objects.get()
    assert (lead.email, lead.contact_name) == ("new@prospect.test", "Jane Doe")
    assert EmailMessage.objects.get(message_id="<new2@prospect.test>").activities.get().lead == lead


def test_a_refused_login_is_logged_and_the_other_mailboxes_are_read(dovecot):
    ContactFactory(email="jane@customer.test")
    dovecot.append("sales@example.com", mail(message_id="<ok@customer.test>"))
    wrong = shared_mailbox(dovecot, name="Wrong password", password="nope")
    shared_mailbox(dovecot)

    results = inbound.mailboxes_poll()

    # The wrong one (created first) is read first: its failure does not stop the next.
    assert [(r.mailbox, r.logged, bool(r.error)) for r in results] == [
        ("Wrong password", 0, True),
        ("Sales", 1, False),
    ]
    wrong.refresh_from_db()
    assert "Login" in wrong.last_error or "AUTHENTICATIONFAILED" in wrong.last_error
    assert wrong.last_uid == 0 and wrong.polling_until is None


def test_a_dropped_connection_is_logged_and_nothing_is_half_written():
    """A server that greets, then hangs up at the login: an error on the mailbox, nothing logged."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)

    def serve():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.sendall(b"* OK IMAP4rev1 ready\r\n")
            conn.recv(1024)
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    try:
        mailbox = inbound.mailbox_create(
            user=SYSTEM,
            data={
                "name": "Flaky",
                "host": "127.0.0.1",
                "port": listener.getsockname()[1],
                "use_ssl": False,
                "username": "x",
                "password": "y",
            },
        )
        result = inbound.mailbox_poll(mailbox=mailbox)
    finally:
        listener.close()
    assert result.error and result.logged == 0
    mailbox.refresh_from_db()
    assert mailbox.last_error and mailbox.polling_until is None and mailbox.last_uid == 0
    assert not EmailMessage.objects.exists() and not Activity.objects.exists()
