"""Writes every record shares: assign and save through full_clean, the optimistic lock's version, delete with
its effects, the conflict codes.
"""

import zlib
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import connection, models, transaction
from django.db.models import ProtectedError, RestrictedError

from crm.actors import Actor, person
from crm.events import publishing as events
from crm.registries import delete_effects
from crm.win_probability import (
    spec_for,
    win_counts_after_delete,
    win_counts_change,
    win_snapshots_before_delete,
    win_snapshots_of,
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
    *,
    instance: M,
    data: Mapping[str, Any] | None = None,
    user: Actor | None = None,
    publish: bool = True,
    derive: Callable[[M], Any] | None = None,
) -> M:
    """Assign ``data`` to ``instance``, validate the whole record with ``full_clean()``, save it,
    and publish its domain event (``user`` is its actor) unless the caller publishes it later.
    ``derive(instance)``, called once it is valid and before it is saved, sets the fields computed from
    the others (a lead's score), so that the one save writes them."""
    before = events.record_snapshot(instance, data) if publish else None
    m2m = record_assign(instance=instance, data=data or {})
    instance.full_clean()
    if derive is not None:
        derive(instance)
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
