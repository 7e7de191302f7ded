"""Saved views: who sees and changes them, and their writes (the acting user is required).

A view is its owner's; shared with a team (its members and manager) or, by a CRM Admin, with
everyone, it shows in their view picker, and only its owner changes it. Whatever a view filters,
the list still shows each reader only the records they may see.
"""

from collections.abc import Mapping
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Q, QuerySet
from django.http import HttpRequest, QueryDict

from crm.actors import Actor, actor_ensure_given, person
from crm.models import SalesTeam, SavedView, ViewSharing
from crm.selectors import sales_team_visible_to, user_sees_everything
from crm.services.records import record_delete, record_lock, record_save

from .specs import PAGE_PARAMETERS, ListSpec, list_spec

DEFINITION_FIELDS = ("list_key", "filters", "search", "ordering", "columns")
WRITABLE_FIELDS = (*DEFINITION_FIELDS, "name", "sharing", "team", "is_default")


def saved_view_visible_to(user: Actor) -> QuerySet[SavedView]:
    """Its owner's, those shared with everyone, and those shared with a team ``user`` is in or manages
    (one query: the teams are a subquery)."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return SavedView.objects.none()
    teams = SalesTeam.objects.filter(Q(manager=user) | Q(members=user)).values("pk")
    return SavedView.objects.filter(
        Q(owner=user) | Q(sharing=ViewSharing.EVERYONE) | Q(sharing=ViewSharing.TEAM, team__in=teams)
    )


def saved_view_list(*, user: Actor, list_key: str | None = None) -> QuerySet[SavedView]:
    views = saved_view_visible_to(user).select_related("owner", "team")
    return views.filter(list_key=list_key) if list_key else views


def _spec_for(view: SavedView, user: Actor) -> ListSpec:
    spec = list_spec(view.list_key)
    if spec is None or not spec.model_admin.has_view_or_change_permission(_request_for(user)):
        raise ValidationError({"list_key": [f"“{view.list_key}” is not a list you can open."]})
    return spec


def _request_for(user: Actor) -> HttpRequest:
    request = HttpRequest()
    request.user = user
    request.method = "GET"
    return request


def _validate_definition(view: SavedView, spec: ListSpec, user: Actor) -> None:
    errors: dict[str, list[str]] = {}
    if not isinstance(view.columns, list) or not all(isinstance(c, str) for c in view.columns):
        errors["columns"] = ["A list of column names."]
    else:
        unknown = [name for name in view.columns if name not in spec.columns]
        if unknown:
            errors["columns"] = [
                f"Unknown column “{name}” for this list; choose from: {', '.join(spec.columns)}."
                for name in unknown
            ]
        elif len(set(view.columns)) != len(view.columns):
            errors["columns"] = ["A column is listed twice."]
    if not isinstance(view.filters, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in view.filters.items()
    ):
        errors["filters"] = ['An object of query parameters to strings: {"status__exact": "open"}.']
    else:
        accepted = spec.filter_parameters(user)
        unknown = [name for name in view.filters if name not in accepted]
        if unknown:
            errors["filters"] = [
                f"Unknown filter “{name}” for this list; it takes: {', '.join(sorted(accepted)) or 'none'}."
                for name in unknown
            ]
    if view.search and not spec.searchable:
        errors["search"] = ["This list has no search."]
    shown = view.columns or spec.columns
    if not isinstance(view.ordering, list) or not all(isinstance(o, str) for o in view.ordering):
        errors["ordering"] = ['A list of column names, "-" before one for descending.']
    else:
        for item in view.ordering:
            name = item.removeprefix("-")
            if name not in shown:
                errors.setdefault("ordering", []).append(f"Unknown column “{name}” to sort by.")
            elif not spec.column_sortable(name):
                errors.setdefault("ordering", []).append(f"The column “{name}” does not sort.")
    if errors:
        raise ValidationError(errors)


def _validate(view: SavedView, user: Actor) -> None:
    spec = _spec_for(view, user)
    _validate_definition(view, spec, user)
    if view.sharing == ViewSharing.EVERYONE and not user_sees_everything(user):
        raise ValidationError({"sharing": ["Only a CRM Admin shares a view with everyone."]})
    shared_with_team = view.sharing == ViewSharing.TEAM and view.team_id is not None
    if shared_with_team and not sales_team_visible_to(user).filter(pk=view.team_id).exists():
        raise ValidationError({"team": ["Share with a team you are in or manage."]})
    if view.sharing != ViewSharing.TEAM:
        view.team = None


def _assign(view: SavedView, data: Mapping[str, Any]) -> None:
    for name, value in data.items():
        if name in WRITABLE_FIELDS:
            setattr(view, name, value)


def _clear_other_default(view: SavedView) -> None:
    # A user has one default view per list: the new default replaces the old one.
    if view.is_default:
        others = SavedView.objects.filter(owner_id=view.owner_id, list_key=view.list_key, is_default=True)
        others.exclude(pk=view.pk).update(is_default=False)


@transaction.atomic
def saved_view_create(*, user: Actor, data: Mapping[str, Any]) -> SavedView:
    actor_ensure_given(user)
    owner = person(user)
    if owner is None:
        raise ValidationError({"owner": ["A saved view belongs to a person."]})
    view = SavedView(owner=owner)
    _assign(view, data)
    _validate(view, user)
    _clear_other_default(view)
    return record_save(instance=view, user=user, publish=False)


def saved_view_editable_by(user: Actor) -> QuerySet[SavedView]:
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return SavedView.objects.none()
    return SavedView.objects.filter(owner=user)


def _ensure_owner(view: SavedView, user: Actor, verb: str) -> None:
    if not saved_view_editable_by(user).filter(pk=view.pk).exists():
        raise PermissionDenied(f"Only its owner {verb} a saved view.")


@transaction.atomic
def saved_view_update(*, saved_view: SavedView, user: Actor, data: Mapping[str, Any]) -> SavedView:
    actor_ensure_given(user)
    _ensure_owner(saved_view, user, "changes")
    view = record_lock(saved_view)
    if "list_key" in data and data["list_key"] != view.list_key:
        raise ValidationError({"list_key": ["A view stays with its list: save a new one instead."]})
    _assign(view, data)
    _validate(view, user)
    _clear_other_default(view)
    return record_save(instance=view, user=user, publish=False)


@transaction.atomic
def saved_view_delete(*, saved_view: SavedView, user: Actor) -> None:
    actor_ensure_given(user)
    _ensure_owner(saved_view, user, "deletes")
    record_delete(instance=saved_view, user=user)


# --- between a view and a changelist's query string -----------------------------------------------


def saved_view_query(*, view: SavedView, display: list[str]) -> QueryDict:
    """The changelist query string that shows ``view``; ``display`` is the list's columns as the
    changelist numbers them for sorting (with "action_checkbox" first when it has actions)."""
    query = QueryDict(mutable=True)
    for name, value in view.filters.items():
        query[name] = value
    if view.search:
        query["q"] = view.search
    positions = []
    for item in view.ordering:
        name = item.removeprefix("-")
        if name in display:
            positions.append(f"{'-' if item.startswith('-') else ''}{display.index(name)}")
    if positions:
        query["o"] = ".".join(positions)
    return query


def definition_from_query(*, query: QueryDict, display: list[str]) -> dict[str, Any]:
    """The filters, search and ordering of a changelist's query string (the inverse of
    ``saved_view_query``); page parameters are left out."""
    filters = {
        name: values[-1]
        for name, values in query.lists()
        if name not in PAGE_PARAMETERS and name not in ("q", "o") and values
    }
    ordering = []
    for part in query.get("o", "").split("."):
        number = part.removeprefix("-")
        if number.isdigit() and int(number) < len(display):
            name = display[int(number)]
            if name != "action_checkbox":
                ordering.append(f"{'-' if part.startswith('-') else ''}{name}")
    return {"filters": filters, "search": query.get("q", "").strip(), "ordering": ordering}
