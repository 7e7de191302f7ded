"""Writes for territories: the tree and its rules, placing an account by the rules when it is saved,
and the background run that re-applies the rules to every account and reports what moved."""

from collections.abc import Iterable, Mapping
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from crm.actors import Actor, is_system
from crm.events import dispatch
from crm.models import Account
from crm.services import record_delete, record_lock, record_save
from sales.models import AccountTerritory, Territory, TerritoryRule, TerritoryRun, TerritoryRunStatus
from sales.territories import CompiledRule, territory_match, territory_rules

RULE_FIELDS = ("country", "state", "postal_code_prefix", "industry", "employees_min", "employees_max")
BATCH = 2000
PLACEMENT_FIELDS = ("pk", "name", "billing_country", "billing_state", "billing_zip", "industry", "employees")


def _parent_ensure_acyclic(territory: Territory) -> None:
    parent = territory.parent
    seen = set()
    while parent is not None and parent.pk not in seen:
        if territory.pk is not None and parent.pk == territory.pk:
            raise ValidationError({"parent": "A territory cannot sit under itself or one of its own."})
        seen.add(parent.pk)
        parent = parent.parent


def _rules_replace(*, territory: Territory, rules: Iterable[Mapping[str, Any]]) -> None:
    """Make ``rules`` (dicts of RULE_FIELDS) the territory's rules: kept in order, the others removed."""
    existing = list(territory.rules.select_for_update().order_by("pk"))
    wanted = list(rules)
    for rule in existing[len(wanted) :]:
        rule.delete()
    for index, values in enumerate(wanted):
        instance = existing[index] if index < len(existing) else TerritoryRule(territory=territory)
        data = {name: values.get(name) for name in RULE_FIELDS}
        # Text criteria left out or null are "any": stored empty, as the admin's inline stores them.
        data = {
            name: value if value is not None or name.startswith("employees") else ""
            for name, value in data.items()
        }
        try:
            record_save(instance=instance, data=data, publish=False)
        except ValidationError as exc:
            messages = "; ".join(f"{key}: {' '.join(errors)}" for key, errors in exc.message_dict.items())
            raise ValidationError({"rules": f"Rule {index + 1}: {messages}"}) from exc


@transaction.atomic
def territory_create(
    *, user: Actor, data: Mapping[str, Any], rules: Iterable[Mapping[str, Any]] | None = None
) -> Territory:
    territory = Territory()
    _parent_ensure_acyclic(Territory(parent=data.get("parent")))
    territory = record_save(instance=territory, data=data, user=user)
    if rules is not None:
        _rules_replace(territory=territory, rules=rules)
    return territory


@transaction.atomic
def territory_update(
    *,
    territory: Territory,
    user: Actor,
    data: Mapping[str, Any],
    rules: Iterable[Mapping[str, Any]] | None = None,
) -> Territory:
    """Update a territory; ``rules``, when given, replace its rules. Accounts move when the rules are
    re-run (territory_run_start), not on each edit: a tree is usually changed in several steps."""
    territory = record_lock(territory)
    if "parent" in data:
        probe = Territory(pk=territory.pk, parent=data["parent"])
        _parent_ensure_acyclic(probe)
    territory = record_save(instance=territory, data=data, user=user)
    if rules is not None:
        _rules_replace(territory=territory, rules=rules)
    return territory


@transaction.atomic
def territory_delete(*, territory: Territory, user: Actor) -> None:
    """Delete a territory without sub-territories; its accounts are left unplaced until the next run."""
    record_delete(instance=territory, user=user)


@transaction.atomic
def territory_rule_create(*, user: Actor, data: Mapping[str, Any]) -> TerritoryRule:
    return record_save(instance=TerritoryRule(), data=data, user=user)


@transaction.atomic
def territory_rule_update(*, rule: TerritoryRule, user: Actor, data: Mapping[str, Any]) -> TerritoryRule:
    return record_save(instance=record_lock(rule), data=data, user=user)


# --- placing accounts -----------------------------------------------------------------------------


def _place(account: Account, match: CompiledRule | None, current: AccountTerritory | None, now) -> bool:
    """Write ``account``'s placement; whether its territory changed."""
    if match is None:
        if current is None:
            return False
        current.delete()
        return True
    if current is not None and current.territory_id == match.territory_id:
        if current.rule_id != match.rule_id:
            AccountTerritory.objects.filter(pk=current.pk).update(rule_id=match.rule_id)
        return False
    AccountTerritory.objects.update_or_create(
        account=account,
        defaults={"territory_id": match.territory_id, "rule_id": match.rule_id, "placed_at": now},
    )
    return True


def account_place(account: Account, *, user: Actor) -> bool:
    """Place ``account`` by the rules (called when its service saves it); whether it moved."""
    current = AccountTerritory.objects.filter(account=account).first()
    return _place(account, territory_match(territory_rules(), account), current, timezone.now())


# --- the background run ---------------------------------------------------------------------------


def _ensure_may_run(user: Actor) -> None:
    if is_system(user):
        return
    if not (user.has_perm("sales.change_territory") and user.has_perm("sales.view_territoryrun")):
        raise PermissionDenied("Only those who manage territories re-run their rules.")


@transaction.atomic
def territory_run_start(*, user: Actor) -> TerritoryRun:
    """Queue a run of the rules over every account (a worker runs it once this commits)."""
    from sales.tasks import territory_run as task

    _ensure_may_run(user)
    run = TerritoryRun.objects.create(started_by=user if getattr(user, "pk", None) else None)
    dispatch.send_after_commit(task, run.pk)
    return run


def territory_run_execute(*, run_id: int) -> TerritoryRun | None:
    """Apply the rules to every account in batches (each its own transaction) and record what moved."""
    with transaction.atomic():
        run = TerritoryRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None or run.status != TerritoryRunStatus.QUEUED:
            return run
        run.status = TerritoryRunStatus.RUNNING
        run.save(update_fields=["status"])
    names = dict(Territory.objects.values_list("pk", "name"))
    rules = territory_rules()
    moves: list[dict] = []
    accounts = moved = 0
    last = 0
    try:
        while True:
            with transaction.atomic():
                batch = list(
                    Account.objects.filter(pk__gt=last)
                    .order_by("pk")
                    .only(
                        "pk",
                        "name",
                        "billing_country",
                        "billing_state",
                        "billing_zip",
                        "industry",
                        "employees",
                    )[:BATCH]
                )
                if not batch:
                    break
                last = batch[-1].pk
                current = {
                    placement.account_id: placement
                    for placement in AccountTerritory.objects.select_for_update().filter(
                        account_id__in=[account.pk for account in batch]
                    )
                }
                now = timezone.now()
                for account in batch:
                    before = current.get(account.pk)
                    match = territory_match(rules, account)
                    if _place(account, match, before, now):
                        moved += 1
                        if len(moves) < TerritoryRun.MOVES_KEPT:
                            moves.append(
                                {
                                    "account_id": account.pk,
                                    "account": account.name,
                                    "from": names.get(before.territory_id) if before else None,
                                    "to": match.territory_name if match else None,
                                }
                            )
                accounts += len(batch)
    except Exception as exc:
        TerritoryRun.objects.filter(pk=run_id).update(
            status=TerritoryRunStatus.FAILED, error=str(exc)[:2000], finished_at=timezone.now()
        )
        raise
    TerritoryRun.objects.filter(pk=run_id).update(
        status=TerritoryRunStatus.DONE,
        accounts=accounts,
        moved=moved,
        moves=moves,
        finished_at=timezone.now(),
    )
    return TerritoryRun.objects.get(pk=run_id)
