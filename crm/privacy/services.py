"""Privacy requests: export everything held about a person, erase them everywhere, apply retention.

CRM Admins (and the system, for the retention job) only. An erasure anonymises what the registered
sources (``crm.privacy.registry``) find, in their tables and in their audit trails, then replaces the
person's identifiers in every registered free-text copy; it keeps what names no one (amounts, stages,
dates, counts) and records the request without the address. Each request is one transaction.
"""

import datetime
import json
import re
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import validate_email
from django.db import models, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.crypto import salted_hmac

from crm.actors import Actor, actor_ensure_given, is_system, person
from crm.models import Contact, Lead, LeadStatus, PrivacyRequest, PrivacyRequestKind
from crm.privacy.registry import Person, PersonalData, personal_data, text_copies

PRIVACY_REFUSED = "Only a CRM Admin or a superuser may handle privacy requests."
UNKNOWN_EMAIL = "The CRM holds nothing about this address: no lead, contact or other record has it."
ERASED = "[erased]"
# Identifiers shorter than this are not searched for in free text: "Al" would erase half the words.
NEEDLE_MIN_LENGTH = 4
RETENTION_BATCH = 500


def privacy_manageable_by(user: Actor) -> bool:
    if is_system(user):
        return True
    from crm.selectors import user_sees_everything

    return bool(user and user.is_authenticated and user_sees_everything(user))


def _ensure_may_manage(user: Actor) -> None:
    actor_ensure_given(user)
    if not privacy_manageable_by(user):
        raise PermissionDenied(PRIVACY_REFUSED)


def email_hash(email: str) -> str:
    """A keyed hash of the address: says whether an address was erased without naming it."""
    return salted_hmac("crm.privacy.email", email.strip().lower()).hexdigest()


def _clean_email(email: Any) -> str:
    email = (email or "").strip() if isinstance(email, str) else ""
    if not email:
        raise ValidationError({"email": "Give the person's email address."})
    try:
        if len(email) > 254:  # the longest address SMTP carries, and what the log's column holds
            raise ValidationError("too long")
        validate_email(email)
    except ValidationError:
        raise ValidationError({"email": "Enter a valid email address."}) from None
    return email.lower()


# --- who the person is ---------------------------------------------------------------------------------


def _add_needles(target: Person, *values: str) -> None:
    for value in values:
        value = " ".join((value or "").split())
        if len(value) >= NEEDLE_MIN_LENGTH:
            target.needles.add(value)


def _person_from_rows(target: Person, leads: QuerySet, contacts: QuerySet) -> Person:
    for lead in leads.only("id", "email", "contact_name", "phone"):
        target.lead_ids.add(lead.pk)
        _add_needles(target, lead.email, lead.contact_name, lead.phone)
    for contact in contacts.only("id", "email", "first_name", "last_name", "phone", "mobile"):
        target.contact_ids.add(contact.pk)
        _add_needles(target, contact.email, contact.full_name, contact.phone, contact.mobile)
    return target


def person_resolve(*, email: str) -> Person:
    """The leads and contacts with this address (any case), the contact a lead of theirs became and
    the leads a contact of theirs came from, and the identifiers they carry."""
    found = Person(emails={email})
    _add_needles(found, email)
    leads = Lead.objects.filter(email__iexact=email)
    contacts = Contact.objects.filter(email__iexact=email)
    lead_ids = set(leads.values_list("pk", flat=True))
    contact_ids = set(contacts.values_list("pk", flat=True))
    contact_ids |= set(
        Lead.objects.filter(pk__in=lead_ids, converted_contact__isnull=False).values_list(
            "converted_contact_id", flat=True
        )
    )
    lead_ids |= set(Lead.objects.filter(converted_contact_id__in=contact_ids).values_list("pk", flat=True))
    return _person_from_rows(
        found, Lead.objects.filter(pk__in=lead_ids), Contact.objects.filter(pk__in=contact_ids)
    )


def _find(target: Person) -> list[tuple[PersonalData, QuerySet]]:
    """Each source's rows for the person, in registration order (a later source may follow an earlier
    one's ids through ``person.found``)."""
    found = []
    for entry in personal_data():
        ids = list(entry.find(target).order_by("pk").values_list("pk", flat=True))
        target.found[entry.key] = ids
        found.append((entry, entry.model._default_manager.filter(pk__in=ids).order_by("pk")))
    return found


# --- export --------------------------------------------------------------------------------------------


def _history_model(model: type[models.Model]):
    attribute = getattr(model._meta, "simple_history_manager_attribute", None)
    return getattr(model, attribute).model if attribute else None


def _row(instance: models.Model, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    row = {}
    for f in instance._meta.concrete_fields:
        if f.name in exclude:
            continue
        value = getattr(instance, f.attname)
        if isinstance(f, models.FileField):
            value = value.name if value else ""
        row[f.attname] = value
    return row


def _export_document(
    email: str, target: Person, found: list[tuple[PersonalData, QuerySet]]
) -> dict[str, Any]:
    records: dict[str, list] = {}
    history: dict[str, list] = {}
    for entry, queryset in found:
        records[entry.key] = [_row(obj, entry.export_exclude) for obj in queryset]
        if (history_model := _history_model(entry.model)) is not None and target.found[entry.key]:
            versions = history_model.objects.filter(id__in=target.found[entry.key]).order_by(
                "id", "history_date", "history_id"
            )
            history[entry.key] = [_row(version, entry.export_exclude) for version in versions]
    return {
        "email": email,
        "generated_at": timezone.now(),
        "records": records,
        "history": history,
    }


def privacy_export(*, user: Actor, email: str) -> tuple[PrivacyRequest, dict[str, Any]]:
    """Everything the CRM holds about ``email``: its records by kind and their audit trails, as one
    JSON-ready document; the request is logged. An address nothing holds is refused."""
    _ensure_may_manage(user)
    email = _clean_email(email)
    with transaction.atomic():
        target = person_resolve(email=email)
        found = _find(target)
        counts = {entry.key: len(target.found[entry.key]) for entry, _ in found}
        if not any(counts.values()):
            raise ValidationError({"email": UNKNOWN_EMAIL})
        document = _export_document(email, target, found)
        request = PrivacyRequest.objects.create(
            kind=PrivacyRequestKind.EXPORT,
            email=email,
            email_hash=email_hash(email),
            requested_by=person(user),
            records={key: ids for key, ids in target.found.items() if ids},
            counts={key: n for key, n in counts.items() if n},
        )
    return request, document


def privacy_export_document(*, user: Actor, privacy_request: PrivacyRequest) -> dict[str, Any]:
    """An export request's document again, as the CRM holds the person now (not logged again). An
    export whose address an erasure has since cleared has nothing left to give."""
    _ensure_may_manage(user)
    if privacy_request.kind != PrivacyRequestKind.EXPORT or not privacy_request.email:
        raise ValidationError("This request has no export to download (an erasure cleared its address).")
    target = person_resolve(email=privacy_request.email)
    return _export_document(privacy_request.email, target, _find(target))


def export_filename(privacy_request: PrivacyRequest) -> str:
    return f"privacy-export-{privacy_request.pk}.json"


def export_json(document: dict[str, Any]) -> bytes:
    return json.dumps(document, cls=DjangoJSONEncoder, indent=2, ensure_ascii=False).encode()


# --- erasure -------------------------------------------------------------------------------------------


def _pattern(needles: set[str]) -> re.Pattern | None:
    if not needles:
        return None
    # Longest first: "Ann Smith" is replaced whole before "ann@smith.test" could split it.
    alternatives = sorted(needles, key=len, reverse=True)
    return re.compile("|".join(re.escape(n) for n in alternatives), re.IGNORECASE)


def _scrubbed(value: Any, pattern: re.Pattern) -> Any:
    if isinstance(value, str):
        return pattern.sub(ERASED, value)
    if isinstance(value, dict):
        return {_scrubbed(k, pattern): _scrubbed(v, pattern) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrubbed(v, pattern) for v in value]
    return value


def _fields_of(model: type[models.Model], names) -> list[str]:
    present = {f.name for f in model._meta.concrete_fields}
    return [name for name in names if name in present]


def _scrub(queryset: QuerySet, fields, needles: set[str], pattern: re.Pattern) -> int:
    """Replace the identifiers in ``fields`` of the rows of ``queryset`` that quote one; the rows changed."""
    fields = _fields_of(queryset.model, fields)
    if not fields or pattern is None:
        return 0
    condition = Q(pk__in=[])
    for name in fields:
        for needle in needles:
            condition |= Q(**{f"{name}__icontains": needle})
    changed = []
    for obj in queryset.filter(condition).only("pk", *fields).iterator(chunk_size=500):
        for name in fields:
            setattr(obj, name, _scrubbed(getattr(obj, name), pattern))
        changed.append(obj)
    if changed:
        queryset.model._default_manager.bulk_update(changed, fields, batch_size=500)
    return len(changed)


def _anonymise(
    target: Person, found: list[tuple[PersonalData, QuerySet]], *, text_copies_too: bool = True
) -> None:
    pattern = _pattern(target.needles)
    for entry, queryset in found:
        ids = target.found[entry.key]
        if not ids:
            continue
        history_model = _history_model(entry.model)
        if entry.anonymise is not None:
            entry.anonymise(queryset, target)
        if entry.scrub:
            _scrub(queryset, entry.scrub, target.needles, pattern)
        if entry.erase:
            queryset.update(**entry.erase)
        if history_model is not None:
            versions = history_model.objects.filter(id__in=ids)
            if entry.erase:
                versions.update(**{k: v for k, v in entry.erase.items() if _fields_of(history_model, [k])})
            _scrub(versions, (*entry.scrub, "history_change_reason"), target.needles, pattern)
        if entry.delete:
            queryset.delete()
    if text_copies_too:
        _text_copies_scrub(target.needles)


def _text_copies_scrub(needles: set[str]) -> None:
    """Every registered free-text column (and its audit trail's) rid of ``needles``: a scan of each."""
    pattern = _pattern(needles)
    for copies in text_copies():
        _scrub(copies.model._default_manager.all(), copies.fields, needles, pattern)
        if (history_model := _history_model(copies.model)) is not None:
            _scrub(history_model.objects.all(), copies.fields, needles, pattern)


def privacy_erase(*, user: Actor, email: str) -> PrivacyRequest:
    """Anonymise the person with this address everywhere the sources find them and wherever free text
    quotes them; log which records (ids by kind) without the address. Unknown address: refused,
    nothing changed."""
    _ensure_may_manage(user)
    email = _clean_email(email)
    with transaction.atomic():
        target = person_resolve(email=email)
        found = _find(target)
        counts = {entry.key: len(target.found[entry.key]) for entry, _ in found}
        if not any(counts.values()):
            raise ValidationError({"email": UNKNOWN_EMAIL})
        _anonymise(target, found)
        return PrivacyRequest.objects.create(
            kind=PrivacyRequestKind.ERASURE,
            email_hash=email_hash(email),
            requested_by=person(user),
            records={key: ids for key, ids in target.found.items() if ids},
            counts={key: n for key, n in counts.items() if n},
        )


# --- retention -----------------------------------------------------------------------------------------


def _months_before(moment: datetime.datetime, months: int) -> datetime.datetime:
    month_index = moment.year * 12 + moment.month - 1 - months
    year, month = divmod(month_index, 12)
    day = min(moment.day, 28)
    return moment.replace(year=year, month=month + 1, day=day)


PERSONAL_LEAD_FIELDS = ("contact_name", "email", "phone", "job_title", "description", "lost_note")


def retention_due_leads(*, now: datetime.datetime, months: int) -> QuerySet:
    """Leads lost, or open without a change or an activity, for more than ``months`` months, that still
    hold personal data (an anonymised lead holds none, so it is not found again)."""
    cutoff = _months_before(now, months)
    still_personal = Q()
    for name in PERSONAL_LEAD_FIELDS:
        still_personal |= ~Q(**{name: ""})
    lost = Q(status=LeadStatus.LOST, updated_at__lt=cutoff)
    inactive = Q(status=LeadStatus.OPEN, updated_at__lt=cutoff) & (
        Q(last_activity_at__isnull=True) | Q(last_activity_at__lt=cutoff)
    )
    return Lead.objects.filter(lost | inactive).filter(still_personal)


def _in_use_elsewhere(values: set[str], lead_ids: set[int]) -> set[str]:
    """Which of these identifiers a kept lead or any contact still carries (not to be scrubbed)."""
    if not values:
        return set()
    kept = set()
    for value in values:
        lead_match = Q(email__iexact=value) | Q(phone=value) | Q(contact_name__iexact=value)
        contact_match = Q(email__iexact=value) | Q(phone=value) | Q(mobile=value)
        if (
            Lead.objects.filter(lead_match).exclude(pk__in=lead_ids).exists()
            or Contact.objects.filter(contact_match).exists()
        ):
            kept.add(value)
    return kept


def retention_apply(
    *,
    user: Actor,
    now: datetime.datetime | None = None,
    months: int | None = None,
    limit: int = RETENTION_BATCH,
) -> PrivacyRequest | None:
    """Anonymise up to ``limit`` leads past the retention period (CRM_RETENTION_MONTHS; 0 is off), as
    an erasure of each lead alone: their contacts are kept, and an identifier another record still
    carries stays in free text. One logged run; None when nothing was due."""
    _ensure_may_manage(user)
    months = settings.CRM_RETENTION_MONTHS if months is None else months
    if not months or months <= 0:
        return None
    now = now or timezone.now()
    touched: dict[str, list[int]] = {}
    with transaction.atomic():
        leads = list(
            retention_due_leads(now=now, months=months)
            .select_for_update(skip_locked=True, of=("self",))
            .order_by("pk")[:limit]
        )
        if not leads:
            return None
        lead_ids = {lead.pk for lead in leads}
        needles: set[str] = set()
        for lead in leads:
            target = _person_from_rows(Person(), Lead.objects.filter(pk=lead.pk), Contact.objects.none())
            target.needles -= _in_use_elsewhere(set(target.needles), lead_ids)
            if lead.email and lead.email in target.needles:
                target.emails = {lead.email.lower()}
            _anonymise(target, _find(target), text_copies_too=False)
            needles |= target.needles
            for key, ids in target.found.items():
                touched.setdefault(key, []).extend(ids)
        # The free-text columns are scanned once for the whole batch, not once a lead.
        _text_copies_scrub(needles)
        return PrivacyRequest.objects.create(
            kind=PrivacyRequestKind.RETENTION,
            requested_by=person(user),
            records={key: sorted(set(ids)) for key, ids in touched.items() if ids},
            counts={key: len(set(ids)) for key, ids in touched.items() if ids},
        )
