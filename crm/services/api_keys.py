"""API keys: make one (the key is returned once), change its name, scopes, expiry or rate, revoke it."""

import hashlib
import secrets
from collections.abc import Mapping
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from crm.actors import Actor, is_system, person
from crm.models import ApiKey

PREFIX_LENGTH = 12
EDITABLE = ("name", "scopes", "expires_at", "rate")


def api_key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _ensure_may_manage(user: Actor, key: ApiKey) -> None:
    from crm.selectors import user_sees_everything

    if is_system(user) or key.user_id == user.pk or user_sees_everything(user):
        return
    raise PermissionDenied("Only its owner or a CRM Admin manages this key.")


@transaction.atomic
def api_key_create(*, user: Actor, data: Mapping[str, Any]) -> tuple[ApiKey, str]:
    """A new key acting as ``user`` (never more than ``user`` may do), and its secret, shown this once:
    ``<prefix>.<secret>``. Only the prefix (to find it) and a hash of the whole key are kept."""
    owner = person(user)
    if owner is None:
        raise ValidationError("An API key acts as a person: the system has none.")
    prefix = secrets.token_hex(PREFIX_LENGTH // 2)
    raw = f"{prefix}.{secrets.token_urlsafe(32)}"
    key = ApiKey(user=owner, prefix=prefix, key_hash=api_key_hash(raw))
    for name in EDITABLE:
        if name in data:
            setattr(key, name, data[name])
    if key.expires_at is not None and key.expires_at <= timezone.now():
        raise ValidationError({"expires_at": "Choose a time in the future."})
    key.full_clean()
    key.save()
    return key, raw


@transaction.atomic
def api_key_update(*, user: Actor, key: ApiKey, data: Mapping[str, Any]) -> ApiKey:
    key = ApiKey.objects.select_for_update().get(pk=key.pk)
    _ensure_may_manage(user, key)
    for name in EDITABLE:
        if name in data:
            setattr(key, name, data[name])
    key.full_clean()
    key.save()
    return key


@transaction.atomic
def api_key_revoke(*, user: Actor, key: ApiKey) -> ApiKey:
    """Stop a key at once; it stays listed (revoked, with its last use) for the record."""
    key = ApiKey.objects.select_for_update().get(pk=key.pk)
    _ensure_may_manage(user, key)
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
    return key
