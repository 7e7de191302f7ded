"""The sales app: opportunities and revenue."""

from django.apps import AppConfig


class SalesConfig(AppConfig):
    name = "sales"
    verbose_name = "Sales"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Registers this app's visibility rules with crm (crm.selectors.register_record_access), so
        # merges, relation checks and exports know them in every process, commands included.
        from sales import (
            notifications,
            selectors,  # noqa: F401
        )
        from sales.api import events

        events.register()
        notifications.register()
