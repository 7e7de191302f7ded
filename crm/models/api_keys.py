"""API keys: credentials for integrations, apart from users' tokens, each narrowing its user's rights."""

import re

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone

from .base import ValidatedModel

RATE = re.compile(r"^\d{1,9}/(second|minute|hour|day|s|m|h|d)$")


class ApiKeyScope(models.TextChoices):
    READ = "read", "Read"
    WRITE = "write", "Read and write"


def scopes_validator(value) -> None:
    """``{"leads": "read", "activities": "write", "*": "read"}``: a resource of /api/v1/crm/ (or ``*``
    for every one) and what the key may do with it."""
    if not isinstance(value, dict) or not value:
        raise ValidationError('Give at least one scope: {"leads": "read"}.', code="scopes")
    for resource, level in value.items():
        if not isinstance(resource, str) or not re.fullmatch(r"\*|[a-z][a-z0-9-]{0,63}", resource):
            raise ValidationError(f"“{resource}” is not a resource (leads, activities, *).", code="scopes")
        if level not in ApiKeyScope.values:
            raise ValidationError(f"The scope of “{resource}” must be read or write.", code="scopes")


def rate_validator(value: str) -> None:
    if value and not RATE.match(value):
        raise ValidationError("Write a rate as 100/minute (second, minute, hour or day).", code="rate")


class ApiKey(ValidatedModel):
    """A named key acting as ``user``, limited to ``scopes``, until ``expires_at`` or revocation.

    The key is shown once, at creation: ``<prefix>.<secret>``. The prefix finds the row; only a hash of
    the whole key is kept, compared in constant time."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    key_hash = models.CharField(max_length=64, editable=False)
    scopes = models.JSONField(validators=[scopes_validator], help_text='{"leads": "read", "*": "read"}')
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Empty: never expires.")
    rate = models.CharField(
        max_length=20,
        blank=True,
        validators=[rate_validator],
        help_text="Requests allowed to this key, e.g. 100/minute. Empty: API_RATE_KEY.",
    )
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("-created_at", "-id")
        verbose_name = "API key"
        indexes = [models.Index(fields=["user"], name="crm_apikey_user")]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > timezone.now())

    def allows(self, resource: str, *, write: bool) -> bool:
        level = self.scopes.get(resource) or self.scopes.get("*")
        return level == ApiKeyScope.WRITE or (level == ApiKeyScope.READ and not write)


ACTIVE_KEYS = Q(revoked_at__isnull=True)
