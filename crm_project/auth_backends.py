"""Django's model permissions, read in one query a request instead of two (or three).

``ModelBackend`` reads a user's own permissions and their groups' in two queries, each with its join to
the content types, the first time a request asks ``has_perm`` (every API request and admin page
does); for a superuser it reads every permission twice. Here both come in one ``UNION ALL``, with what
the request asks of its user next (whether a CRM Admin, whom they manage:
``crm.selectors.visibility.user_access_read``), and the same three caches are filled
(``_user_perm_cache``, ``_group_perm_cache``, ``_perm_cache``), so ``get_user_permissions``,
``get_group_permissions`` and ``has_perm`` answer exactly as Django's, and ``ModelBackend`` after it
reads nothing more.
"""

from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Permission


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

    def get_user_permissions(self, user_obj, obj=None):
        self.get_all_permissions(user_obj, obj)  # both caches, in the one read
        return super().get_user_permissions(user_obj, obj)

    def get_group_permissions(self, user_obj, obj=None):
        self.get_all_permissions(user_obj, obj)
        return super().get_group_permissions(user_obj, obj)

    def _load_permissions(self, user_obj) -> None:
        if not user_obj.is_superuser:
            # With the CRM Admin membership and the managed team, which the request asks next
            # (crm.selectors.visibility.user_access_read): one statement for the three.
            from crm.selectors.visibility import user_access_read

            user_access_read(user_obj)
            return
        cached = {
            source: getattr(user_obj, f"_{source}_perm_cache")
            for source in ("user", "group")
            if hasattr(user_obj, f"_{source}_perm_cache")
        }
        every = {f"{app}.{codename}" for app, codename in _names(Permission.objects.all())}
        found = {"user": every, "group": every}
        # A cache an earlier call filled (get_user_permissions alone) is kept as it was read.
        found.update(cached)
        user_obj._user_perm_cache = found["user"]
        user_obj._group_perm_cache = found["group"]
        user_obj._perm_cache = found["user"] | found["group"]


def _names(permissions):
    return permissions.values_list("content_type__app_label", "codename").order_by()
