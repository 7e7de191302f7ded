"""Email received: mailboxes read over IMAP (imap-tools) and the BCC address, logged on the records.

Each message is matched to the contacts and leads whose address is in its From, To or Cc, and to the
records of the message it answers (In-Reply-To, References); it is logged as an email activity on
them, its attachments kept as files on the activity. A Message-ID is logged once (a unique constraint).
A mailbox remembers the last UID it read: a poll with nothing new is one search and no fetch.

Messages are written a batch at a time (the activities, their audit versions, the messages and their
links in a few set-based statements), each batch in one transaction with the mailbox's last UID, so a
connection dropped half-way leaves whole messages and a UID to resume from. A message that cannot be
read is skipped and logged; a mailbox that fails (a refused login, a dropped connection) is logged on
the mailbox and the poller goes on with the next one.
"""

import datetime
import hashlib
import imaplib
import logging
import re
import socket
import ssl
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone
from imap_tools import AND, MailBox, MailBoxUnencrypted, MailMessage, U
from imap_tools.errors import MailboxLoginError

from activities.mail.crypto import secret_decrypt, secret_encrypt
from activities.models import (
    Activity,
    ActivityStatus,
    ActivityType,
    EmailDirection,
    EmailMessage,
    Mailbox,
)
from activities.services import attachment_check, attachments_create, lead_last_activity_refresh
from crm.actors import SYSTEM, Actor, is_system, person
from crm.models import Contact, Lead, LeadStatus
from crm.scoring import lead_score_refresh
from crm.services import record_lock, record_save
from crm.services.leads import lead_create

logger = logging.getLogger("activities.mail")

LINKS = ("lead", "opportunity", "contact", "account")
MAX_ACTIVITIES_PER_MESSAGE = 10
MESSAGE_ID = re.compile(r"<[^<>\s]+>")
# What a poll treats as the mailbox failing (logged on the mailbox, the next mailbox is read).
MAILBOX_ERRORS = (MailboxLoginError, imaplib.IMAP4.error, OSError, socket.timeout, ssl.SSLError, EOFError)


# --- mailboxes ------------------------------------------------------------------------------------------


def _ensure_may_manage(user: Actor, mailbox: Mailbox | None, action: str) -> None:
    """A user manages their own mailboxes; shared ones and anyone's need manage_all_mailboxes (CRM Admin)."""
    if is_system(user):
        return
    if not user.has_perm(f"activities.{action}_mailbox"):
        raise PermissionDenied(f"You may not {action} mailboxes.")
    if user.has_perm("activities.manage_all_mailboxes"):
        return
    owner = person(user)
    if owner is not None and (mailbox is None or mailbox.owner_id == owner.pk):
        return
    raise PermissionDenied("You may manage your own mailboxes only.")


def _mailbox_data(user: Actor, data: dict[str, Any], mailbox: Mailbox | None) -> dict[str, Any]:
    data = dict(data)
    password = data.pop("password", None)
    if password:
        data["password_encrypted"] = secret_encrypt(password)
    elif mailbox is None:
        raise ValidationError({"password": "Give the mailbox's password."})
    if not is_system(user) and not user.has_perm("activities.manage_all_mailboxes"):
        data["owner"] = person(user)  # a user's mailboxes are their own
    return data


@transaction.atomic
def mailbox_create(*, user: Actor, data: dict[str, Any]) -> Mailbox:
    """A mailbox to read: its password is stored encrypted (CRM_MAILBOX_KEYS) and never shown again."""
    _ensure_may_manage(user, None, "add")
    mailbox = Mailbox()
    data = _mailbox_data(user, data, None)
    mailbox.password_encrypted = data.pop("password_encrypted")
    return record_save(instance=mailbox, data=data, user=user, publish=False)


@transaction.atomic
def mailbox_update(*, user: Actor, mailbox: Mailbox, data: dict[str, Any]) -> Mailbox:
    """Change a mailbox; an empty password keeps the stored one. A new host, user or folder is read
    from its first message again (its Message-IDs keep what was logged from being logged twice)."""
    _ensure_may_manage(user, mailbox, "change")
    mailbox = record_lock(mailbox)
    data = _mailbox_data(user, data, mailbox)
    if "password_encrypted" in data:
        mailbox.password_encrypted = data.pop("password_encrypted")
    moved = any(
        name in data and data[name] != getattr(mailbox, name) for name in ("host", "username", "folder")
    )
    if moved:
        mailbox.uid_validity, mailbox.last_uid = None, 0
    return record_save(instance=mailbox, data=data, user=user, publish=False)


@transaction.atomic
def mailbox_delete(*, user: Actor, mailbox: Mailbox) -> None:
    """Stop reading a mailbox; what was logged from it stays on the records."""
    _ensure_may_manage(user, mailbox, "delete")
    mailbox.delete()


# --- reading one message --------------------------------------------------------------------------------


@dataclass
class Incoming:
    """A message as read: what matching and logging need, nothing else of it kept in memory."""

    message_id: str
    from_address: str
    from_name: str
    to: list[str]
    cc: list[str]
    subject: str
    text: str
    date: datetime.datetime | None
    in_reply_to: str
    references: list[str]
    attachments: list[tuple[str, bytes]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    uid: int | None = None

    @property
    def addresses(self) -> list[str]:
        return list(dict.fromkeys(a for a in [self.from_address, *self.to, *self.cc] if a))

    @property
    def thread_ids(self) -> list[str]:
        return list(dict.fromkeys(i for i in [self.in_reply_to, *self.references] if i))


def _ids(value: str) -> list[str]:
    return [found[:255] for found in MESSAGE_ID.findall(value or "")]


def _addresses(values: Iterable[str]) -> list[str]:
    return [without_nulls(v).strip().lower()[:320] for v in values if v and "@" in v]


def _header(message: MailMessage, name: str) -> str:
    values = message.headers.get(name.lower()) or ()
    return without_nulls(" ".join(str(v) for v in values))


def without_nulls(value: str) -> str:
    """``value`` without null characters: real mail carries one now and then (a broken client, an
    8-bit body), and PostgreSQL's text cannot hold it."""
    return value.replace("\x00", "") if "\x00" in value else value


def message_read(message: MailMessage, raw_size: int | None = None) -> Incoming:
    """What ``message`` says, read leniently: a part that cannot be decoded is left out and noted; an
    attachment over CRM_FILE_MAX_BYTES or of a refused type is skipped (and said so), the message kept.
    A message without a Message-ID gets one from a hash of its headers and text, so it is deduplicated
    all the same."""
    skipped: list[str] = []
    try:
        text = message.text or ""
        if not text and message.html:
            from django.utils.html import strip_tags

            text = strip_tags(message.html)
    except Exception as exc:  # a body the parser cannot decode: logged without it
        text = ""
        skipped.append(f"The body could not be read ({type(exc).__name__}).")
    text = without_nulls(text)
    attachments: list[tuple[str, bytes]] = []
    try:
        parts = list(message.attachments)
    except Exception as exc:
        parts = []
        skipped.append(f"The attachments could not be read ({type(exc).__name__}).")
    for part in parts:
        name = without_nulls(part.filename or "attachment").replace("/", "_").replace("\\", "_")[:200]
        name = name or "attachment"
        try:
            payload = part.payload or b""
        except Exception as exc:
            skipped.append(f"“{name}”: unreadable ({type(exc).__name__}).")
            continue
        if len(payload) > settings.CRM_FILE_MAX_BYTES:
            skipped.append(
                f"“{name}” ({len(payload):,} bytes) is over the file limit of "
                f"{settings.CRM_FILE_MAX_BYTES:,} bytes (CRM_FILE_MAX_BYTES): not kept."
            )
            continue
        try:
            attachment_check(upload=SimpleUploadedFile(name, payload or b"\0"))
        except ValidationError as exc:
            skipped.append(" ".join(exc.messages))
            continue
        attachments.append((name, payload))
    from_values = message.from_values
    from_address = without_nulls(from_values.email if from_values else "").strip().lower()[:320]
    message_ids = _ids(_header(message, "message-id"))
    if message_ids:
        message_id = message_ids[0]
    else:
        digest = hashlib.sha256(
            "\n".join([from_address, message.subject or "", message.date_str or "", text]).encode(
                "utf-8", "replace"
            )
        ).hexdigest()
        message_id = f"<{digest[:40]}@no-message-id.invalid>"
    date = message.date
    if date is not None and (date.year < 1971 or timezone.is_naive(date)):
        date = None  # imap-tools reads a missing or broken Date as 1900-01-01
    return Incoming(
        message_id=message_id,
        from_address=from_address,
        from_name=without_nulls((from_values.name if from_values else "") or "").strip()[:200],
        to=_addresses(message.to),
        cc=_addresses(message.cc),
        subject=without_nulls(message.subject or "").strip()[:255],
        text=text,
        date=date,
        in_reply_to=(_ids(_header(message, "in-reply-to")) or [""])[0],
        references=_ids(_header(message, "references"))[-50:],
        attachments=attachments,
        skipped=skipped,
        uid=int(message.uid) if message.uid and str(message.uid).isdigit() else None,
    )


def message_parse(raw: bytes) -> Incoming:
    """A raw RFC 822 message (the BCC address), read as the mailboxes' are; a ValueError when it is not
    an email at all (no header of one)."""
    message = MailMessage.from_bytes(raw)
    if not any(message.headers.get(name) for name in ("from", "message-id", "subject", "to", "date")):
        raise ValueError("This is not an email message: it has no From, To, Subject, Date or Message-ID.")
    return message_read(message)


# --- matching and logging -------------------------------------------------------------------------------


@dataclass
class Matches:
    contacts: dict[str, list[tuple[int, int | None, int | None]]]  # address -> (id, account, owner)
    leads: dict[str, list[tuple[int, int | None]]]  # address -> (id, owner)
    threads: dict[str, list[dict[str, int | None]]]  # Message-ID -> the links of its activities


def matches_find(batch: list[Incoming]) -> Matches:
    """Three queries for a whole batch: contacts and leads by lowercased address (the expression indexes
    crm_contact_email_lower and crm_lead_email_lower), the activities of the messages answered."""
    addresses = sorted({a for incoming in batch for a in incoming.addresses})
    contacts: dict[str, list] = {}
    leads: dict[str, list] = {}
    for start in range(0, len(addresses), 500):
        chunk = addresses[start : start + 500]
        rows = (
            Contact.objects.annotate(address=Lower("email"))
            .filter(address__in=chunk, is_active=True)
            .order_by("pk")
            .values_list("address", "pk", "account_id", "owner_id")
        )
        for address, pk, account_id, owner_id in rows:
            contacts.setdefault(address, []).append((pk, account_id, owner_id))
        rows = (
            Lead.objects.annotate(address=Lower("email"))
            .filter(address__in=chunk)
            .exclude(status=LeadStatus.CONVERTED)
            .order_by("pk")
            .values_list("address", "pk", "owner_id")
        )
        for address, pk, owner_id in rows:
            leads.setdefault(address, []).append((pk, owner_id))
    thread_ids = sorted({i for incoming in batch for i in incoming.thread_ids})
    threads: dict[str, list] = {}
    if thread_ids:
        through = EmailMessage.activities.through
        rows = through.objects.filter(emailmessage__message_id__in=thread_ids).values_list(
            "emailmessage__message_id", *(f"activity__{name}_id" for name in LINKS)
        )
        for message_id, *links in rows:
            threads.setdefault(message_id, []).append(dict(zip(LINKS, links, strict=True)))
    return Matches(contacts=contacts, leads=leads, threads=threads)


def _activity_links(incoming: Incoming, matches: Matches, own: set[str]) -> list[dict[str, int | None]]:
    """The records to log ``incoming`` on, one activity each: the first carries the thread's records and
    the first contact and lead matched; each further contact or lead matched gets its own."""
    first: dict[str, int | None] = {}
    for message_id in incoming.thread_ids:
        for links in matches.threads.get(message_id, ()):
            for name, value in links.items():
                if value is not None:
                    first.setdefault(name, value)
    groups = [first]
    seen_contacts = {first.get("contact")} - {None}
    seen_leads = {first.get("lead")} - {None}
    for address in incoming.addresses:
        if address in own:
            continue
        for pk, account_id, _owner in matches.contacts.get(address, ()):
            if pk in seen_contacts:
                continue
            seen_contacts.add(pk)
            target = first if "contact" not in first else {}
            target["contact"] = pk
            if account_id and "account" not in target:
                target["account"] = account_id
            if target is not first:
                groups.append(target)
        for pk, _owner in matches.leads.get(address, ()):
            if pk in seen_leads:
                continue
            seen_leads.add(pk)
            if "lead" not in first:
                first["lead"] = pk
            else:
                groups.append({"lead": pk})
    return [g for g in groups if g][:MAX_ACTIVITIES_PER_MESSAGE]


def _owner_of(links: dict[str, int | None], matches: Matches, mailbox: Mailbox | None) -> int | None:
    if mailbox is not None and mailbox.owner_id:
        return mailbox.owner_id
    for rows in matches.contacts.values():
        for pk, _account, owner in rows:
            if pk == links.get("contact"):
                return owner
    for rows in matches.leads.values():
        for pk, owner in rows:
            if pk == links.get("lead"):
                return owner
    return None


def _lead_from_sender(incoming: Incoming, mailbox: Mailbox | None) -> dict[str, int | None] | None:
    """An unmatched sender becomes a lead (a mailbox with create_leads), written by the lead service."""
    if not incoming.from_address:
        return None
    name = incoming.from_name or incoming.from_address
    lead = lead_create(
        user=SYSTEM,
        data={
            "name": (incoming.subject or f"Email from {name}")[:200],
            "contact_name": name[:200],
            "email": incoming.from_address,
            "source": "other",
            "owner": mailbox.owner if mailbox is not None else None,
            "description": f"Created from an email to {mailbox or 'the CRM'}.",
        },
    )
    return {"lead": lead.pk}


@dataclass
class Logged:
    logged: int = 0
    duplicates: int = 0
    unmatched: int = 0
    message_ids: list[str] = field(default_factory=list)


def _write(batch: list[Incoming], *, mailbox: Mailbox | None, own: set[str]) -> Logged:
    """Log ``batch`` (messages not logged yet, one per Message-ID) in the caller's transaction."""
    result = Logged()
    matches = matches_find(batch)
    now = timezone.now()
    plans: list[tuple[Incoming, list[dict[str, int | None]]]] = []
    for incoming in batch:
        groups = _activity_links(incoming, matches, own)
        if not groups and mailbox is not None and mailbox.create_leads and incoming.from_address not in own:
            lead = _lead_from_sender(incoming, mailbox)
            groups = [lead] if lead else []
        if not groups:
            result.unmatched += 1
            continue
        plans.append((incoming, groups))
    if not plans:
        return result
    activities: list[Activity] = []
    for incoming, groups in plans:
        when = incoming.date or now
        for links in groups:
            activities.append(
                Activity(
                    subject=(incoming.subject or "(no subject)")[:200],
                    activity_type=ActivityType.EMAIL,
                    description=f"From: {incoming.from_address}\n\n{incoming.text}".strip(),
                    due_date=when,
                    completed_at=when,
                    status=ActivityStatus.COMPLETED,
                    owner_id=_owner_of(links, matches, mailbox),
                    **{f"{name}_id": links.get(name) for name in LINKS},
                )
            )
    Activity.objects.bulk_create(activities, batch_size=500)
    Activity.history.bulk_history_create(activities, default_change_reason="Logged from an email")
    messages = [
        EmailMessage(
            direction=EmailDirection.INBOUND,
            message_id=incoming.message_id,
            mailbox=mailbox,
            from_address=incoming.from_address,
            to_addresses=", ".join(incoming.to),
            cc_addresses=", ".join(incoming.cc),
            subject=incoming.subject,
            in_reply_to=incoming.in_reply_to,
            references=" ".join(incoming.references),
            sent_at=incoming.date,
            skipped="\n".join(incoming.skipped),
        )
        for incoming, _groups in plans
    ]
    EmailMessage.objects.bulk_create(messages, batch_size=500)
    through = EmailMessage.activities.through
    links, position = [], 0
    for message, (_incoming, groups) in zip(messages, plans, strict=True):
        for _ in groups:
            links.append(through(emailmessage_id=message.pk, activity_id=activities[position].pk))
            position += 1
    through.objects.bulk_create(links, batch_size=1000)
    position = 0
    for incoming, groups in plans:
        if incoming.attachments:
            uploads = [SimpleUploadedFile(name, payload) for name, payload in incoming.attachments]
            attachments_create(user=SYSTEM, record=activities[position], uploads=uploads)
        for message_skip in incoming.skipped:
            logger.warning("Email %s: %s", incoming.message_id, message_skip)
        position += len(groups)
    lead_ids = {a.lead_id for a in activities if a.lead_id}
    if lead_ids:
        lead_last_activity_refresh(lead_ids=lead_ids)
        if len(lead_ids) <= 200:  # a big first poll leaves the scores to the nightly recompute
            for lead in Lead.objects.filter(pk__in=lead_ids):
                lead_score_refresh(lead=lead)
    result.logged = len(plans)
    result.message_ids = [incoming.message_id for incoming, _ in plans]
    return result


def emails_log(batch: list[Incoming], *, mailbox: Mailbox | None = None) -> Logged:
    """Log the messages of ``batch`` not logged yet (by Message-ID) on the records they match, in one
    transaction; if another writer logged one of them meanwhile, each is then written on its own."""
    own = {mailbox.username.lower()} if mailbox is not None and "@" in mailbox.username else set()
    unique: dict[str, Incoming] = {}
    for incoming in batch:
        unique.setdefault(incoming.message_id, incoming)
    known = set(EmailMessage.objects.filter(message_id__in=list(unique)).values_list("message_id", flat=True))
    fresh = [incoming for message_id, incoming in unique.items() if message_id not in known]
    duplicates = len(batch) - len(fresh)
    try:
        with transaction.atomic():
            result = _write(fresh, mailbox=mailbox, own=own)
    except IntegrityError:
        result = Logged()
        for incoming in fresh:
            try:
                with transaction.atomic():
                    one = _write([incoming], mailbox=mailbox, own=own)
            except IntegrityError:
                duplicates += 1
                continue
            result.logged += one.logged
            result.unmatched += one.unmatched
            result.message_ids += one.message_ids
    result.duplicates = duplicates
    return result


def email_receive(*, raw: bytes) -> tuple[Logged, Incoming]:
    """A message sent to the CRM's BCC address, as raw RFC 822: logged like a mailbox's (no lead is
    created for an unknown sender). A ValidationError when it is not an email."""
    try:
        incoming = message_parse(raw)
    except Exception as exc:
        raise ValidationError({"message": f"Not a readable email message: {exc}"}) from exc
    return emails_log([incoming]), incoming


# --- polling --------------------------------------------------------------------------------------------


@dataclass
class PollResult:
    mailbox: str
    fetched: int = 0
    logged: int = 0
    duplicates: int = 0
    unmatched: int = 0
    skipped: int = 0
    error: str = ""


def _connect(mailbox: Mailbox, password: str):
    cls = MailBox if mailbox.use_ssl else MailBoxUnencrypted
    box = cls(mailbox.host, mailbox.port, timeout=settings.CRM_MAILBOX_TIMEOUT)
    return box.login(mailbox.username, password, initial_folder=mailbox.folder or "INBOX")


def _claim(mailbox: Mailbox) -> bool:
    now = timezone.now()
    lease = now + datetime.timedelta(seconds=max(600, settings.CRM_MAILBOX_TIMEOUT * 10))
    return bool(
        Mailbox.objects.filter(
            Q(polling_until__isnull=True) | Q(polling_until__lt=now), pk=mailbox.pk
        ).update(polling_until=lease)
    )


def _chunks(items: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def mailbox_poll(*, mailbox: Mailbox) -> PollResult:
    """Read the messages of ``mailbox`` with a UID above the last one read and log them. Errors are
    logged on the mailbox (``last_error``) and returned, never raised: the poller goes on."""
    result = PollResult(mailbox=mailbox.name)
    if not _claim(mailbox):
        result.error = "Being read by another worker."
        return result
    try:
        _poll(mailbox, result)
    except MAILBOX_ERRORS as exc:
        result.error = f"{type(exc).__name__}: {exc}"[:2000]
    except ValueError as exc:  # a password no key decrypts
        result.error = str(exc)[:2000]
    if result.error:
        logger.warning("Mailbox %s: %s", mailbox.name, result.error)
    Mailbox.objects.filter(pk=mailbox.pk).update(
        polling_until=None, last_polled_at=timezone.now(), last_error=result.error
    )
    return result


def _poll(mailbox: Mailbox, result: PollResult) -> None:
    password = secret_decrypt(mailbox.password_encrypted)
    with _connect(mailbox, password) as box:
        folder = mailbox.folder or "INBOX"
        validity = int(box.folder.status(folder, ["UIDVALIDITY"])["UIDVALIDITY"])
        last_uid = mailbox.last_uid if mailbox.uid_validity == validity else 0
        if mailbox.uid_validity != validity:
            Mailbox.objects.filter(pk=mailbox.pk).update(uid_validity=validity, last_uid=0)
            mailbox.uid_validity, mailbox.last_uid = validity, 0
        # "n:*" always names the newest message, even below n: only the UIDs above the last are new.
        uids = sorted(int(uid) for uid in box.uids(AND(uid=U(last_uid + 1, "*"))) if int(uid) > last_uid)
        uids = uids[: settings.CRM_MAILBOX_POLL_MAX_MESSAGES]
        for chunk in _chunks(uids, max(1, settings.CRM_MAILBOX_BATCH)):
            batch: list[Incoming] = []
            for message in box.fetch(AND(uid=[str(uid) for uid in chunk]), mark_seen=False, bulk=True):
                result.fetched += 1
                try:
                    batch.append(message_read(message))
                except Exception as exc:  # a message the parser cannot read at all: skipped, said so
                    result.skipped += 1
                    logger.warning("Mailbox %s, UID %s skipped: %s", mailbox.name, message.uid, exc)
            with transaction.atomic():
                logged = emails_log(batch, mailbox=mailbox)
                Mailbox.objects.filter(pk=mailbox.pk).update(last_uid=chunk[-1])
            mailbox.last_uid = chunk[-1]
            result.logged += logged.logged
            result.duplicates += logged.duplicates
            result.unmatched += logged.unmatched


def mailboxes_poll() -> list[PollResult]:
    """Every active mailbox, one after the other; one failing does not stop the others."""
    results = []
    for mailbox in Mailbox.objects.filter(is_active=True).order_by("pk"):
        try:
            results.append(mailbox_poll(mailbox=mailbox))
        except Exception as exc:  # a bug or a database error on one mailbox: the others are still read
            logger.exception("Mailbox %s could not be polled", mailbox.name)
            Mailbox.objects.filter(pk=mailbox.pk).update(polling_until=None, last_error=str(exc)[:2000])
            results.append(PollResult(mailbox=mailbox.name, error=str(exc)))
    return results
