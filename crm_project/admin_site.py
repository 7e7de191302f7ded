"""The back office's admin site: the index is the CRM dashboard; the app list stays on it."""

from django.contrib import admin
from django.template.response import TemplateResponse


class CRMAdminSite(admin.AdminSite):
    site_header = "CRM back office"
    site_title = "CRM"
    index_title = "Dashboard"
    index_template = "admin/crm_dashboard.html"

    def index(self, request, extra_context=None):
        # admin_view() (in get_urls) already makes the page login-only and uncached.
        # Imported here: this module is loaded while the app registry is still being populated.
        from crm_project.dashboard import dashboard_context

        context = {
            **self.each_context(request),
            "title": self.index_title,
            "subtitle": None,
            "app_list": self.get_app_list(request),
            **dashboard_context(request),
            **(extra_context or {}),
        }
        request.current_app = self.name
        return TemplateResponse(request, self.index_template, context)
