"""The crm app: pipelines, accounts, contacts and leads."""

from django.apps import AppConfig


class CrmConfig(AppConfig):
    name = "crm"
    verbose_name = "CRM"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from crm import audit_versions

        audit_versions.connect()
