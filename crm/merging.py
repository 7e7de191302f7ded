"""Merging 2–5 duplicate contacts, accounts or leads into one survivor.

``record_merge`` keeps the survivor (the one chosen, else the oldest: earliest created, then lowest
id), fills each of its empty fields from the others in that order, moves every record that points
at the others to it (found from the model's relations, so opportunities, activities, converted
links, stage history and child accounts follow without crm importing those apps), unites the tags,
then deletes the others, all in one transaction. The records moved are changed in bulk, so their
audit-trail versions are written in bulk too (one INSERT ... SELECT per kind of record).
"""

from dataclasses import dataclass, field
from functools import reduce
from operator import or_

from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone

from crm.actors import Actor
from crm.importing.writing import record_history
from crm.models import Account, Contact, Lead, LeadStatus
from crm.services import record_ensure_changeable, record_save
from crm.win_probability import (
    account_deal_kind,
    spec_for,
    win_counts_change,
    win_snapshots,
    win_snapshots_of,
    win_snapshots_of_account_deals,
)

MERGEABLE = (Contact, Account, Lead)
MIN_MERGE, MAX_MERGE = 2, 5
# A lead's closing data describes that lead's own outcome: it is never copied onto the survivor.
NEVER_FILLED = {"id", "created_at", "updated_at", "lost_reason", "lost_note", "converted_at"}
NEVER_FILLED |= {"converted_account", "converted_contact"}


@dataclass
class MergePlan:
    """What a merge will do (shown on the confirmation page) or did."""

    survivor: models.Model
    others: list[models.Model]
    filled: dict[str, object] = field(default_factory=dict)  # survivor field -> value taken from another
    moved: dict[str, int] = field(default_factory=dict)  # "activities (lead)" -> how many rows move


def merge_survivor(records: list[models.Model], survivor: models.Model | None = None) -> models.Model:
    """The survivor: the chosen one, else the oldest."""
    if survivor is not None:
        if survivor.pk not in {r.pk for r in records}:
            raise ValidationError({"survivor": "The survivor must be one of the records merged."})
        return next(r for r in records if r.pk == survivor.pk)
    return min(records, key=lambda r: (r.created_at, r.pk))


def merge_check(records: list[models.Model]) -> None:
    kinds = {type(r) for r in records}
    if len(kinds) > 1:
        raise ValidationError(
            "Only records of one kind can be merged: contacts, accounts or leads, not a mix."
        )
    if kinds and next(iter(kinds)) not in MERGEABLE:
        raise ValidationError(f"{next(iter(kinds))._meta.verbose_name_plural.capitalize()} cannot be merged.")
    count = len({r.pk for r in records})
    if not MIN_MERGE <= count <= MAX_MERGE:
        raise ValidationError(f"Merge between {MIN_MERGE} and {MAX_MERGE} records at a time; {count} given.")


def merge_ensure_allowed(*, user: Actor, records: list[models.Model]) -> None:
    """A merge changes the survivor and deletes the others: ``user`` must be allowed to change each
    (PermissionDenied otherwise), whichever door the merge comes through."""
    for record in records:
        record_ensure_changeable(user=user, record=record)


def _empty(value) -> bool:
    return value is None or value == ""


def _relations(model):
    """(related model, field name, one-to-one) of every foreign key pointing at ``model``."""
    for rel in model._meta.related_objects:
        if rel.many_to_many or not rel.field.concrete:
            continue
        yield rel.related_model, rel.field.name, rel.one_to_one


def _hierarchy_below(model_field, ids: list) -> set:
    """For a field pointing at its own model (an account's parent): ``ids`` and every record below
    them. After the merge they all sit at or under the survivor, so none can be its parent."""
    if not (model_field.is_relation and model_field.related_model is model_field.model):
        return set()
    manager = model_field.model._default_manager
    below, level = set(ids), set(ids)
    while level:
        level = set(
            manager.filter(**{f"{model_field.name}__in": level})
            .exclude(pk__in=below)
            .values_list("pk", flat=True)
        )
        below |= level
    return below


def merge_plan(records: list[models.Model], survivor: models.Model | None = None) -> MergePlan:
    merge_check(records)
    survivor = merge_survivor(records, survivor)
    others = sorted((r for r in records if r.pk != survivor.pk), key=lambda r: (r.created_at, r.pk))
    converted = [r for r in others if isinstance(r, Lead) and r.status == LeadStatus.CONVERTED]
    if converted:
        raise ValidationError(
            {
                "survivor": f"“{converted[0]}” is converted: a converted lead can only be the survivor "
                "of a merge."
            }
        )
    model = type(survivor)
    other_ids = [r.pk for r in others]
    plan = MergePlan(survivor=survivor, others=others)
    for model_field in model._meta.concrete_fields:
        if model_field.name in NEVER_FILLED or not model_field.editable:
            continue
        hierarchy = _hierarchy_below(model_field, [r.pk for r in records])
        current = getattr(survivor, model_field.attname)
        if not _empty(current) and current not in hierarchy:
            continue
        for other in others:
            value = getattr(other, model_field.attname)
            if _empty(value) or value in hierarchy:
                # A parent among the merged records or below them would make the survivor its own
                # ancestor once their children move to it.
                continue
            plan.filled[model_field.name] = getattr(other, model_field.name)
            break
    for related_model, field_name, _ in _relations(model):
        count = related_model._default_manager.filter(**{f"{field_name}__in": other_ids}).count()
        if count:
            plan.moved[f"{related_model._meta.verbose_name_plural} ({field_name})"] = count
    return plan


@transaction.atomic
def record_merge(
    *, records: list[models.Model], survivor: models.Model | None = None, user: Actor
) -> MergePlan:
    """Merge ``records`` into ``survivor`` (default: the oldest); returns what was done."""
    merge_check(records)
    model = type(records[0])
    locked = list(
        model._default_manager.select_for_update().filter(pk__in=[r.pk for r in records]).order_by("pk")
    )
    if len(locked) != len({r.pk for r in records}):
        raise ValidationError("Some of the records to merge no longer exist.")
    merge_ensure_allowed(user=user, records=locked)
    plan = merge_plan(locked, survivor)
    plan_ids = [r.pk for r in locked]
    survivor, other_ids = plan.survivor, [r.pk for r in plan.others]
    spec = spec_for(model)
    # Closed leads merged away leave their pipeline's win-probability history; the survivor's counts
    # follow what the merge fills in. Closed deals of merged accounts take the survivor's industry.
    counted = []
    if spec is not None:
        counted = win_snapshots(spec, [r.pk for r in locked if r.status in spec.closed_statuses])
    elif model is Account:
        deals, deal_counts = win_snapshots_of_account_deals([r.pk for r in locked])
    now = timezone.now()
    reason = f"Merged {model._meta.verbose_name_plural} {', '.join(map(str, other_ids))} into {survivor.pk}"
    moved: dict[type[models.Model], list[str]] = {}  # model → the relations of it that moved

    if model is Account and survivor.parent_id in _hierarchy_below(Account.parent.field, plan_ids):
        # Merging an account with its parent (or an ancestor of its parent): the survivor takes the
        # merged ones' place, never a place under itself (plan.filled may give it another parent).
        survivor.parent = None
        Account.objects.filter(pk=survivor.pk).update(parent=None)
    for related_model, field_name, one_to_one in _relations(model):
        moving = related_model._default_manager.filter(**{f"{field_name}__in": other_ids})
        if one_to_one:
            taken = related_model._default_manager.filter(**{field_name: survivor}).exists()
            if taken or moving.count() > 1:
                raise ValidationError(
                    f"More than one of these {model._meta.verbose_name_plural} has a "
                    f"{related_model._meta.verbose_name}: only one can keep it. Merge those first."
                )
        if related_model is Contact and field_name == "account":
            _keep_one_primary(survivor, moving)
        if related_model is model and field_name == "parent":
            moving = moving.exclude(pk=survivor.pk)
        if _has_history(related_model):
            # Stamped, so the ETag changes and record_history finds exactly these rows.
            if moving.update(**{field_name: survivor, "updated_at": now}):
                moved.setdefault(related_model, []).append(field_name)
        else:
            moving.update(**{field_name: survivor})
    # One version per moved record, even when two of its relations moved (after all the moves).
    for related_model, field_names in sorted(moved.items(), key=lambda item: item[0]._meta.label):
        # Found through the relations' indexes, not by the stamp, which has none.
        now_survivors = reduce(or_, (Q(**{name: survivor}) for name in field_names))
        ids = related_model._default_manager.filter(now_survivors, updated_at=now).values_list(
            "pk", flat=True
        )
        record_history(
            related_model, ids=list(ids), now=now, user_id=getattr(user, "pk", None), reason=reason
        )

    if any(field.name == "last_activity_at" for field in model._meta.concrete_fields):
        # Every activity of the merged records is the survivor's now: so is the newest of them.
        survivor.last_activity_at = max(
            (r.last_activity_at for r in locked if r.last_activity_at is not None), default=None
        )
    tags = {tag for record in [survivor, *plan.others] for tag in record.tags.all()}
    others = list(plan.others)
    model._default_manager.filter(pk__in=other_ids).delete()
    record_save(instance=survivor, data={**plan.filled, "tags": sorted(tags, key=lambda t: t.pk)}, user=user)
    if spec is not None:
        win_counts_change(kind=spec.kind, removed=counted, added=win_snapshots_of(survivor))
    elif model is Account and deal_counts:
        deal_kind = account_deal_kind()
        win_counts_change(kind=deal_kind.kind, removed=deal_counts, added=win_snapshots(deal_kind, deals))
    plan.others = others
    return plan


def _has_history(model) -> bool:
    """Whether ``model`` keeps an audit trail (and the ``updated_at`` that record_history finds rows by)."""
    names = {f.name for f in model._meta.concrete_fields}
    return hasattr(model._meta, "simple_history_manager_attribute") and "updated_at" in names


def _keep_one_primary(account: Account, moving) -> None:
    """Contacts moving to ``account`` stop being primary when it already has (or gets) one."""
    has_primary = Contact.objects.filter(account=account, is_primary=True).exists()
    primaries = list(moving.filter(is_primary=True).order_by("pk").values_list("pk", flat=True))
    demote = primaries if has_primary else primaries[1:]
    if demote:
        Contact.objects.filter(pk__in=demote).update(is_primary=False)
