"""The crm app: pipelines, accounts, contacts and leads."""

from django.apps import AppConfig


class CrmConfig(AppConfig):
    name = "crm"
    verbose_name = "CRM"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from crm.api import events
        from crm.events import admin as events_admin  # noqa: F401  (the outbox's admin pages)
        from crm.webhooks import admin as webhooks_admin  # noqa: F401

        events.register()
