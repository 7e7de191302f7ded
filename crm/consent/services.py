"""The writes of consent: purposes (CRM Admins), consent records granted and withdrawn, channel
preferences set. Each needs the acting user and the right to change the person (lead or contact) it
is about; each is atomic and kept in the audit trail (django-simple-history) with who did it."""

import datetime
from collections.abc import Iterable, Mapping
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from crm.actors import Actor, person
from crm.models import Channel, ChannelPreference, ConsentPurpose, ConsentRecord, ConsentSource, Contact, Lead
from crm.services import record_delete, record_ensure_changeable, record_lock, record_save

# What a consent record's update may change; the purpose and the person are what it is about.
CONSENT_EDITABLE = ("lawful_basis", "source", "granted_at", "withdrawn_at", "evidence")


NOUNS = {
    "consentpurpose": "consent purposes",
    "consentrecord": "consent records",
    "channelpreference": "channel preferences",
}


def _ensure_perm(user: Actor, action: str, model: str) -> None:
    if not user.has_perm(f"crm.{action}_{model}"):
        raise PermissionDenied(f"You may not {action} {NOUNS[model]}.")


def _the_person(data: Mapping[str, Any]):
    lead, contact = data.get("lead"), data.get("contact")
    if (lead is None) == (contact is None):
        raise ValidationError({"lead": "Give the lead or the contact it is about (exactly one of them)."})
    return lead if lead is not None else contact


# --- purposes ---------------------------------------------------------------------------------------


@transaction.atomic
def consent_purpose_create(*, user: Actor, data: Mapping[str, Any]) -> ConsentPurpose:
    _ensure_perm(user, "add", "consentpurpose")
    return record_save(instance=ConsentPurpose(), data=data, user=user)


@transaction.atomic
def consent_purpose_update(
    *, purpose: ConsentPurpose, user: Actor, data: Mapping[str, Any]
) -> ConsentPurpose:
    _ensure_perm(user, "change", "consentpurpose")
    purpose = record_lock(purpose)
    if data.get("requires_consent") and not purpose.requires_consent:
        other = purpose.records.filter(withdrawn_at__isnull=True).exclude(lawful_basis="consent")
        if other.exists():
            raise ValidationError(
                {
                    "requires_consent": f"{other.count()} record(s) in force for this purpose rest on "
                    "another lawful basis: withdraw them first."
                }
            )
    return record_save(instance=purpose, data=data, user=user)


@transaction.atomic
def consent_purpose_delete(*, purpose: ConsentPurpose, user: Actor) -> None:
    """A purpose with consent records stays (they are evidence): 409, deactivate it instead."""
    _ensure_perm(user, "delete", "consentpurpose")
    record_delete(instance=purpose, user=user)


# --- consent records --------------------------------------------------------------------------------


@transaction.atomic
def consent_grant(*, user: Actor, data: Mapping[str, Any]) -> ConsentRecord:
    """Record a person's consent (or another lawful basis) for a purpose: ``data`` names the ``lead``
    or the ``contact``, the ``purpose`` and optionally ``lawful_basis``, ``source``, ``granted_at``
    (default now), ``evidence``. Refused when one is in force for that person and purpose already,
    for an inactive purpose, or a purpose that requires consent on another basis."""
    _ensure_perm(user, "add", "consentrecord")
    data = dict(data)
    record_ensure_changeable(user=user, record=_the_person(data))
    purpose = data.get("purpose")
    if purpose is not None and not purpose.is_active:
        raise ValidationError({"purpose": f"The purpose “{purpose}” is no longer in use."})
    if data.get("withdrawn_at") is not None:
        raise ValidationError({"withdrawn_at": "A consent is recorded in force; withdraw it afterwards."})
    data.setdefault("granted_at", timezone.now())
    data["recorded_by"] = person(user)
    return record_save(instance=ConsentRecord(), data=data, user=user)


@transaction.atomic
def consent_update(*, consent: ConsentRecord, user: Actor, data: Mapping[str, Any]) -> ConsentRecord:
    """Correct a record (its basis, source, date, evidence) or withdraw it (``withdrawn_at``). A
    withdrawn consent stays withdrawn: a new consent is a new record."""
    _ensure_perm(user, "change", "consentrecord")
    consent = record_lock(consent)
    record_ensure_changeable(user=user, record=consent.person)
    errors = {}
    for name in ("purpose", "lead", "contact"):
        if name in data and data[name] != getattr(consent, name):
            errors[name] = "A consent stays about its purpose and person: record a new one instead."
    if errors:
        raise ValidationError(errors)
    data = {name: value for name, value in data.items() if name in CONSENT_EDITABLE}
    if (
        consent.withdrawn_at is not None
        and "withdrawn_at" in data
        and data["withdrawn_at"] != consent.withdrawn_at
    ):
        raise ValidationError(
            {"withdrawn_at": "This consent was withdrawn: record a new consent instead of undoing it."}
        )
    if consent.withdrawn_at is not None and any(
        data.get(name, getattr(consent, name)) != getattr(consent, name)
        for name in ("lawful_basis", "granted_at")
    ):
        raise ValidationError({"granted_at": "A withdrawn consent is evidence: it is not changed any more."})
    return record_save(instance=consent, data=data, user=user)


@transaction.atomic
def consent_withdraw(
    *, consent: ConsentRecord, user: Actor, at: datetime.datetime | None = None, evidence: str = ""
) -> ConsentRecord:
    """Withdraw a consent in force (now, or ``at``); withdrawing a withdrawn one changes nothing."""
    _ensure_perm(user, "change", "consentrecord")
    consent = record_lock(consent)
    record_ensure_changeable(user=user, record=consent.person)
    if consent.withdrawn_at is not None:
        return consent
    data: dict[str, Any] = {"withdrawn_at": at or max(timezone.now(), consent.granted_at)}
    if evidence:
        data["evidence"] = f"{consent.evidence}\n{evidence}".strip()
    return record_save(instance=consent, data=data, user=user)


@transaction.atomic
def consent_delete(*, consent: ConsentRecord, user: Actor) -> None:
    """Delete a record entered by mistake (CRM Admins); a consent that ended is withdrawn, not deleted."""
    _ensure_perm(user, "delete", "consentrecord")
    record_ensure_changeable(user=user, record=consent.person)
    record_delete(instance=consent, user=user)


# --- channel preferences ----------------------------------------------------------------------------


@transaction.atomic
def channel_preference_set(
    *,
    user: Actor,
    person_record: Lead | Contact,
    channel: str,
    allowed: bool,
    source: str = ConsentSource.OTHER,
) -> ChannelPreference:
    """Say whether ``person_record`` may be reached by ``channel``: one row per person and channel,
    created or changed (its version in the audit trail says who and when); the same value again
    writes nothing."""
    _ensure_perm(user, "change", "channelpreference")
    if channel not in Channel.values:
        raise ValidationError(
            {"channel": f"“{channel}” is not a channel: use one of {', '.join(Channel.values)}."}
        )
    if source not in ConsentSource.values:
        raise ValidationError({"source": f"“{source}” is not a source."})
    record_ensure_changeable(user=user, record=person_record)
    field = "lead" if isinstance(person_record, Lead) else "contact"
    record_lock(person_record)  # two first settings of one channel would both create the row
    preference = (
        ChannelPreference.objects.select_for_update()
        .filter(**{field: person_record, "channel": channel})
        .first()
    )
    if preference is None:
        preference = ChannelPreference(**{field: person_record, "channel": channel})
    elif preference.allowed == bool(allowed):
        return preference
    data = {"allowed": bool(allowed), "source": source, "recorded_by": person(user)}
    return record_save(instance=preference, data=data, user=user)


@transaction.atomic
def channel_preferences_set(
    *,
    user: Actor,
    person_record: Lead | Contact,
    values: Mapping[str, bool],
    source: str = ConsentSource.OTHER,
) -> list[ChannelPreference]:
    """Several channels at once (``{"email": False, "sms": True}``): all written, or none."""
    return [
        channel_preference_set(user=user, person_record=person_record, channel=c, allowed=v, source=source)
        for c, v in values.items()
    ]


@transaction.atomic
def channel_preference_update(
    *, preference: ChannelPreference, user: Actor, data: Mapping[str, Any]
) -> ChannelPreference:
    """The admin's inline row: its ``allowed`` (and source) changed; the person and channel stay."""
    _ensure_perm(user, "change", "channelpreference")
    preference = record_lock(preference)
    record_ensure_changeable(user=user, record=preference.lead or preference.contact)
    data = {name: value for name, value in data.items() if name in ("allowed", "source")}
    data["recorded_by"] = person(user)
    return record_save(instance=preference, data=data, user=user)


@transaction.atomic
def channel_preference_delete(*, preference: ChannelPreference, user: Actor) -> None:
    """Forget a stated preference (the channel is back to its default: allowed)."""
    _ensure_perm(user, "delete", "channelpreference")
    record_ensure_changeable(user=user, record=preference.lead or preference.contact)
    record_delete(instance=preference, user=user)


# --- the preference centre --------------------------------------------------------------------------


@transaction.atomic
def preference_centre_save(
    *,
    person_record: Lead | Contact,
    user: Actor,
    channels: Mapping[str, bool],
    purposes: Mapping[ConsentPurpose, bool],
    evidence: str,
) -> dict[str, int]:
    """What a person chose on their preference page (reached from a signed link: ``user`` is the
    system acting for them): each channel allowed or not, consent given (lawful basis: consent) or
    withdrawn per purpose. Only what changed is written. Returns how many changes were made."""
    changed = 0
    current = {p.channel: p.allowed for p in ChannelPreference.objects.filter(**_of(person_record))}
    for channel, allowed in channels.items():
        if current.get(channel, True) != allowed or channel not in current:
            channel_preference_set(
                user=user,
                person_record=person_record,
                channel=channel,
                allowed=allowed,
                source=ConsentSource.PREFERENCE_CENTRE,
            )
            changed += current.get(channel, True) != allowed
    changed += _contact_flags_follow(person_record, channels, user)
    in_force = {
        record.purpose_id: record
        for record in ConsentRecord.objects.filter(**_of(person_record), withdrawn_at__isnull=True)
    }
    for purpose, consents in purposes.items():
        record = in_force.get(purpose.pk)
        if consents and record is None:
            consent_grant(
                user=user,
                data={
                    **_of(person_record),
                    "purpose": purpose,
                    "lawful_basis": "consent",
                    "source": ConsentSource.PREFERENCE_CENTRE,
                    "evidence": evidence,
                },
            )
            changed += 1
        elif not consents and record is not None:
            consent_withdraw(consent=record, user=user, evidence=f"Withdrawn: {evidence}")
            changed += 1
    return {"changed": changed}


def _contact_flags_follow(person_record, channels: Mapping[str, bool], user: Actor) -> int:
    """The person's own choice on their page rules over earlier opt-outs: a contact's
    ``email_opt_out`` and ``do_not_call`` (which every sender respects) follow it, and allowing
    email again lifts an unsubscribe of the address (the link was sent to it)."""
    from crm.models import EmailUnsubscribe
    from crm.services import contact_update

    changed = 0
    address = (person_record.email or "").strip().lower()
    if channels.get(Channel.EMAIL) and address:
        changed += EmailUnsubscribe.objects.filter(email=address).delete()[0]
    if not isinstance(person_record, Contact):
        return changed
    flags = {}
    if Channel.EMAIL in channels and person_record.email_opt_out == channels[Channel.EMAIL]:
        flags["email_opt_out"] = not channels[Channel.EMAIL]
    if Channel.PHONE in channels and person_record.do_not_call == channels[Channel.PHONE]:
        flags["do_not_call"] = not channels[Channel.PHONE]
    if flags:
        contact_update(contact=person_record, user=user, data=flags)
    return changed + len(flags)


def _of(person_record) -> dict[str, Any]:
    return {"lead": person_record} if isinstance(person_record, Lead) else {"contact": person_record}


# --- may a marketing email reach this person? --------------------------------------------------------
#
# Marketing email is every message the CRM writes to a person on its own initiative: a campaign's
# email, a sequence's email step, an automation's "send a templated email", a template sent to a
# record from the API. Each asks this one question before writing a message to a person's own
# address. Exempt (not marketing: the person expects them): a reply on a ticket, a quote sent to the
# customer, a satisfaction survey after a ticket, an email a rep writes by hand, an automation's copy
# to the record's owner.


def _kind(record) -> str:
    return "lead" if isinstance(record, Lead) else "contact"


def email_refusals(
    records: Iterable[Lead | Contact], *, purpose: ConsentPurpose | None = None
) -> dict[tuple[str, int], str]:
    """Why each of ``records`` (leads and contacts) may not get a marketing email, for those that may
    not: ``{("lead", 7): ExclusionReason}``. In this order: no address, the address unsubscribed, a
    contact (this one, or any of that address) opted out of email, email turned off in the person's
    channel preferences, no consent in force for ``purpose`` (when it requires consent). At most five
    queries, whatever the number of records."""
    from django.db.models.functions import Lower

    from crm.consent.selectors import emailable
    from crm.models import EmailUnsubscribe, ExclusionReason

    records = list(records)
    addresses = {(_kind(r), r.pk): (r.email or "").strip().lower() for r in records}
    lowered = {address for address in addresses.values() if address}
    unsubscribed = set(EmailUnsubscribe.objects.filter(email__in=lowered).values_list("email", flat=True))
    opted_out = set(
        Contact.objects.annotate(address=Lower("email"))
        .filter(address__in=lowered, email_opt_out=True)
        .values_list("address", flat=True)
    )
    people = emailable(
        lead_ids={r.pk for r in records if isinstance(r, Lead)},
        contact_ids={r.pk for r in records if not isinstance(r, Lead)},
        purpose=purpose,
    )
    reasons = {}
    for record in records:
        key = (_kind(record), record.pk)
        address, among = addresses[key], (0 if key[0] == "lead" else 1)
        if not address:
            reasons[key] = ExclusionReason.NO_EMAIL
        elif address in unsubscribed:
            reasons[key] = ExclusionReason.UNSUBSCRIBED
        elif getattr(record, "email_opt_out", False) or address in opted_out:
            reasons[key] = ExclusionReason.OPTED_OUT
        elif record.pk in people["email_off"][among]:
            reasons[key] = ExclusionReason.EMAIL_OFF
        elif record.pk in people["no_consent"][among]:
            reasons[key] = ExclusionReason.NO_CONSENT
    return reasons


def email_refusal(record: Lead | Contact, *, purpose: ConsentPurpose | None = None) -> str | None:
    """Why ``record`` may not get a marketing email (an ``ExclusionReason``), or None: it may."""
    return email_refusals([record], purpose=purpose).get((_kind(record), record.pk))
