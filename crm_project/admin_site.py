"""The back office's admin site: the index is the CRM dashboard; the app list stays on it."""

from django.apps import apps
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import ValidationError
from django.db import connections, router
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, get_script_prefix, get_urlconf, path, reverse
from django.utils.text import capfirst
from django.utils.translation import gettext as _


class SafeChangeListAdminMixin:
    def get_changelist(self, request, **kwargs):
        # Imported here: this module is loaded while the app registry is still being populated.
        from crm.admin.scale import SafeChangeList, safe_changelist

        changelist = super().get_changelist(request, **kwargs)
        return changelist if issubclass(changelist, SafeChangeList) else safe_changelist(changelist)

    def response_action(self, request, queryset):
        """An action's selection that holds a value no record's id can be (a tampered form) is refused
        with a message and changes nothing; Django's filters by it, and the conversion was a 500."""
        pk = self.model._meta.pk
        operations = connections[router.db_for_read(self.model)].ops
        try:
            low, high = operations.integer_field_range(pk.get_internal_type())
        except KeyError:  # a key that is no integer
            low = high = None
        try:
            for value in request.POST.getlist(helpers.ACTION_CHECKBOX_NAME):
                key = pk.to_python(value)
                if isinstance(value, str) and "\x00" in value:
                    raise ValidationError("null character")
                if low is not None and isinstance(key, int) and not low <= key <= high:
                    raise ValidationError("past the column's range")  # SQLite: OverflowError
        except ValidationError:
            self.message_user(
                request,
                _("The selection holds a value that is not the id of a record. No items have been changed."),
                messages.ERROR,
            )
            return HttpResponseRedirect(request.get_full_path())
        return super().response_action(request, queryset)


class CRMAdminSite(admin.AdminSite):
    site_header = "CRM back office"
    site_title = "CRM"
    index_title = "Dashboard"
    index_template = "admin/crm_dashboard.html"

    def register(self, model_or_iterable, admin_class=None, **options):
        """Every admin's changelist (users, groups, tokens and login attempts too) answers a bad query
        string with "?e=1" rather than a 500 (crm.admin.scale.SafeChangeList)."""
        admin_class = admin_class or admin.ModelAdmin
        if not issubclass(admin_class, SafeChangeListAdminMixin):
            admin_class = type(
                admin_class.__name__,
                (SafeChangeListAdminMixin, admin_class),
                {"__module__": admin_class.__module__, "__doc__": admin_class.__doc__},
            )
        return super().register(model_or_iterable, admin_class, **options)

    def get_urls(self):
        # Imported here: this module is loaded while the app registry is still being populated.
        from crm.admin.search import global_search_view
        from crm.reports.admin import report_view, reports_index_view

        return [
            path(
                "search/", self.admin_view(lambda request: global_search_view(request, self)), name="search"
            ),
            path("reports/", self.admin_view(lambda r: reports_index_view(r, self)), name="reports"),
            path(
                "reports/<slug:key>/",
                self.admin_view(lambda r, key: report_view(r, self, key)),
                name="report",
            ),
            *super().get_urls(),
        ]

    # Apps of the machinery (logins, tokens, users and groups, task results): on the dashboard of
    # superusers only; their pages stay reachable by URL to whoever has the permission. The schedules
    # (django_celery_beat) stay: a CRM Admin sets when reminders, digests and scans run.
    TECHNICAL_APPS = ("auth", "authtoken", "axes", "django_celery_results")

    def _build_app_dict(self, request, label=None):
        """Django 5.2's, with the site's URLs reversed once per process (``_url``).

        Every admin page builds the app list for its sidebar: each registered model's permissions and
        its changelist and add URLs, some 150 reversals (20 µs each) for a superuser, every time. The
        permissions are still asked on every page; the URLs depend only on the URLconf and the script
        prefix. The names are translated once here, not at each of the sort's comparisons (some 1,500
        casts of lazy text for a superuser, half the list's cost). ``tests/admin/test_app_list.py``
        compares the result with Django's for every persona."""
        models = self._registry
        if label:
            models = {
                model: model_admin for model, model_admin in models.items() if model._meta.app_label == label
            }
        app_dict = {}
        urls = self._reversed_urls()
        for model, model_admin in models.items():
            app_label = model._meta.app_label
            has_module_perms = model_admin.has_module_permission(request)
            if not has_module_perms:
                continue
            perms = model_admin.get_model_perms(request)
            if True not in perms.values():
                continue
            model_name = model._meta.model_name
            model_dict = {
                "model": model,
                "name": capfirst(str(model._meta.verbose_name_plural)),
                "object_name": model._meta.object_name,
                "perms": perms,
                "admin_url": None,
                "add_url": None,
            }
            if perms.get("change") or perms.get("view"):
                model_dict["view_only"] = not perms.get("change")
                model_dict["admin_url"] = self._url(urls, f"admin:{app_label}_{model_name}_changelist")
            if perms.get("add"):
                model_dict["add_url"] = self._url(urls, f"admin:{app_label}_{model_name}_add")
            if app_label in app_dict:
                app_dict[app_label]["models"].append(model_dict)
            else:
                app_dict[app_label] = {
                    "name": str(apps.get_app_config(app_label).verbose_name),
                    "app_label": app_label,
                    "app_url": self._url(urls, "admin:app_list", app_label),
                    "has_module_perms": has_module_perms,
                    "models": [model_dict],
                }
        return app_dict

    _urls: dict = {}

    def _reversed_urls(self) -> dict:
        """The URLs reversed so far in this site, for the current URLconf and script prefix."""
        key = (get_urlconf() or settings.ROOT_URLCONF, get_script_prefix(), self.name)
        return self._urls.setdefault(key, {})

    def _url(self, urls: dict, name: str, app_label: str | None = None) -> str | None:
        """``reverse(name)`` in this site (with ``app_label`` for the app index), None where it does
        not reverse; remembered in ``urls`` (``_reversed_urls``)."""
        try:
            return urls[name, app_label]
        except KeyError:
            pass
        kwargs = {"app_label": app_label} if app_label is not None else None
        try:
            url = reverse(name, kwargs=kwargs, current_app=self.name)
        except NoReverseMatch:
            if app_label is not None:
                raise  # as Django: every app with a registered model has an index
            url = None
        urls[name, app_label] = url
        return url

    def get_app_list(self, request, app_label=None):
        apps = super().get_app_list(request, app_label)
        if request.user.is_superuser or app_label is not None:
            return apps
        return [app for app in apps if app["app_label"] not in self.TECHNICAL_APPS]

    def index(self, request, extra_context=None):
        # admin_view() (in get_urls) already makes the page login-only and uncached.
        # Imported here: this module is loaded while the app registry is still being populated.
        from crm_project.dashboard import dashboard_context

        each = self.each_context(request)
        context = {
            **each,
            "title": self.index_title,
            "subtitle": None,
            # The list the navigation sidebar shows: built once (it checks every model's permissions
            # and reverses its URLs), not again for the page.
            "app_list": each["available_apps"],
            **dashboard_context(request),
            **(extra_context or {}),
        }
        request.current_app = self.name
        return TemplateResponse(request, self.index_template, context)
