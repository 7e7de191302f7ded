"""Writes of accounts and contacts."""

from collections.abc import Mapping
from typing import Any

from django.db import transaction

from crm.actors import Actor
from crm.models import (
    Account,
    Contact,
)
from crm.registries import save_effects_run
from crm.win_probability import (
    account_deal_kind,
    win_counts_change,
    win_snapshots,
    win_snapshots_of_account_deals,
)

from .access import owner_ensure_allowed, record_ensure_changeable, with_default_owner
from .records import record_lock, record_save


@transaction.atomic
def account_create(*, user: Actor, data: Mapping[str, Any]) -> Account:
    account = record_save(instance=Account(), data=with_default_owner(data, user), user=user)
    save_effects_run(account, user=user)
    return account


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
    save_effects_run(account, user=user)
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
