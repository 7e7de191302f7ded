"""Reads of consents and preferences, limited to the people the reader may see; and the question a
sender asks: who among these people may be emailed for this purpose."""

from collections.abc import Iterable
from typing import Any

from django.db.models import Q, QuerySet

from crm.actors import Actor, is_system
from crm.models import Channel, ChannelPreference, ConsentPurpose, ConsentRecord, LawfulBasis
from crm.selectors import contact_visible_to, lead_visible_to, user_sees_everything


def _people_visible(queryset: QuerySet, user: Actor) -> QuerySet:
    if is_system(user) or user_sees_everything(user):
        return queryset
    if not user.is_authenticated or not user.is_active:
        return queryset.none()
    return queryset.filter(Q(lead__in=lead_visible_to(user)) | Q(contact__in=contact_visible_to(user)))


def consent_purpose_list(*, user: Actor, filters=None) -> QuerySet[ConsentPurpose]:
    queryset = ConsentPurpose.objects.order_by("name", "id")
    if filters and filters.get("is_active") is not None:
        queryset = queryset.filter(is_active=filters["is_active"])
    return queryset


def consent_list(*, user: Actor, filters=None) -> QuerySet[ConsentRecord]:
    """The consent records of the leads and contacts ``user`` sees, newest first."""
    queryset = ConsentRecord.objects.select_related("purpose", "lead", "contact", "recorded_by").order_by(
        "-granted_at", "-id"
    )
    return _people_visible(queryset, user)


def channel_preference_list(*, user: Actor) -> QuerySet[ChannelPreference]:
    return _people_visible(ChannelPreference.objects.select_related("lead", "contact", "recorded_by"), user)


def _person_field(person) -> str:
    return "lead" if person._meta.model_name == "lead" else "contact"


def person_channels(person) -> dict[str, dict[str, Any]]:
    """Each channel for ``person``: allowed or not, whether they said so (else the default: allowed),
    and when. A contact's own ``email_opt_out`` / ``do_not_call``, and an unsubscribed address, turn
    email / phone off too."""
    stated = {p.channel: p for p in ChannelPreference.objects.filter(**{_person_field(person): person})}
    from crm.models import EmailUnsubscribe

    address = (person.email or "").strip().lower()
    unsubscribed = bool(address) and EmailUnsubscribe.objects.filter(email=address).exists()
    flags = {
        Channel.EMAIL: getattr(person, "email_opt_out", False) or unsubscribed,
        Channel.PHONE: getattr(person, "do_not_call", False),
    }
    channels = {}
    for channel in Channel.values:
        preference = stated.get(channel)
        allowed = preference.allowed if preference is not None else True
        channels[channel] = {
            "allowed": allowed and not flags.get(channel, False),
            "stated": preference is not None,
            "updated_at": preference.updated_at if preference is not None else None,
        }
    return channels


def person_consents(person) -> list[ConsentRecord]:
    return list(
        ConsentRecord.objects.filter(**{_person_field(person): person})
        .select_related("purpose", "recorded_by")
        .order_by("-granted_at", "-id")
    )


def emailable(
    *, lead_ids: Iterable[int], contact_ids: Iterable[int], purpose: ConsentPurpose | None
) -> dict[str, tuple[set[int], set[int]]]:
    """For the given people: ``{"email_off": (lead ids, contact ids), "no_consent": (...)}``, those
    whose email preference is off and those without consent in force for ``purpose`` (when it
    requires consent). Two queries (three with a purpose), whatever the number of people."""
    lead_ids, contact_ids = set(lead_ids), set(contact_ids)
    off = ChannelPreference.objects.filter(channel=Channel.EMAIL, allowed=False).filter(
        Q(lead_id__in=lead_ids) | Q(contact_id__in=contact_ids)
    )
    off_leads, off_contacts = set(), set()
    for lead_id, contact_id in off.values_list("lead_id", "contact_id"):
        (off_leads if lead_id else off_contacts).add(lead_id or contact_id)
    missing_leads: set[int] = set()
    missing_contacts: set[int] = set()
    if purpose is not None and purpose.requires_consent:
        given = ConsentRecord.objects.filter(
            purpose=purpose, lawful_basis=LawfulBasis.CONSENT, withdrawn_at__isnull=True
        ).filter(Q(lead_id__in=lead_ids) | Q(contact_id__in=contact_ids))
        with_leads, with_contacts = set(), set()
        for lead_id, contact_id in given.values_list("lead_id", "contact_id"):
            (with_leads if lead_id else with_contacts).add(lead_id or contact_id)
        missing_leads, missing_contacts = lead_ids - with_leads, contact_ids - with_contacts
    return {"email_off": (off_leads, off_contacts), "no_consent": (missing_leads, missing_contacts)}
