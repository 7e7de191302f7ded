"""An optional read replica: lists, boards, reports and exports read from it; everything else, every
write, and a user's reads for a few seconds after their own write go to the primary.

``DATABASE_REPLICA_URL`` adds the ``replica`` database (settings). ``ReplicaRouter`` sends a read to it
only while ``ReplicaReadsMiddleware`` marked the request as a read-only page of that kind (a safe
method, a view named ``*-list``, ``*_changelist``, or a board, dashboard, report, forecast, funnel,
performance or export view) and only for the apps' own tables (users, sessions, tokens and
permissions always come from the primary). A write (any statement routed for writing, or an unsafe
method) makes its user "sticky" for ``CRM_REPLICA_STICKY_SECONDS``: the mark is kept in the cache
(shared by every web process: Redis in production), so the user's next pages, whichever process
serves them, read from the primary and see their own change even while the replica lags.
"""

import contextvars

from django.conf import settings
from django.core.cache import cache
from django.db import DEFAULT_DB_ALIAS, connections

REPLICA = "replica"
REPLICA_APPS = frozenset({"crm", "sales", "activities"})
_PAGE_WORDS = ("kanban", "board", "dashboard", "report", "forecast", "funnel", "performance", "export")

# The request being served, when it may read from the replica; whether it wrote meanwhile.
_replica_request: contextvars.ContextVar = contextvars.ContextVar("crm_replica_request", default=None)
_wrote: contextvars.ContextVar[bool] = contextvars.ContextVar("crm_replica_wrote", default=False)


def replica_configured() -> bool:
    return REPLICA in connections.settings


def _sticky_key(user_id) -> str:
    return f"crm:replica:sticky:{user_id}"


def user_sticky(user) -> bool:
    """Whether ``user`` wrote in the last CRM_REPLICA_STICKY_SECONDS (their reads go to the primary)."""
    if user is None or not getattr(user, "is_authenticated", False):
        return False
    return bool(cache.get(_sticky_key(user.pk)))


def user_wrote(user) -> None:
    if user is not None and getattr(user, "is_authenticated", False):
        cache.set(_sticky_key(user.pk), 1, settings.CRM_REPLICA_STICKY_SECONDS)


def replica_page(url_name: str | None) -> bool:
    """Whether a view of this URL name is a list, a board, a report or an export."""
    if not url_name:
        return False
    return (
        url_name.endswith("-list")
        or url_name.endswith("_changelist")
        or any(word in url_name for word in _PAGE_WORDS)
    )


class ReplicaRouter:
    def db_for_read(self, model, **hints):
        request = _replica_request.get()
        if request is None or _wrote.get() or model._meta.app_label not in REPLICA_APPS:
            return None
        if not replica_configured():
            return None
        # Asked here, when the view reads, so an API token authenticated by DRF counts too.
        if user_sticky(getattr(request, "user", None)):
            return None
        return REPLICA

    def db_for_write(self, model, **hints):
        # Only a write to the tables the replica serves: a throttle's counter or a session kept in the
        # database (DatabaseCache, on every API request) must neither send the request's own reads to
        # the primary nor make its user sticky.
        if model._meta.app_label in REPLICA_APPS:
            _wrote.set(True)
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1, obj2, **hints):
        return True  # one database, two doors

    def allow_migrate(self, db, app_label, **hints):
        return db != REPLICA  # the replica follows the primary's schema by replication


class ReplicaReadsMiddleware:
    """Marks the list, board, report and export pages that may read from the replica, and makes a user
    sticky to the primary after a write."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        wrote = _wrote.set(False)
        marked = _replica_request.set(None)
        try:
            response = self.get_response(request)
            # Without a replica every read is the primary's: no mark to keep (a cache write per request).
            if replica_configured() and (_wrote.get() or request.method not in ("GET", "HEAD", "OPTIONS")):
                user_wrote(getattr(request, "user", None))
            return response
        finally:
            _replica_request.reset(marked)
            _wrote.reset(wrote)

    def process_view(self, request, view_func, view_args, view_kwargs):
        if request.method in ("GET", "HEAD") and replica_configured():
            match = request.resolver_match
            if match is not None and replica_page(match.url_name):
                _replica_request.set(request)
        return None
