"""Writes of leads: create, update, move on the board, mark lost, reopen (a won stage converts through
crm.conversion).
"""

from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from crm import rules
from crm.actors import Actor
from crm.conversion import lead_converter
from crm.models import (
    Lead,
    LeadStatus,
    LostReason,
    Stage,
)

from .access import owner_ensure_allowed, record_ensure_changeable, with_default_owner
from .pipeline_records import (
    pipeline_record_prepare_update,
    pipeline_record_save,
    record_ensure_open,
    record_ensure_stage_in_pipeline,
    record_lost_data,
    record_reopen_stage,
)
from .records import NOT_REOPENABLE, record_lock

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
