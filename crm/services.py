"""Writes for the crm app. Every entry point (admin, API, import, commands) goes through these.

Conventions shared with sales and activities services:

- ``data`` maps model field names (``stage``, ``tags``) to values (a Stage, a list of Tags); whatever
  the caller validated for type, the service validates the business rules with ``full_clean()``.
- Bad input raises ``django.core.exceptions.ValidationError`` keyed by model field. A request that
  conflicts with a record's state (moving a closed lead, deleting a stage still in use) raises it with
  one of ``CONFLICT_CODES``, which the API answers with 409 instead of 400.
- Transitions (move stage, win, lose, convert) lock the row with ``select_for_update()`` and check
  the transition from the locked row's state.
"""

import zlib
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, models, transaction
from django.db.models import ProtectedError, RestrictedError

from crm import rules
from crm.actors import Actor, actor_ensure_given, is_system, person
from crm.conversion import lead_converter
from crm.events import publishing as events
from crm.models import (
    Account,
    Contact,
    Lead,
    LeadStatus,
    LostReason,
    Pipeline,
    SalesTeam,
    ScoringRule,
    Stage,
    Tag,
)
from crm.registries import delete_effects
from crm.scoring import lead_score_refresh
from crm.win_probability import (
    account_deal_kind,
    spec_for,
    win_counts_after_delete,
    win_counts_change,
    win_counts_record_change,
    win_snapshots,
    win_snapshots_before_delete,
    win_snapshots_of,
    win_snapshots_of_account_deals,
)

M = TypeVar("M", bound=models.Model)

# ValidationError codes that mean "the request is valid but the record's state forbids it" (409).
CLOSED = "closed"
PROTECTED = "protected"
DEFAULT_PIPELINE = "default_pipeline"
NO_WON_STAGE = "no_won_stage"
NOT_REOPENABLE = "not_reopenable"
CONFLICT_CODES = frozenset({CLOSED, PROTECTED, DEFAULT_PIPELINE, NO_WON_STAGE, NOT_REOPENABLE})


# --- shared helpers -------------------------------------------------------------------------------


def record_assign(*, instance: models.Model, data: Mapping[str, Any]) -> dict[str, Any]:
    """Set ``data``'s concrete fields on ``instance``; return the many-to-many values to set after saving."""
    opts = instance._meta
    m2m_names = {field.name for field in opts.many_to_many}
    m2m = {}
    for name, value in data.items():
        if name in m2m_names:
            m2m[name] = value
            continue
        field = opts.get_field(name)  # FieldDoesNotExist on a typo: a programming error, not input
        if not field.concrete or field.primary_key:
            raise TypeError(f"{opts.label}.{name} cannot be written.")
        setattr(instance, name, value)
    return m2m


def record_save(
    *, instance: M, data: Mapping[str, Any] | None = None, user: Actor | None = None, publish: bool = True
) -> M:
    """Assign ``data`` to ``instance``, validate the whole record with ``full_clean()``, save it,
    and publish its domain event (``user`` is its actor) unless the caller publishes it later."""
    before = events.record_snapshot(instance, data) if publish else None
    m2m = record_assign(instance=instance, data=data or {})
    instance.full_clean()
    reason = _m2m_change_reason(instance, m2m)
    if reason:
        # The audit trail keeps fields, not many-to-many sets: the version this save writes says
        # how the tags changed (old → new), who changed them and when, like any other change.
        instance._change_reason = reason
    try:
        instance.save()
    finally:
        instance.__dict__.pop("_change_reason", None)
    for name, values in m2m.items():
        getattr(instance, name).set(values)
    events.record_published(instance, before=before, user=user)
    return instance


def _m2m_change_reason(instance: models.Model, m2m: Mapping[str, Any]) -> str:
    """“tags: Hot, VIP → Hot, Partner” for each many-to-many set that ``m2m`` changes, else ""."""
    parts = []
    for name, values in m2m.items():
        new = sorted({str(value) for value in values}, key=str.lower)
        old = sorted((str(v) for v in getattr(instance, name).all()), key=str.lower) if instance.pk else []
        if new != old:
            parts.append(f"{name}: {', '.join(old) or '(none)'} → {', '.join(new) or '(none)'}")
    return "; ".join(parts)


def record_version(instance: models.Model) -> str:
    """The version of a record a reader saw: when it was last saved. The API's ETag and the admin's
    hidden ``loaded_version`` both name it, so a change based on an older version is refused."""
    updated_at = getattr(instance, "updated_at", None)
    return updated_at.isoformat() if updated_at else ""


def record_stored_version(instance: models.Model) -> str | None:
    """The stored version of ``instance`` (None once deleted), its row locked until the transaction
    ends: no one can save it between this check and the caller's write."""
    current = type(instance)._default_manager.select_for_update().filter(pk=instance.pk).first()
    return None if current is None else record_version(current)


def record_lock(instance: M) -> M:
    """The row of ``instance`` re-read under ``SELECT ... FOR UPDATE``: transitions decide from it."""
    return type(instance)._default_manager.select_for_update().get(pk=instance.pk)


def record_delete(*, instance: models.Model, user: Actor) -> None:
    """Delete a record, or explain in a 409-coded error which records still depend on it."""
    try:
        with transaction.atomic():
            # A closed lead or opportunity leaves its pipeline's win-probability history with it.
            counted = win_snapshots_of(instance)
            # ... and the closed records that lose it as a tag, an account or an owner move theirs.
            dependents = win_snapshots_before_delete(instance)
            # What other apps recompute once the records the delete cascades to are gone.
            follow_ups = delete_effects(instance)
            with events.record_deleting(instance, user=user):
                instance.delete()
            for follow_up in follow_ups:
                follow_up()
            if counted:
                win_counts_change(kind=spec_for(instance).kind, removed=counted, added=[])
            win_counts_after_delete(dependents)
    except (ProtectedError, RestrictedError) as exc:
        # Both errors carry the blocking records as their second argument.
        raise ValidationError(protected_message(instance, exc.args[1]), code=PROTECTED) from exc


def protected_message(instance: models.Model | None, blockers) -> str:
    counts = Counter(type(obj)._meta for obj in blockers)
    parts = [
        f"{count} {opts.verbose_name if count == 1 else opts.verbose_name_plural}"
        for opts, count in sorted(counts.items(), key=lambda item: item[0].label)
    ]
    what = "This record" if instance is None else f"{instance._meta.verbose_name.capitalize()} “{instance}”"
    return f"{what} cannot be deleted: it is still used by {', '.join(parts)}. Move or delete those first."


# --- the change rule: who may touch which record ----------------------------------------------------

CHANGE_REFUSED = "Only the owner's team may change this record."


def _is_system(user: Actor) -> bool:
    # The system actor (commands, the seed, migrations) may touch every record.
    actor_ensure_given(user)
    return is_system(user)


def _unseen(record: models.Model, field: str) -> ValidationError:
    # Worded as for an id that names no record: a refusal says nothing about what the user cannot see.
    noun = record._meta.verbose_name
    return ValidationError(
        {field: ValidationError(f"No {noun} with the id {record.pk}.", code="does_not_exist")}
    )


def record_ensure_changeable(*, user: Actor, record: models.Model) -> None:
    """Refuse (PermissionDenied, a 403) a write to ``record`` that ``user`` may not change.

    The one change rule for every service that writes a record or several (merge, convert): the
    record's registered ``editable_by`` selector (crm.selectors.register_record_access).
    """
    from crm.selectors import record_is_changeable, record_is_visible

    if _is_system(user) or record_is_changeable(user=user, record=record):
        return
    if record_is_visible(user=user, record=record):
        noun = record._meta.verbose_name
        raise PermissionDenied(f"Only the owner's team may change the {noun} “{record}”.")
    raise PermissionDenied(CHANGE_REFUSED)


def related_ensure_visible(*, user: Actor, record: models.Model | None, field: str) -> None:
    """Refuse (a 400 on ``field``) a link from the record being written to ``record`` when ``user``
    cannot see it: another team's lead is as unknown in a relation field as at its own URL."""
    from crm.selectors import record_is_visible

    if record is None or _is_system(user) or record_is_visible(user=user, record=record):
        return
    raise _unseen(record, field)


def related_ensure_changeable(*, user: Actor, record: models.Model | None, field: str) -> None:
    """Refuse (a 400 on ``field``) a write that links or modifies ``record`` when ``user`` may not
    change it (a conversion linking another team's contact and setting its account)."""
    from crm.selectors import record_is_changeable

    if record is None or _is_system(user) or record_is_changeable(user=user, record=record):
        return
    related_ensure_visible(user=user, record=record, field=field)
    noun = record._meta.verbose_name
    raise ValidationError(
        {
            field: ValidationError(
                f"Only the owner's team may change the {noun} “{record}”: choose one your team may change.",
                code="change_refused",
            )
        }
    )


def rekey_errors(exc: ValidationError, mapping: Mapping[str, str]) -> ValidationError:
    """The same errors filed under other keys: a service reports a nested record's errors in its own terms."""
    if not hasattr(exc, "error_dict"):
        return exc
    return ValidationError({mapping.get(key, key): errors for key, errors in exc.error_dict.items()})


def name_lock(kind: str, name: str) -> None:
    """Serialise creations of a ``kind`` of record with this name (case-insensitive) until commit.

    Accounts have no unique name in the database, yet conversion must never create the same account
    twice: on PostgreSQL a transaction-scoped advisory lock makes concurrent conversions wait for one
    another before they look for an existing record. SQLite already serialises writers.
    """
    if connection.vendor == "postgresql":
        key = zlib.crc32(f"{kind}:{name.strip().lower()}".encode())
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [key])


# --- pipeline records: the rules leads and opportunities share ------------------------------------


def acting_user(user: Actor) -> AbstractBaseUser | None:
    """The user to credit with a change: nobody for the system or an anonymous caller."""
    return person(user)


def stage_change_record(*, record, from_stage: Stage | None, user: Actor) -> None:
    """Add a line to ``record``'s stage history unless it is still in ``from_stage``.

    ``from_stage`` None means the record was just created: the line says which stage it started in,
    so the time spent in that first stage is known too.
    """
    if from_stage is not None and from_stage.pk == record.stage_id:
        return
    record.stage_changes.create(
        from_stage=from_stage,
        from_stage_name=from_stage.name if from_stage is not None else "",
        to_stage=record.stage,
        to_stage_name=record.stage.name,
        changed_by=acting_user(user),
    )


def pipeline_record_save(*, instance: M, data: Mapping[str, Any] | None = None, user: Actor) -> M:
    """``record_save`` for a lead or an opportunity, recording a change of stage in its history
    (and keeping a lead's score and the pipeline's win-probability model current).

    Every service that writes a lead or an opportunity saves through here, so no entry point can move
    a record without the history knowing (the import engine writes its history in bulk itself).
    Closing a record counts it in its pipeline's win-probability model, reopening it takes it out,
    and editing a closed record moves its counts (``win_counts_record_change``).
    """
    counted = [] if instance._state.adding else win_snapshots_of(instance)
    before = events.record_snapshot(instance, data)
    from_stage = None
    if not instance._state.adding:
        field = instance._meta.get_field("stage")
        if field.is_cached(instance):
            from_stage = field.get_cached_value(instance)
        else:
            from_stage = Stage.objects.filter(pk=instance.stage_id).first()
    instance = record_save(instance=instance, data=data, publish=False)
    stage_change_record(record=instance, from_stage=from_stage, user=user)
    if isinstance(instance, Lead):
        lead_score_refresh(lead=instance)
    win_counts_record_change(instance, counted)
    events.record_published(instance, before=before, user=user)
    return instance


def record_ensure_open(record) -> None:
    """A converted, lost or won record stays where it is until it is reopened (rules.record_move_problem)."""
    problem = rules.record_move_problem(
        noun=record._meta.verbose_name, status=record.status, status_label=record.get_status_display()
    )
    if problem is not None:
        raise ValidationError(problem, code=CLOSED)


def record_ensure_stage_in_pipeline(record, stage: Stage) -> None:
    if stage.pipeline_id != record.pipeline_id:
        raise ValidationError(
            {
                "stage": f"The stage “{stage.name}” belongs to the pipeline “{stage.pipeline}”, not to "
                f"this {record._meta.verbose_name}'s pipeline “{record.pipeline}”."
            }
        )


def lost_reason_ensure_active(lost_reason: LostReason | None) -> None:
    if lost_reason is not None and not lost_reason.is_active:
        problem = rules.lost_reason_problem(
            reason=str(lost_reason), reason_active=False, required=False, pipeline="", noun=""
        )
        raise ValidationError({"lost_reason": problem})


def lost_reason_ensure_given(record, lost_reason: LostReason | None) -> None:
    """A pipeline that requires a lost reason refuses to lose a record without one, whatever the route."""
    if lost_reason is None:
        problem = rules.lost_reason_problem(
            reason=None,
            reason_active=True,
            required=record.pipeline.lost_reason_required,
            pipeline=str(record.pipeline),
            noun=record._meta.verbose_name,
        )
        if problem is not None:
            raise ValidationError({"lost_reason": problem})


def record_lost_data(record, *, lost_reason: LostReason | None, lost_note: str) -> dict[str, Any]:
    """Check that an open lead or opportunity may be lost, and the fields that lose it: status lost,
    probability 0, the reason and note, and its pipeline's lost stage when the pipeline has one."""
    record_ensure_open(record)
    lost_reason_ensure_active(lost_reason)
    lost_reason_ensure_given(record, lost_reason)
    return {
        **rules.lost_values(lost_stage=record.pipeline.lost_stage),
        "lost_reason": lost_reason,
        "lost_note": lost_note or "",
    }


def record_reopen_stage(record, stage: Stage | None) -> Stage:
    """Where a reopened record goes: ``stage`` if given (an open stage of its pipeline), else the last
    open stage of its pipeline it was in according to its history, else the pipeline's first open stage.
    """
    if stage is not None:
        record_ensure_stage_in_pipeline(record, stage)
        if stage.is_closed:
            raise ValidationError(
                {"stage": f"“{stage.name}” is a won or lost stage: reopen into an open stage."}
            )
        return stage
    last_open = (
        record.stage_changes.filter(
            to_stage__pipeline=record.pipeline_id, to_stage__is_won=False, to_stage__is_lost=False
        )
        .select_related("to_stage")
        .order_by("-changed_at", "-id")
        .first()
    )
    if last_open is not None:
        return last_open.to_stage
    first = record.pipeline.first_stage()
    if first is None or first.is_closed:
        raise ValidationError(
            {"stage": f"The pipeline “{record.pipeline}” has no open stage to reopen this record into."}
        )
    return first


def pipeline_record_prepare_update(*, record, data: dict[str, Any]) -> Stage | None:
    """Resolve the pipeline and stage an update asks for, in place in ``data``.

    A new pipeline without a stage puts the record in that pipeline's first stage; a new stage brings
    its probability unless the update sets one. A closed record keeps its place. Returns the stage
    when it closes the record (won or lost), so the caller runs that transition after saving.
    """
    pipeline = data.get("pipeline", record.pipeline)
    stage = data.get("stage")
    pipeline_changed = "pipeline" in data and getattr(pipeline, "pk", None) != record.pipeline_id
    stage_changed = stage is not None and stage.pk != record.stage_id
    if not (pipeline_changed or stage_changed):
        data.pop("stage", None)
        return None
    record_ensure_open(record)
    if stage is None and pipeline is not None:
        stage = pipeline.first_stage()
        data["stage"] = stage
    if stage is not None and "probability" not in data:
        data["probability"] = stage.probability
    return stage if stage is not None and stage.is_closed else None


# --- pipelines, stages and vocabularies -----------------------------------------------------------


@transaction.atomic
def pipeline_save(*, pipeline: Pipeline, user: Actor) -> Pipeline:
    """Save a pipeline, keeping exactly one default pipeline.

    Making a pipeline the default takes the flag from the previous default in the same
    transaction; the first pipeline ever saved becomes the default whatever it says.
    """
    # Lock the current default so two concurrent "make default" saves cannot both win.
    current_default = Pipeline.objects.select_for_update().filter(is_default=True).first()
    if current_default is None or current_default.pk == pipeline.pk:
        pipeline.is_default = True if current_default is None else pipeline.is_default
    pipeline.full_clean()
    if pipeline.is_default and current_default is not None and current_default.pk != pipeline.pk:
        Pipeline.objects.filter(pk=current_default.pk).update(is_default=False)
    pipeline.save()
    return pipeline


@transaction.atomic
def pipeline_create(*, user: Actor, data: Mapping[str, Any]) -> Pipeline:
    pipeline = Pipeline()
    record_assign(instance=pipeline, data=data)
    return pipeline_save(pipeline=pipeline, user=user)


@transaction.atomic
def pipeline_update(*, pipeline: Pipeline, user: Actor, data: Mapping[str, Any]) -> Pipeline:
    pipeline = record_lock(pipeline)
    record_assign(instance=pipeline, data=data)
    return pipeline_save(pipeline=pipeline, user=user)


@transaction.atomic
def pipeline_set_default(*, pipeline: Pipeline, user: Actor) -> Pipeline:
    pipeline.is_default = True
    pipeline.is_active = True
    return pipeline_save(pipeline=pipeline, user=user)


def pipeline_delete_problems(*, pipeline: Pipeline) -> list[str]:
    """Why a pipeline cannot be deleted, beyond the records that still use its stages."""
    if pipeline.is_default and Pipeline.objects.exclude(pk=pipeline.pk).exists():
        return [
            f"“{pipeline}” is the default pipeline: make another pipeline the default before deleting it."
        ]
    return []


@transaction.atomic
def pipeline_delete(*, pipeline: Pipeline, user: Actor) -> None:
    problems = pipeline_delete_problems(pipeline=pipeline)
    if problems:
        raise ValidationError(problems[0], code=DEFAULT_PIPELINE)
    record_delete(instance=pipeline, user=user)


@transaction.atomic
def stage_create(*, user: Actor, data: Mapping[str, Any]) -> Stage:
    return record_save(instance=Stage(), data=data)


@transaction.atomic
def stage_update(*, stage: Stage, user: Actor, data: Mapping[str, Any]) -> Stage:
    stage = record_lock(stage)
    pipeline = data.get("pipeline")
    if pipeline is not None and pipeline.pk != stage.pipeline_id:
        raise ValidationError(
            {"pipeline": "A stage cannot move to another pipeline: create it in that pipeline instead."}
        )
    return record_save(instance=stage, data=data)


@transaction.atomic
def tag_create(*, user: Actor, data: Mapping[str, Any]) -> Tag:
    return record_save(instance=Tag(), data=data)


@transaction.atomic
def tag_update(*, tag: Tag, user: Actor, data: Mapping[str, Any]) -> Tag:
    return record_save(instance=record_lock(tag), data=data)


@transaction.atomic
def lost_reason_create(*, user: Actor, data: Mapping[str, Any]) -> LostReason:
    return record_save(instance=LostReason(), data=data)


@transaction.atomic
def lost_reason_update(*, lost_reason: LostReason, user: Actor, data: Mapping[str, Any]) -> LostReason:
    return record_save(instance=record_lock(lost_reason), data=data)


@transaction.atomic
def scoring_rule_create(*, user: Actor, data: Mapping[str, Any]) -> ScoringRule:
    return record_save(instance=ScoringRule(), data=data)


@transaction.atomic
def scoring_rule_update(*, scoring_rule: ScoringRule, user: Actor, data: Mapping[str, Any]) -> ScoringRule:
    return record_save(instance=record_lock(scoring_rule), data=data)


# --- accounts and contacts ------------------------------------------------------------------------


OWNER_OUTSIDE_TEAM = "You may assign a record only to yourself or, as a manager, to a member of your teams."
OWNER_CHANGE_REFUSED = "Only a sales manager or a CRM admin may change the owner of a record someone owns."


def owner_change_problem(
    *,
    record_exists: bool,
    old_owner_id,
    new_owner_id,
    manages_a_team: bool,
    may_assign: Callable[[Any], bool],
) -> tuple[str, str] | None:
    """The owner rule for someone who is not a CRM Admin, as (message, code), or None when allowed.

    A rep assigns only themselves, a manager themselves and the members of the teams they manage
    (``may_assign``, from selectors.owner_assignable_by); taking an unowned record is allowed, but
    reassigning one that someone owns is for team managers only. The import engine applies the same
    function to every row.
    """
    if new_owner_id == old_owner_id:
        return None
    if record_exists and old_owner_id is not None and not manages_a_team:
        return OWNER_CHANGE_REFUSED, "owner_change_refused"
    if new_owner_id is not None and not may_assign(new_owner_id):
        return OWNER_OUTSIDE_TEAM, "owner_outside_team"
    return None


def owner_ensure_allowed(*, user: Actor, record: models.Model, data: Mapping[str, Any]) -> None:
    """Apply owner_change_problem for ``user``; the system actor (command-line imports, the seed) and
    a CRM Admin or superuser may assign anyone."""
    actor_ensure_given(user)
    if is_system(user) or "owner" not in data:
        return
    new = data["owner"]
    new_id = new.pk if new is not None else None
    if new_id == record.owner_id:
        return
    from crm.selectors import owner_assignable_by, user_manages_a_team, user_sees_everything

    if user_sees_everything(user):
        return
    problem = owner_change_problem(
        record_exists=record.pk is not None,
        old_owner_id=record.owner_id,
        new_owner_id=new_id,
        manages_a_team=user_manages_a_team(user),
        may_assign=lambda pk: owner_assignable_by(user).filter(pk=pk).exists(),
    )
    if problem is not None:
        message, code = problem
        raise ValidationError({"owner": ValidationError(message, code=code)})


def with_default_owner(data: Mapping[str, Any], user: Actor) -> dict[str, Any]:
    """New records belong to whoever creates them unless the caller names an owner (or None), who
    must be someone ``user`` may assign (owner_ensure_allowed)."""
    actor_ensure_given(user)
    data = dict(data)
    if "owner" not in data and person(user) is not None:
        data["owner"] = user
    elif "owner" in data:
        owner_ensure_allowed(user=user, record=_Unowned, data=data)
    return data


class _Unowned:
    """What a record about to be created looks like to owner_ensure_allowed."""

    pk = None
    owner_id = None


@transaction.atomic
def account_create(*, user: Actor, data: Mapping[str, Any]) -> Account:
    return record_save(instance=Account(), data=with_default_owner(data, user), user=user)


@transaction.atomic
def account_update(*, account: Account, user: Actor, data: Mapping[str, Any]) -> Account:
    account = record_lock(account)
    record_ensure_changeable(user=user, record=account)
    owner_ensure_allowed(user=user, record=account, data=data)
    industry_changes = "industry" in data and data["industry"] != account.industry
    deals, counted = win_snapshots_of_account_deals([account.pk]) if industry_changes else ([], [])
    account = record_save(instance=account, data=data, user=user)
    if counted:
        # Closed deals count their account's industry in their pipeline's win-probability model.
        deal_kind = account_deal_kind()
        win_counts_change(kind=deal_kind.kind, removed=counted, added=win_snapshots(deal_kind, deals))
    return account


@transaction.atomic
def contact_create(*, user: Actor, data: Mapping[str, Any]) -> Contact:
    return record_save(instance=Contact(), data=with_default_owner(data, user), user=user)


@transaction.atomic
def contact_update(*, contact: Contact, user: Actor, data: Mapping[str, Any]) -> Contact:
    contact = record_lock(contact)
    record_ensure_changeable(user=user, record=contact)
    owner_ensure_allowed(user=user, record=contact, data=data)
    return record_save(instance=contact, data=data, user=user)


# --- leads ----------------------------------------------------------------------------------------


def _lead_enter_closed_stage(*, lead: Lead, stage: Stage, user: Actor) -> Lead:
    """A lead put into a won stage is converted with the default options; into a lost stage, lost
    (with the reason and note the same update gave, if any)."""
    if rules.stage_effect(is_won=stage.is_won, is_lost=stage.is_lost, noun="lead") == rules.CONVERT:
        return lead_converter()(lead=lead, user=user).lead
    return lead_mark_lost(lead=lead, user=user, lost_reason=lead.lost_reason, lost_note=lead.lost_note)


@transaction.atomic
def lead_create(*, user: Actor, data: Mapping[str, Any]) -> Lead:
    """Create a lead; without pipeline or stage it starts in the default pipeline's first stage.

    Created directly in a won or lost stage, it goes through that transition (see lead_move_stage).
    """
    lead = pipeline_record_save(instance=Lead(), data=with_default_owner(data, user), user=user)
    if lead.stage.is_closed:
        lead = _lead_enter_closed_stage(lead=lead, stage=lead.stage, user=user)
    return lead


@transaction.atomic
def lead_update(*, lead: Lead, user: Actor, data: Mapping[str, Any]) -> Lead:
    """Update a lead's fields. A change of pipeline or stage follows the lead_move_stage rules."""
    lead = record_lock(lead)
    record_ensure_changeable(user=user, record=lead)
    owner_ensure_allowed(user=user, record=lead, data=data)
    data = dict(data)
    closing_stage = pipeline_record_prepare_update(record=lead, data=data)
    lead = pipeline_record_save(instance=lead, data=data, user=user)
    if closing_stage is not None:
        lead = _lead_enter_closed_stage(lead=lead, stage=closing_stage, user=user)
    return lead


@transaction.atomic
def lead_move_stage(*, lead: Lead, stage: Stage, user: Actor) -> Lead:
    """Move an open lead to another stage of its pipeline, taking the stage's probability.

    Moving into the pipeline's won stage converts the lead with lead_convert's defaults (an account
    from the company name, a contact from the person, an opportunity); into its lost stage marks it
    lost without a reason.
    """
    lead = record_lock(lead)
    record_ensure_open(lead)
    record_ensure_stage_in_pipeline(lead, stage)
    if stage.is_closed:
        return _lead_enter_closed_stage(lead=lead, stage=stage, user=user)
    return pipeline_record_save(
        instance=lead, data={"stage": stage, "probability": stage.probability}, user=user
    )


@transaction.atomic
def lead_mark_lost(
    *,
    lead: Lead,
    user: Actor,
    lost_reason: LostReason | None = None,
    lost_note: str = "",
) -> Lead:
    """Close an open lead as lost, in its pipeline's lost stage when the pipeline has one.

    A pipeline with ``lost_reason_required`` refuses it without ``lost_reason``.
    """
    lead = record_lock(lead)
    data = record_lost_data(lead, lost_reason=lost_reason, lost_note=lost_note)
    return pipeline_record_save(instance=lead, data=data, user=user)


@transaction.atomic
def lead_reopen(*, lead: Lead, user: Actor, stage: Stage | None = None) -> Lead:
    """Reopen a lost lead: open again, in ``stage`` or where it last was (``record_reopen_stage``),
    with the stage's probability and no lost reason. A converted lead stays converted: its
    opportunity carries on instead.
    """
    lead = record_lock(lead)
    if lead.status != LeadStatus.LOST:
        raise ValidationError(
            f"Only a lost lead can be reopened; this lead is {lead.get_status_display().lower()}.",
            code=NOT_REOPENABLE,
        )
    stage = record_reopen_stage(lead, stage)
    data = {
        "status": LeadStatus.OPEN,
        "stage": stage,
        "probability": stage.probability,
        "lost_reason": None,
        "lost_note": "",
    }
    return pipeline_record_save(instance=lead, data=data, user=user)


# --- sales teams ----------------------------------------------------------------------------------

TEAM_MANAGEMENT_REFUSED = "Only a CRM Admin may create, change or delete sales teams."


def sales_team_ensure_manageable(*, user: Actor) -> None:
    """Teams decide who sees whose records: who manages and who belongs to a team is for a CRM Admin
    (or a superuser) to set, never for a manager, who could otherwise make any team theirs."""
    from crm.selectors import user_sees_everything

    if not is_system(user) and not user_sees_everything(user):
        raise ValidationError(TEAM_MANAGEMENT_REFUSED, code="team_management_refused")


@transaction.atomic
def sales_team_create(*, user: Actor, data: Mapping[str, Any]) -> SalesTeam:
    sales_team_ensure_manageable(user=user)
    return record_save(instance=SalesTeam(), data=data)


@transaction.atomic
def sales_team_update(*, team: SalesTeam, user: Actor, data: Mapping[str, Any]) -> SalesTeam:
    sales_team_ensure_manageable(user=user)
    return record_save(instance=record_lock(team), data=data)


@transaction.atomic
def sales_team_delete(*, team: SalesTeam, user: Actor) -> None:
    sales_team_ensure_manageable(user=user)
    record_delete(instance=team, user=user)
