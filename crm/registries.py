"""What crm learns from the apps above it (sales, activities) without importing them.

Each app fills these from its ``AppConfig.ready()`` (one ``register_with_crm()`` per app), so every
process (the web server, commands, workers, tests) knows them before it handles anything:

- ``register_next_activity_source``: the next open activity of each record on a kanban card;
- ``register_delete_effect``: what deleting a record does to records of another app that crm cannot
  see (the activities it cascades to are gone, so their leads' last activity changes);
- ``register_seed_table``: a table the seeder fills after crm's own, and what it recomputes after;
- ``register_activity_writer``: how crm's sequences and template emails log an activity (a task, an
  email sent) on a lead or a contact's timeline;
- ``register_sent_email_logger``: how the emails crm sent are logged (an email activity with its
  Message-ID, on the record the message was written from) when an app does it better than a task.
- ``register_save_effect``: what saving a record through its service does in another app (sales places
  a new or changed account in its territory).

Registries that belong to one crm module live beside it: ``crm.selectors.register_annotations``,
``crm.api.serializers.register_nested_field``, ``crm.importing.schemas.register_schema``,
``crm.search_indexes.register_trigram_indexes``, ``crm.rules.register_state_fields``,
``crm.win_probability.register_win_kind`` and the older ``register_inline``, ``register_timeline``,
``register_record_actions`` and ``register_record_access``.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.db.models import Model

# --- next activity on a board's cards ----------------------------------------------------------------

# (user, model, ids) -> {record id: the next activity, as the card shows it}
NextActivitySource = Callable[..., dict[int, Any]]
_next_activity_sources: list[NextActivitySource] = []


def register_next_activity_source(source: NextActivitySource) -> None:
    if source not in _next_activity_sources:
        _next_activity_sources.append(source)


def next_activity_by_record(*, user, model: type[Model], ids: Iterable[int]) -> dict[int, Any]:
    """The next activity of each of ``ids`` (records of ``model``) that ``user`` sees, from the
    registered sources; empty when no app registered one."""
    ids = list(ids)
    found: dict[int, Any] = {}
    for source in _next_activity_sources:
        for pk, activity in source(user=user, model=model, ids=ids).items():
            found.setdefault(pk, activity)
    return found


# --- what a delete does beyond crm --------------------------------------------------------------------

# Called with the record about to be deleted; returns what to run once it is gone (or None).
DeleteEffect = Callable[[Model], Callable[[], None] | None]
_delete_effects: list[DeleteEffect] = []


def register_delete_effect(effect: DeleteEffect) -> None:
    if effect not in _delete_effects:
        _delete_effects.append(effect)


def delete_effects(instance: Model) -> list[Callable[[], None]]:
    """Before ``instance`` is deleted: the registered effects' follow-ups, to run after the delete."""
    return [after for effect in _delete_effects if (after := effect(instance)) is not None]


# --- what a save does beyond crm ----------------------------------------------------------------------

# Called with the record just saved by its service and the acting user, inside the save's transaction.
SaveEffect = Callable[..., None]
_save_effects: dict[str, list[SaveEffect]] = {}


def register_save_effect(model_label: str, effect: SaveEffect) -> None:
    effects = _save_effects.setdefault(model_label.lower(), [])
    if effect not in effects:
        effects.append(effect)


def save_effects_run(instance: Model, *, user) -> None:
    for effect in _save_effects.get(instance._meta.label_lower, ()):
        effect(instance, user=user)


# --- the seeder's tables ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeedTable:
    label: str  # the SeedSizes field and the progress label ("opportunities")
    model_label: str  # "sales.Opportunity"
    base_id: str  # the generator's name for the table's ids ("opportunity")
    fields: str  # the generator's attribute listing the generated columns ("OPPORTUNITY_FIELDS")
    rows: str  # the generator's method yielding the rows ("opportunities")
    # The statements that recompute what the rows feed elsewhere once they are written (an
    # opportunity's last_activity_at), each with the table it updates: (statement, table) pairs without
    # parameters. The seed runs them in order on its connection, or with --jobs each table's in order on
    # another connection, the tables side by side.
    after_write: Callable[[], list[tuple[str, str]]] | None = None
    # The seeded models whose rows ``after_write`` rewrites ("sales.Opportunity"): their indexes are
    # built after it, so that it updates a table with its primary key alone (not a million entries in
    # each of twenty indexes), and the tables are compacted before.
    rewrites: tuple[str, ...] = ()


_seed_tables: dict[str, SeedTable] = {}


def register_seed_table(table: SeedTable) -> None:
    """A table the seeder writes after crm's own (accounts, contacts, leads), in registration order."""
    _seed_tables[table.label] = table


def seed_tables() -> list[SeedTable]:
    return list(_seed_tables.values())


# --- activities that crm's automations log (an email sent, a task a sequence creates) ---------------

# (*, user, record, activity_type, subject, description, due_date, completed) -> the activity
ActivityWriter = Callable[..., Any]
_activity_writers: list[ActivityWriter] = []


# (*, user, items) -> the activities; each item holds activity_write's keywords but ``user``
_activity_bulk_writers: list[ActivityWriter] = []


def register_activity_writer(writer: ActivityWriter, *, bulk: ActivityWriter | None = None) -> None:
    """The app that owns activities writes them (through its services) for crm's sequences and emails:
    ``writer`` one at a time, ``bulk`` many in a few statements under the same rules."""
    _activity_writers[:] = [writer]
    _activity_bulk_writers[:] = [bulk] if bulk is not None else []


def activity_writer_registered() -> bool:
    return bool(_activity_writers)


def activity_write(
    *,
    user,
    record: Model,
    activity_type: str,
    subject: str,
    description: str = "",
    due_date=None,
    completed: bool = False,
) -> Any:
    """Log an activity on ``record`` (a lead or a contact) through the registered writer; None when no
    app registered one (crm alone has no activities)."""
    if not _activity_writers:
        return None
    return _activity_writers[0](
        user=user,
        record=record,
        activity_type=activity_type,
        subject=subject,
        description=description,
        due_date=due_date,
        completed=completed,
    )


# --- the log of the emails crm sent ------------------------------------------------------------------

# (*, emails: list[OutgoingEmail]) -> None; called after the messages went out.
SentEmailLogger = Callable[..., None]
_sent_email_loggers: list[SentEmailLogger] = []


def register_sent_email_logger(logger: SentEmailLogger) -> None:
    """The app that owns email activities logs the messages crm sent (replaces the plain activity)."""
    _sent_email_loggers[:] = [logger]


def sent_email_logger() -> SentEmailLogger | None:
    return _sent_email_loggers[0] if _sent_email_loggers else None


# --- campaign figures that other apps own (the deals a campaign sourced, the revenue they won) -------

# (*, user, campaign_ids) -> {campaign id: {"opportunities": int, "won_opportunities": int,
# "won_revenue": Decimal}}, counting only what ``user`` may see
CampaignFigures = Callable[..., dict[int, dict[str, Any]]]
_campaign_figures: list[CampaignFigures] = []


def register_campaign_figures(source: CampaignFigures) -> None:
    """The app that owns opportunities tells crm what each campaign sourced and won."""
    if source not in _campaign_figures:
        _campaign_figures.append(source)


def campaign_figures(*, user, campaign_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """The registered figures of each campaign, merged; a campaign no source knows is absent."""
    ids = list(campaign_ids)
    merged: dict[int, dict[str, Any]] = {}
    for source in _campaign_figures:
        for campaign_id, figures in source(user=user, campaign_ids=ids).items():
            merged.setdefault(campaign_id, {}).update(figures)
    return merged


def activities_write(*, user, items: list[dict[str, Any]]) -> list[Any]:
    """Log many activities (``items``: activity_write's keywords) through the registered bulk writer,
    else one by one; [] when no app registered a writer."""
    if not _activity_writers:
        return []
    if _activity_bulk_writers:
        return list(_activity_bulk_writers[0](user=user, items=items))
    return [activity_write(user=user, **item) for item in items]
