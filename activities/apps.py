"""The activities app: calls, meetings, tasks, emails and notes on any CRM record."""

from django.apps import AppConfig


class ActivitiesConfig(AppConfig):
    name = "activities"
    verbose_name = "Activities"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from activities.api import events

        events.register()
