"""Email campaigns: who a send reaches and who it leaves out (and why), the send itself as batches on
the workers at a configured rate, the test send, and what the signed links record.

A campaign's email goes to its members (a segment's records join them when the send starts), each
through ``crm.messaging.services.email_template_send`` (the one way to email a record), with its own
signed unsubscribe link in the footer and in the ``List-Unsubscribe`` / ``List-Unsubscribe-Post``
headers (RFC 8058), and its signed preference-centre link. Never to a record without an address, one
whose contact opted out of email, an unsubscribed address, a person who turned email off in their
preferences, one without consent in force for the campaign's purpose (when it requires consent), or
an address the campaign has emailed already; each is checked when the send is previewed, again as
each batch is sent, and by the messaging service itself just before sending.
"""

import html
import re
from collections import Counter
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from django.db.models import Case, CharField, Value, When
from django.db.models.functions import Lower
from django.utils import timezone

from crm.actors import SYSTEM, Actor
from crm.consent.services import email_refusals
from crm.marketing import links
from crm.marketing.selectors import campaign_member_list
from crm.marketing.services import campaign_members_add
from crm.messaging.rendering import Rendered
from crm.messaging.services import (
    email_template_message,
    email_template_send,
    outgoing_emails_queue,
    outgoing_emails_send,
)
from crm.models import (
    Campaign,
    CampaignMember,
    CampaignMemberStatus,
    ConsentPurpose,
    Contact,
    EmailUnsubscribe,
    ExclusionReason,
    OutgoingEmail,
    OutgoingEmailStatus,
    SendStatus,
)
from crm.services import record_lock


def _ensure_may_send(user: Actor) -> None:
    if not user.has_perm("crm.change_campaign"):
        raise PermissionDenied("You may not send campaigns.")


def _ensure_template(campaign: Campaign) -> None:
    if campaign.email_template_id is None:
        raise ValidationError({"email_template": "Choose the email template this campaign sends first."})
    if not campaign.email_template.is_active:
        raise ValidationError(
            {"email_template": f"The email template “{campaign.email_template}” is inactive."}
        )


def exclusions(
    members: list[CampaignMember], already: set[str] | None = None, purpose: ConsentPurpose | None = None
) -> dict[int, str]:
    """Member id → why it is left out (``ExclusionReason``), for those that are: what the consent
    service refuses any marketing email for (``email_refusals``), then ``already``: the addresses this
    campaign has emailed (each address gets one message); ``purpose``: what the email is for (a
    purpose that requires consent reaches only those who gave it)."""
    refused = email_refusals([member.lead or member.contact for member in members], purpose=purpose)
    seen = set(already or ())
    reasons = {}
    for member in members:
        record = member.lead or member.contact
        reason = refused.get(("lead" if member.lead_id else "contact", record.pk))
        address = (record.email or "").strip().lower()
        if reason is not None:
            reasons[member.pk] = reason
        elif address in seen:
            reasons[member.pk] = ExclusionReason.DUPLICATE
        else:
            seen.add(address)
    return reasons


def _sent_addresses(campaign: Campaign) -> set[str]:
    return set(
        campaign.members.filter(send_status__in=[SendStatus.SENT, SendStatus.SENDING, SendStatus.PENDING])
        .exclude(email="")
        .values_list("email", flat=True)
    )


def campaign_send_preview(*, campaign: Campaign, user: Actor) -> dict[str, Any]:
    """What a send would do now, over the members ``user`` sees and the segment's records: how many
    get the email, how many are left out and why. Writes nothing."""
    from crm.marketing.selectors import segment_records

    members = list(campaign_member_list(campaign=campaign, user=user).filter(send_status=SendStatus.NOT_SENT))
    if campaign.segment_id is not None and campaign.segment.entity in ("lead", "contact"):
        field = campaign.segment.entity
        known = set(
            campaign.members.filter(**{f"{field}__isnull": False}).values_list(f"{field}_id", flat=True)
        )
        for record in segment_records(segment=campaign.segment, user=user):
            if record.pk not in known:
                members.append(CampaignMember(campaign=campaign, **{field: record}))
    for index, member in enumerate(members):
        if member.pk is None:
            member.pk = -1 - index  # not stored: an id for this preview only
    reasons = exclusions(members, already=_sent_addresses(campaign), purpose=campaign.consent_purpose)
    counts = Counter(reasons.values())
    return {
        "template_id": campaign.email_template_id,
        "recipients": len(members) - len(reasons),
        "excluded": {reason: counts.get(reason, 0) for reason in ExclusionReason.values},
        "already_sent": campaign.members.filter(send_status=SendStatus.SENT).count(),
    }


@transaction.atomic
def campaign_send(*, campaign: Campaign, user: Actor) -> dict[str, Any]:
    """Start sending ``campaign``'s email to its members not yet emailed (the segment's records join
    first): each is queued (``pending``) or excluded with its reason, and the workers send the queue in
    batches. Refused without a template (400)."""
    _ensure_may_send(user)
    record_lock(campaign)  # one send starts at a time
    campaign = Campaign.objects.select_related("email_template", "segment", "consent_purpose").get(
        pk=campaign.pk
    )
    _ensure_template(campaign)
    if campaign.segment_id is not None:
        if campaign.segment.entity not in ("lead", "contact"):
            raise ValidationError(
                {"segment": "A campaign emails leads or contacts: pick a segment of those."}
            )
        campaign_members_add(campaign=campaign, user=user, segment=campaign.segment)
    members = list(
        campaign_member_list(campaign=campaign, user=user)
        .filter(send_status=SendStatus.NOT_SENT)
        .select_related("lead", "contact")
    )
    reasons = exclusions(members, already=_sent_addresses(campaign), purpose=campaign.consent_purpose)
    now = timezone.now()
    by_reason: dict[str, list[int]] = {}
    for pk, reason in reasons.items():
        by_reason.setdefault(reason, []).append(pk)
    for reason, ids in by_reason.items():
        _update_in_chunks(ids, send_status=SendStatus.EXCLUDED, excluded_reason=reason, updated_at=now)
    queued = [member.pk for member in members if member.pk not in reasons]
    _update_in_chunks(queued, send_status=SendStatus.PENDING, updated_at=now)
    if campaign.send_started_at is None:
        Campaign.objects.filter(pk=campaign.pk).update(send_started_at=now)
    if queued:
        from crm.events.dispatch import send_after_commit
        from crm.marketing.tasks import campaign_send_batch

        for _ in range(min(settings.CRM_CAMPAIGN_CONCURRENCY, len(queued))):
            send_after_commit(campaign_send_batch, campaign.pk)
    counts = Counter(reasons.values())
    return {
        "queued": len(queued),
        "excluded": {reason: counts.get(reason, 0) for reason in ExclusionReason.values},
    }


def _update_in_chunks(ids: list[int], **values) -> None:
    for start in range(0, len(ids), 900):  # SQLite's limit on query parameters
        CampaignMember.objects.filter(pk__in=ids[start : start + 900]).update(**values)


HREF = re.compile(r'href="(https?://[^"]+)"', re.IGNORECASE)


def _finish(campaign: Campaign, member_id: int, address: str, record):
    """The rendered message, plus the footer (unsubscribe and preference links), tracked links and
    image when asked; and the placeholders of those links (``{{ campaign.preferences_url }}``)."""
    unsubscribe = links.unsubscribe_url(member_id, address)
    preferences = links.preferences_url(record)

    def finish(rendered: Rendered) -> Rendered:
        body = rendered.html
        if body and campaign.track_clicks:
            body = HREF.sub(
                lambda match: (
                    f'href="{html.escape(links.click_url(member_id, html.unescape(match.group(1))))}"'
                ),
                body,
            )
        if body:
            body += (
                '<p style="font-size:small;color:#666">'
                f"You receive this because of “{html.escape(campaign.name)}”. "
                f'<a href="{html.escape(unsubscribe)}">Unsubscribe</a> · '
                f'<a href="{html.escape(preferences)}">Manage your preferences</a></p>'
            )
            if campaign.track_opens:
                body += f'<img src="{html.escape(links.open_url(member_id))}" width="1" height="1" alt="">'
        text = f"{rendered.text}\n\n--\nUnsubscribe: {unsubscribe}\nYour preferences: {preferences}\n"
        return Rendered(subject=rendered.subject, html=body, text=text)

    headers = {"List-Unsubscribe": f"<{unsubscribe}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
    extra = {"campaign": {"unsubscribe_url": unsubscribe, "preferences_url": preferences}}
    return finish, headers, extra


def _claim(campaign_id: int, size: int) -> list[int]:
    """The next ``size`` pending members, taken (pending → sending) so no other worker sends them."""
    with transaction.atomic():
        pending = CampaignMember.objects.filter(
            campaign_id=campaign_id, send_status=SendStatus.PENDING
        ).order_by("id")
        if connection.features.has_select_for_update_skip_locked:
            pending = pending.select_for_update(skip_locked=True)
        ids = list(pending.values_list("pk", flat=True)[:size])
        CampaignMember.objects.filter(pk__in=ids).update(send_status=SendStatus.SENDING)
    return ids


def campaign_send_batch(*, campaign_id: int) -> tuple[int, bool]:
    """Send one batch of a campaign's queue on one SMTP connection; returns (sent, more to send).

    Each member is checked again (an address may have unsubscribed since the send started), its
    message written and sent through the messaging service, and its line of the send log filled."""
    campaign = (
        Campaign.objects.select_related("email_template", "consent_purpose").filter(pk=campaign_id).first()
    )
    if campaign is None:
        return 0, False
    ids = _claim(campaign_id, settings.CRM_CAMPAIGN_BATCH_SIZE)
    if not ids:
        return 0, False
    members = list(
        CampaignMember.objects.filter(pk__in=ids)
        # What the template's context reads of each record: no query per member.
        .select_related("lead__stage", "lead__pipeline", "lead__owner", "contact__account", "contact__owner")
        .order_by("id")
    )
    reasons = exclusions(members, purpose=campaign.consent_purpose)
    messages: dict[int, OutgoingEmail] = {}
    for member in members:
        if member.pk in reasons:
            continue
        record = member.lead or member.contact
        address = record.email.strip()
        finish, headers, extra = _finish(campaign, member.pk, address, record)
        try:
            # Built, not written: the batch's messages are written in one INSERT below. ``exclusions``
            # asked the consent service about the batch's people and addresses (opt-outs included).
            messages[member.pk] = email_template_message(
                template=campaign.email_template,
                record=record,
                user=SYSTEM,
                to=address,
                headers=headers,
                finish=finish,
                extra_context=extra,
                opted_out=set(),
                refusals={},
            )
        except ValidationError as exc:
            reasons[member.pk] = None
            CampaignMember.objects.filter(pk=member.pk).update(
                send_status=SendStatus.FAILED, error=" ".join(exc.messages)[:2000]
            )
    with transaction.atomic():
        outgoing_emails_queue(emails=list(messages.values()))
        emails = {pk: email.pk for pk, email in messages.items()}
        for reason in set(reasons.values()) - {None}:
            ids_excluded = [pk for pk, why in reasons.items() if why == reason]
            CampaignMember.objects.filter(pk__in=ids_excluded).update(
                send_status=SendStatus.EXCLUDED, excluded_reason=reason
            )
    outgoing_emails_send(ids=list(emails.values()))
    outcome = dict(OutgoingEmail.objects.filter(pk__in=list(emails.values())).values_list("pk", "status"))
    errors = dict(OutgoingEmail.objects.filter(pk__in=list(emails.values())).values_list("pk", "error"))
    now = timezone.now()
    sent = [pk for pk, email_id in emails.items() if outcome.get(email_id) == OutgoingEmailStatus.SENT]
    addresses = {member.pk: (member.lead or member.contact).email.strip().lower() for member in members}
    if sent:  # one UPDATE for the batch: each member's line gets the address it was sent to
        CampaignMember.objects.filter(pk__in=sent).update(
            send_status=SendStatus.SENT,
            sent_at=now,
            email=Case(*[When(pk=pk, then=Value(addresses[pk])) for pk in sent], output_field=CharField()),
        )
    CampaignMember.objects.filter(pk__in=sent, status=CampaignMemberStatus.PLANNED).update(
        status=CampaignMemberStatus.SENT
    )
    for pk, email_id in emails.items():
        status = outcome.get(email_id)
        if status == OutgoingEmailStatus.SUPPRESSED:
            CampaignMember.objects.filter(pk=pk).update(
                send_status=SendStatus.EXCLUDED, excluded_reason=ExclusionReason.OPTED_OUT
            )
        elif status != OutgoingEmailStatus.SENT:
            CampaignMember.objects.filter(pk=pk).update(
                send_status=SendStatus.FAILED, error=(errors.get(email_id) or "not sent")[:2000]
            )
    more = CampaignMember.objects.filter(campaign_id=campaign_id, send_status=SendStatus.PENDING).exists()
    return len(sent), more


def campaign_send_delay() -> float:
    """Seconds between two batches of one sender, so all of them together keep to the rate."""
    rate = settings.CRM_CAMPAIGN_RATE_PER_MINUTE
    if not rate:
        return 0.0
    return settings.CRM_CAMPAIGN_BATCH_SIZE * settings.CRM_CAMPAIGN_CONCURRENCY * 60.0 / rate


@transaction.atomic
def campaign_test_send(*, campaign: Campaign, user: Actor, to: str = "") -> OutgoingEmail:
    """The campaign's message, rendered on its first member (or a record of its segment), sent to
    ``to`` (default: the user's own address) only; the send log and the members are not touched."""
    _ensure_may_send(user)
    _ensure_template(campaign)
    address = (to or getattr(user, "email", "") or "").strip()
    if not address:
        raise ValidationError({"to": "Give the address to send the test to (your account has none)."})
    member = campaign_member_list(campaign=campaign, user=user).first()
    record = (member.lead or member.contact) if member else None
    if record is None and campaign.segment_id is not None:
        from crm.marketing.selectors import segment_records

        record = segment_records(segment=campaign.segment, user=user).first()
    if record is None:
        raise ValidationError({"to": "The campaign has no member (or segment record) to render the test on."})
    finish, headers, extra = _finish(campaign, member.pk if member else 0, address, record)
    return email_template_send(
        template=campaign.email_template,
        record=record,
        user=user,
        to=address,
        headers=headers,
        finish=finish,
        extra_context=extra,
    )


# --- what the signed links record --------------------------------------------------------------------


def member_from_link(token: str, salt: str) -> tuple[CampaignMember | None, dict]:
    payload = links.link_payload(token, salt)
    return CampaignMember.objects.select_related("campaign").filter(pk=payload["m"]).first(), payload


@transaction.atomic
def email_unsubscribe(*, token: str, one_click: bool = False) -> str:
    """Record the unsubscribe a signed link asks for: the address never gets a campaign again (nor any
    email: the messaging service treats it as opted out), contacts of that address are opted out of
    email (through their service, so the audit trail says so), the member is ``unsubscribed``.
    Returns the address. A tampered or expired link raises ``LinkRefused`` and changes nothing."""
    from crm.services import contact_update

    member, payload = member_from_link(token, links.UNSUBSCRIBE_SALT)
    address = str(payload.get("e") or "").lower()
    if not address:
        raise links.LinkRefused(links.INVALID)
    EmailUnsubscribe.objects.get_or_create(
        email=address, defaults={"campaign": member.campaign if member else None, "one_click": one_click}
    )
    for contact in Contact.objects.annotate(address=Lower("email")).filter(
        address=address, email_opt_out=False
    ):
        contact_update(contact=contact, user=SYSTEM, data={"email_opt_out": True})
    if member is not None:
        CampaignMember.objects.filter(pk=member.pk).update(
            status=CampaignMemberStatus.UNSUBSCRIBED, updated_at=timezone.now()
        )
    return address


PROGRESS = [CampaignMemberStatus.PLANNED, CampaignMemberStatus.SENT, CampaignMemberStatus.OPENED]


def email_opened(*, token: str) -> None:
    member, _ = member_from_link(token, links.OPEN_SALT)
    if member is None:
        return
    now = timezone.now()
    CampaignMember.objects.filter(pk=member.pk, opened_at__isnull=True).update(opened_at=now)
    CampaignMember.objects.filter(pk=member.pk, status__in=PROGRESS[:2]).update(
        status=CampaignMemberStatus.OPENED
    )


def email_clicked(*, token: str) -> str:
    """Record the click and return where the link goes (only a URL we signed: no open redirect)."""
    member, payload = member_from_link(token, links.CLICK_SALT)
    target = payload.get("u")
    if not isinstance(target, str) or not target.startswith(("http://", "https://")):
        raise links.LinkRefused(links.INVALID)
    if member is not None:
        now = timezone.now()
        CampaignMember.objects.filter(pk=member.pk, clicked_at__isnull=True).update(clicked_at=now)
        CampaignMember.objects.filter(pk=member.pk, opened_at__isnull=True).update(opened_at=now)
        CampaignMember.objects.filter(pk=member.pk, status__in=PROGRESS).update(
            status=CampaignMemberStatus.CLICKED
        )
    return target
