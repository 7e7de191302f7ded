"""The change rule of the writes: who may change a record, link a related one, and set or change its owner."""

from collections.abc import Callable, Mapping
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models

from crm.actors import Actor, actor_ensure_given, is_system, person

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
    record_exists = record.pk is not None
    problem = owner_change_problem(
        record_exists=record_exists,
        old_owner_id=record.owner_id,
        new_owner_id=new_id,
        # Asked only where it decides: taking an owned record from its owner.
        manages_a_team=record_exists and record.owner_id is not None and user_manages_a_team(user),
        # Anyone may give a record to themselves (owner_assignable_by always holds the user).
        may_assign=lambda pk: pk == user.pk or owner_assignable_by(user).filter(pk=pk).exists(),
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
