"""The rules that decide a lead's or an opportunity's state, as pure functions: no queries, no writes.

The services (crm.services, sales.services) apply them to model instances, the import engine
(crm.importing) to the values it resolved from its in-memory caches, so the two cannot disagree:

- ``STATE_FIELDS``: fields only a transition writes (read-only in the API and the admin, export-only
  in an import);
- ``record_move_problem``: a converted, won or lost record stays where it is until it is reopened;
- ``stage_effect``: entering a won stage converts a lead or wins a deal, a lost stage loses it;
- ``lost_reason_problem``: a lost reason must be in use, and given when the pipeline requires one;
- ``lost_values``: the fields that lose a record (status lost, probability 0, the pipeline's lost stage).

``pipeline_defaults`` (crm.models.lead) is the same kind of rule for a new record's placement.
"""

from typing import Any

OPEN = "open"  # the same value for LeadStatus.OPEN and OpportunityStatus.OPEN
LOST = "lost"

# By model label: the fields a transition (convert, win, lose, reopen) writes and no edit may. The
# apps above crm add their models' (register_state_fields, from their AppConfig.ready()).
STATE_FIELDS: dict[str, tuple[str, ...]] = {
    "crm.Lead": ("status", "converted_at"),
}


def register_state_fields(model_label: str, fields: tuple[str, ...]) -> None:
    STATE_FIELDS[model_label] = tuple(fields)


CONVERT = "convert"  # what entering a won stage does to a lead (a deal is won)
WIN = "win"
LOSE = "lose"


def record_move_problem(*, noun: str, status: str, status_label: str) -> str | None:
    """Why a record in ``status`` may not be moved, converted, won or lost; None when it is open."""
    if status == OPEN:
        return None
    return (
        f"This {noun} is already {status_label.lower()}: a closed {noun} cannot be moved, converted, "
        f"won or lost again until it is reopened."
    )


def stage_effect(*, is_won: bool, is_lost: bool, noun: str) -> str | None:
    """What entering a stage does to an open record: CONVERT (a lead) or WIN (a deal), LOSE, or None."""
    if is_won:
        return CONVERT if noun == "lead" else WIN
    if is_lost:
        return LOSE
    return None


def lost_reason_problem(
    *, reason: str | None, reason_active: bool, required: bool, pipeline: str, noun: str
) -> str | None:
    """Why a record may not be lost with the lost reason named ``reason`` (None: no reason)."""
    if reason is not None and not reason_active:
        return f"The lost reason “{reason}” is no longer in use: choose an active one."
    if reason is None and required:
        return (
            f"The pipeline “{pipeline}” requires a lost reason to lose {with_article(noun)}: "
            f"give one (moving to a lost stage needs one too)."
        )
    return None


def lost_values(*, lost_stage: Any = None) -> dict[str, Any]:
    """The state of a lost record: status lost, probability 0, in its pipeline's lost stage if it has one
    (``lost_stage`` is a Stage for the services, a stage id for the import)."""
    values: dict[str, Any] = {"status": LOST, "probability": 0}
    if lost_stage is not None:
        values["stage"] = lost_stage
    return values


def with_article(noun: str) -> str:
    """“a lead”, “an opportunity”: the indefinite article English puts before ``noun``."""
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"
