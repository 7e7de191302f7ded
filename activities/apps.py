"""The activities app: calls, meetings, tasks, emails and notes on any CRM record."""

from django.apps import AppConfig


class ActivitiesConfig(AppConfig):
    name = "activities"
    verbose_name = "Activities"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Registers this app's visibility rules with crm (crm.selectors.register_record_access), so
        # merges, relation checks and exports know them in every process, commands included.
        from activities import (
            reminders,
            selectors,  # noqa: F401
        )
        from activities.api import events
        from activities.registration import register_with_crm

        events.register()
        register_with_crm()
        reminders.register()
        from activities import automation  # activities as automation records; "create an activity"

        automation.register()
        from activities import next_actions

        next_actions.register()
