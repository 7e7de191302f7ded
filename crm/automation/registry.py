"""What the apps register into the automation engine: the kinds of records rules act on, and actions.

``register_model`` names a model, its event source name, the service that updates one record and
what "open" and "last activity" mean for it; ``register_action`` adds an action kind with a params
validator, an executor and a preview. crm registers leads, accounts, contacts and its own actions;
sales and activities register theirs from their AppConfig.ready.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db import models
from django.db.models import Q


@dataclass(frozen=True)
class AutomatableModel:
    """A kind of record rules may act on."""

    model: type[models.Model]
    event_name: str  # the event source's name: lead → lead.created, lead.updated...
    update: Callable[..., models.Model]  # (*, instance, user, data) → the record, through its service
    open_q: Q = field(default_factory=Q)  # what counts as open work (least-loaded assignment)
    activity_field: str | None = None  # "N days without activity" reads it
    tags: bool = False

    @property
    def label(self) -> str:
        return self.model._meta.label

    @property
    def noun(self) -> str:
        return str(self.model._meta.verbose_name)


@dataclass(frozen=True)
class ActionKind:
    """One kind of action. ``validate(params, model) → params`` raises ValidationError (a message per
    problem, naming the field); ``execute(ctx) → str`` does it (raising on failure); ``preview(ctx) →
    str`` says what it would do and changes nothing."""

    kind: str
    label: str
    validate: Callable[[dict[str, Any], AutomatableModel], dict[str, Any]]
    execute: Callable[[Any], str]
    preview: Callable[[Any], str]
    models: tuple[str, ...] | None = None  # labels; None: every registered model
    example: dict[str, Any] = field(default_factory=dict)
    atomic: bool = True  # False for an action that only talks to the outside (no transaction held open)
    # Every parameter the admin's form offers, each with a sample value of its type (None: the example's).
    params: dict[str, Any] | None = None


_models: dict[str, AutomatableModel] = {}
_actions: dict[tuple[str, str | None], ActionKind] = {}


def register_model(
    model: type[models.Model],
    *,
    event_name: str,
    update: Callable[..., models.Model],
    open_q: Q | None = None,
    activity_field: str | None = None,
) -> AutomatableModel:
    entry = AutomatableModel(
        model=model,
        event_name=event_name,
        update=update,
        open_q=open_q if open_q is not None else Q(),
        activity_field=activity_field,
        tags=any(f.name == "tags" for f in model._meta.many_to_many),
    )
    _models[entry.label] = entry
    return entry


def register_action(
    kind: str,
    *,
    label: str,
    validate: Callable,
    execute: Callable,
    preview: Callable,
    models: Iterable[str] | None = None,
    example: dict[str, Any] | None = None,
    atomic: bool = True,
    params: dict[str, Any] | None = None,
) -> None:
    """Add an action kind; with ``models`` (labels) only for those (another app may register the same
    kind for its own models: "move_stage" for leads in crm, for opportunities in sales). ``params``:
    every parameter it takes, with a sample value of its type, when the example shows only some."""
    labels = tuple(models) if models is not None else None
    action = ActionKind(kind, label, validate, execute, preview, labels, example or {}, atomic, params)
    for key in labels or (None,):
        _actions[(kind, key)] = action


def automatable_models() -> dict[str, AutomatableModel]:
    return dict(_models)


def model_entry(label: str) -> AutomatableModel | None:
    return _models.get(label)


def action_for(kind: str, label: str) -> ActionKind | None:
    return _actions.get((kind, label)) or _actions.get((kind, None))


def action_kinds(label: str | None = None) -> list[ActionKind]:
    """The action kinds (for ``label``, or all), each once."""
    seen: dict[str, ActionKind] = {}
    for (kind, key), action in _actions.items():
        if label is None or key in (None, label):
            seen.setdefault(kind, action)
    return sorted(seen.values(), key=lambda a: a.kind)
