"""API keys at the door: the authentication class (``Authorization: Api-Key <prefix>.<secret>``), the
scope check and the per-key throttle. Its own module: DRF imports it with its settings, while its views
module is loading, so it imports nothing of DRF's views.

A key acts as its user: the same visibility and model permissions apply, and its scopes can only
narrow them (read or write, per resource of /api/v1/crm/)."""

import hashlib
import hmac
from datetime import timedelta

from django.db import router
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from rest_framework import authentication, exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.permissions import SAFE_METHODS

from crm.api.throttling import SimpleRateThrottle
from crm.models import ApiKey
from crm.prepared import prepared

KEYWORD = "api-key"
API_PREFIX = "/api/v1/crm/"
# Resources a key never reaches, whatever its scopes: a key cannot make or revoke keys.
NEVER_BY_KEY = {"api-keys"}
LAST_USED_RESOLUTION = timedelta(minutes=1)
REFUSED = "Invalid API key: unknown, expired or revoked."


def api_key_for(raw: str) -> ApiKey | None:
    """The active key ``raw`` is, or None: found by its prefix, the hash compared in constant time."""
    prefix, dot, _secret = raw.partition(".")
    if not dot or not prefix or len(raw) > 200:
        return None
    key = ApiKey.objects.select_related("user").filter(prefix=prefix).first()
    if key is None or not hmac.compare_digest(key.key_hash, hashlib.sha256(raw.encode()).hexdigest()):
        return None
    if not key.is_active or not key.user.is_active:
        return None
    return key


class TokenAuthentication(authentication.TokenAuthentication):
    """DRF's ``Authorization: Token <key>``, the same answers, with the token and its user read by a
    statement compiled once per database and thread (crm.prepared): every API request reads it."""

    def authenticate_credentials(self, key):
        model = self.get_model()
        db = router.db_for_read(model)

        def build(token_key):
            return model.objects.using(db).select_related("user").filter(key=token_key).order_by()

        query = prepared(("api-token", db), build, text=True)
        tokens = query.objects(key) if query is not None else list(build(key))
        if not tokens:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        token = tokens[0]
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        return (token.user, token)


def resource_of(path: str) -> str:
    """``/api/v1/crm/leads/5/`` → ``leads``; ``calendar/feed/…`` → ``calendar``."""
    return path[len(API_PREFIX) :].split("/", 1)[0] if path.startswith(API_PREFIX) else ""


class ApiKeyAuthentication(BaseAuthentication):
    """``Authorization: Api-Key <prefix>.<secret>``: the key's user, narrowed by the key's scopes (a
    request outside them is a 403 before the view runs)."""

    def authenticate(self, request):
        header = get_authorization_header(request).split()
        if not header or header[0].lower() != KEYWORD.encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Send the key as: Authorization: Api-Key <key>.")
        try:
            raw = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed(REFUSED) from None
        key = api_key_for(raw)
        if key is None:
            raise exceptions.AuthenticationFailed(REFUSED)
        resource = resource_of(request.path)
        write = request.method not in SAFE_METHODS
        if resource in NEVER_BY_KEY or not key.allows(resource, write=write):
            raise exceptions.PermissionDenied(
                f"This API key may not {'change' if write else 'read'} “{resource or request.path}”."
            )
        now = timezone.now()
        if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
            # One write a minute per key at most: last_used_at is for people, not an audit log.
            ApiKey.objects.filter(pk=key.pk).filter(
                Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_RESOLUTION)
            ).update(last_used_at=now)
        return key.user, key

    def authenticate_header(self, request):
        return "Api-Key"


class ApiKeyRateThrottle(SimpleRateThrottle):
    """Requests per key: the key's own ``rate`` or API_RATE_KEY; requests without a key pass."""

    scope = "api_key"

    def allow_request(self, request, view):
        key = request.auth if isinstance(request.auth, ApiKey) else None
        if key is None:
            return True
        self.rate = key.rate or self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": request.auth.pk}
