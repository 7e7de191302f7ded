"""The admin app configured with the CRM's own site, so every @admin.register lands on it."""

from django.contrib.admin.apps import AdminConfig


class CRMAdminConfig(AdminConfig):
    default_site = "crm_project.admin_site.CRMAdminSite"
