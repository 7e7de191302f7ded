"""Writes of sales teams, which only a CRM Admin manages: who belongs to a team decides who sees whose
records.
"""

from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from crm.actors import Actor, is_system
from crm.models import (
    SalesTeam,
)

from .records import record_delete, record_lock, record_save

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
