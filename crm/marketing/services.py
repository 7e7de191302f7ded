"""The writes of segments and campaigns: define a segment (its filters are checked against the list's
own filters when saved), hand-pick a static segment's members, run campaigns and their members."""

from collections.abc import Iterable, Mapping
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from crm.actors import Actor
from crm.filters import segment_definition_errors
from crm.marketing.selectors import VISIBLE, segment_records
from crm.models import (
    Campaign,
    CampaignMember,
    CampaignMemberStatus,
    Contact,
    Lead,
    Segment,
    SegmentEntity,
    SegmentKind,
)
from crm.services import record_delete, record_lock, record_save
from crm.services.access import with_default_owner

MEMBER_FIELDS = {
    SegmentEntity.LEAD: "leads",
    SegmentEntity.CONTACT: "contacts",
    SegmentEntity.ACCOUNT: "accounts",
}


def _ensure_perm(user: Actor, action: str, model: str) -> None:
    if not user.has_perm(f"crm.{action}_{model}"):
        raise PermissionDenied(f"You may not {action} {model}s.")


# --- segments --------------------------------------------------------------------------------------


def _segment_check(segment: Segment, data: Mapping[str, Any]) -> dict[str, Any]:
    """The segment's definition as the list's filters would read it, and members only on a static one
    and of its kind of record."""
    data = dict(data)
    entity = data.get("entity", segment.entity)
    kind = data.get("kind", segment.kind)
    definition = data.get("definition", segment.definition)
    if definition is None:
        definition = data["definition"] = {}
    changes_entity = segment.pk and entity != segment.entity and "entity" in data
    if changes_entity and getattr(segment, MEMBER_FIELDS[segment.entity]).exists():
        raise ValidationError({"entity": "Remove the members before changing the kind of record."})
    if kind == SegmentKind.DYNAMIC:
        errors = segment_definition_errors(entity, definition)
        if errors:
            raise ValidationError({"definition": errors})
        for field in MEMBER_FIELDS.values():
            if data.get(field):
                raise ValidationError(
                    {field: "A dynamic segment has no members added by hand: make it static."}
                )
            if segment.pk and segment.kind == SegmentKind.STATIC:
                data[field] = []  # a static list made dynamic forgets the members it had
    else:
        if definition:
            raise ValidationError({"definition": "A static segment has no filters: its members are picked."})
        for other, field in MEMBER_FIELDS.items():
            if other != entity and data.get(field):
                raise ValidationError({field: f"This segment holds {entity}s, not {other}s."})
    return data


@transaction.atomic
def segment_create(*, user: Actor, data: Mapping[str, Any]) -> Segment:
    """A new segment; a filter the list does not have, or a value it refuses, is refused."""
    _ensure_perm(user, "add", "segment")
    segment = Segment()
    return record_save(
        instance=segment, data=_segment_check(segment, with_default_owner(data, user)), user=user
    )


@transaction.atomic
def segment_update(*, segment: Segment, user: Actor, data: Mapping[str, Any]) -> Segment:
    _ensure_perm(user, "change", "segment")
    segment = record_lock(segment)
    return record_save(instance=segment, data=_segment_check(segment, data), user=user)


@transaction.atomic
def segment_delete(*, segment: Segment, user: Actor) -> None:
    _ensure_perm(user, "delete", "segment")
    record_delete(instance=segment, user=user)


def _visible_members(segment: Segment, user: Actor, ids: Iterable[int], field: str) -> list:
    ids = {int(pk) for pk in ids}
    found = list(VISIBLE[segment.entity](user).filter(pk__in=ids))
    missing = ids - {record.pk for record in found}
    if missing:
        raise ValidationError(
            {field: f"No {segment.entity} you can see has the id {', '.join(map(str, sorted(missing)))}."}
        )
    return found


@transaction.atomic
def segment_members_change(
    *, segment: Segment, user: Actor, add: Iterable[int] = (), remove: Iterable[int] = ()
) -> Segment:
    """Add and remove members of a static segment by id (records ``user`` sees)."""
    _ensure_perm(user, "change", "segment")
    segment = record_lock(segment)
    if segment.kind != SegmentKind.STATIC:
        raise ValidationError({"add": "Only a static segment has members picked by hand."})
    members = getattr(segment, MEMBER_FIELDS[segment.entity])
    added = _visible_members(segment, user, add, "add")
    removed = _visible_members(segment, user, remove, "remove")
    if added:
        members.add(*added)
    if removed:
        members.remove(*removed)
    # A change of members is a change of the segment: its version and its event say so.
    return record_save(instance=segment, data={}, user=user)


# --- campaigns -------------------------------------------------------------------------------------


@transaction.atomic
def campaign_create(*, user: Actor, data: Mapping[str, Any]) -> Campaign:
    _ensure_perm(user, "add", "campaign")
    return record_save(instance=Campaign(), data=with_default_owner(data, user), user=user)


@transaction.atomic
def campaign_update(*, campaign: Campaign, user: Actor, data: Mapping[str, Any]) -> Campaign:
    _ensure_perm(user, "change", "campaign")
    campaign = record_lock(campaign)
    return record_save(instance=campaign, data=data, user=user)


@transaction.atomic
def campaign_delete(*, campaign: Campaign, user: Actor) -> None:
    """Delete a campaign and its members; the leads and deals it sourced stay, without it."""
    _ensure_perm(user, "delete", "campaign")
    record_delete(instance=campaign, user=user)


def _member_records(user: Actor, model, visible, ids: Iterable[int], field: str) -> list:
    ids = {int(pk) for pk in ids}
    found = list(visible(user).filter(pk__in=ids)) if ids else []
    missing = ids - {record.pk for record in found}
    if missing:
        name = model._meta.verbose_name
        raise ValidationError(
            {field: f"No {name} you can see has the id {', '.join(map(str, sorted(missing)))}."}
        )
    return found


@transaction.atomic
def campaign_members_add(
    *,
    campaign: Campaign,
    user: Actor,
    lead_ids: Iterable[int] = (),
    contact_ids: Iterable[int] = (),
    segment: Segment | None = None,
    status: str = CampaignMemberStatus.PLANNED,
) -> int:
    """Add leads and contacts (by id, or all a segment of leads or contacts holds now, as ``user``
    sees it) to ``campaign``; those already members are left as they are. Returns how many joined."""
    _ensure_perm(user, "add", "campaignmember")
    campaign = record_lock(campaign)
    if status not in CampaignMemberStatus.values:
        raise ValidationError({"status": f"“{status}” is not a member status."})
    leads = _member_records(user, Lead, VISIBLE[SegmentEntity.LEAD], lead_ids, "lead_ids")
    contacts = _member_records(user, Contact, VISIBLE[SegmentEntity.CONTACT], contact_ids, "contact_ids")
    lead_pks = {lead.pk for lead in leads}
    contact_pks = {contact.pk for contact in contacts}
    if segment is not None:
        if segment.entity == SegmentEntity.LEAD:
            lead_pks |= set(segment_records(segment=segment, user=user).values_list("pk", flat=True))
        elif segment.entity == SegmentEntity.CONTACT:
            contact_pks |= set(segment_records(segment=segment, user=user).values_list("pk", flat=True))
        else:
            raise ValidationError(
                {"segment_id": "A campaign reaches leads and contacts: pick a segment of those."}
            )
    existing = campaign.members.all()
    lead_pks -= set(existing.filter(lead__isnull=False).values_list("lead_id", flat=True))
    contact_pks -= set(existing.filter(contact__isnull=False).values_list("contact_id", flat=True))
    rows = [CampaignMember(campaign=campaign, lead_id=pk, status=status) for pk in sorted(lead_pks)]
    rows += [CampaignMember(campaign=campaign, contact_id=pk, status=status) for pk in sorted(contact_pks)]
    CampaignMember.objects.bulk_create(rows, batch_size=1000)
    return len(rows)


@transaction.atomic
def campaign_member_create(*, user: Actor, data: Mapping[str, Any]) -> CampaignMember:
    """One member, by hand (the admin): a lead or a contact ``user`` sees."""
    _ensure_perm(user, "add", "campaignmember")
    record = data.get("lead") or data.get("contact")
    if (
        record is not None
        and not VISIBLE[SegmentEntity.LEAD if data.get("lead") else SegmentEntity.CONTACT](user)
        .filter(pk=record.pk)
        .exists()
    ):
        raise PermissionDenied("You cannot see this record.")
    return record_save(instance=CampaignMember(), data=data, user=user)


@transaction.atomic
def campaign_member_update(*, member: CampaignMember, user: Actor, data: Mapping[str, Any]) -> CampaignMember:
    """Change a member's status (sent, opened, responded...); the record it is stays."""
    _ensure_perm(user, "change", "campaignmember")
    member = record_lock(member)
    data = {name: value for name, value in data.items() if name == "status"}
    return record_save(instance=member, data=data, user=user)


@transaction.atomic
def campaign_member_delete(*, member: CampaignMember, user: Actor) -> None:
    _ensure_perm(user, "delete", "campaignmember")
    record_delete(instance=member, user=user)
