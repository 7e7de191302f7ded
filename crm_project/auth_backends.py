"""Django's model permissions, read in one query a request instead of two (or three).

``ModelBackend`` reads a user's own permissions and their groups' in two queries, each with its join to
the content types, the first time a request asks ``has_perm`` (every API request and admin page
does); for a superuser it reads every permission twice. Here both come in one ``UNION ALL``, and the
same three caches are filled (``_user_perm_cache``, ``_group_perm_cache``, ``_perm_cache``), so
``get_user_permissions``, ``get_group_permissions`` and ``has_perm`` answer exactly as Django's, and
``ModelBackend`` after it reads nothing more.
"""

from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Permission
from django.db import router
from django.db.models import QuerySet, Value

from crm.prepared import prepared


class OneQueryPermissionsBackend(ModelBackend):
    """Listed before ``ModelBackend``, which still signs users in (the sessions name it): this one
    never does, and answers permissions first; ``ModelBackend`` then finds its caches filled."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        return None

    def get_all_permissions(self, user_obj, obj=None):
        if not user_obj.is_active or user_obj.is_anonymous or obj is not None:
            return set()
        if not hasattr(user_obj, "_perm_cache"):
            self._load_permissions(user_obj)
        return user_obj._perm_cache

    def _load_permissions(self, user_obj) -> None:
        cached = {
            source: getattr(user_obj, f"_{source}_perm_cache")
            for source in ("user", "group")
            if hasattr(user_obj, f"_{source}_perm_cache")
        }
        if user_obj.is_superuser:
            every = {f"{app}.{codename}" for app, codename in _names(Permission.objects.all())}
            found = {"user": every, "group": every}
        else:
            found = {"user": set(), "group": set()}
            for source, app, codename in _own_and_groups_permissions(user_obj.pk):
                found[source].add(f"{app}.{codename}")
        # A cache an earlier call filled (get_user_permissions alone) is kept as it was read.
        found.update(cached)
        user_obj._user_perm_cache = found["user"]
        user_obj._group_perm_cache = found["group"]
        user_obj._perm_cache = found["user"] | found["group"]


def _own_and_groups_permissions_query(user_pk) -> QuerySet:
    mine = Permission.objects.filter(user=user_pk).annotate(source=Value("user"))
    theirs = Permission.objects.filter(group__user=user_pk).annotate(source=Value("group"))
    fields = ("source", "content_type__app_label", "codename")
    return mine.values_list(*fields).order_by().union(theirs.values_list(*fields).order_by(), all=True)


def _own_and_groups_permissions(user_pk) -> list[tuple[str, str, str]]:
    """(source, app label, codename) of the user's own permissions and their groups'. The SQL is
    compiled once per database and thread and run again with the next user (building and compiling the
    union cost more than running it): every request reads it."""
    db = router.db_for_read(Permission)
    query = prepared(("permissions", db), lambda key: _own_and_groups_permissions_query(key).using(db))
    if query is None:
        return list(_own_and_groups_permissions_query(user_pk).using(db))
    return query.rows(user_pk)


def _names(permissions):
    return permissions.values_list("content_type__app_label", "codename").order_by()
