"""The back office's admin site: the index is the CRM dashboard; the app list stays on it."""

from django.contrib import admin
from django.template.response import TemplateResponse
from django.urls import path


class SafeChangeListAdminMixin:
    def get_changelist(self, request, **kwargs):
        # Imported here: this module is loaded while the app registry is still being populated.
        from crm.admin.scale import SafeChangeList, safe_changelist

        changelist = super().get_changelist(request, **kwargs)
        return changelist if issubclass(changelist, SafeChangeList) else safe_changelist(changelist)


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
