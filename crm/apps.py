"""The crm app: pipelines, accounts, contacts and leads."""

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class CrmConfig(AppConfig):
    name = "crm"
    verbose_name = "CRM"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from crm import audit_versions, checks, rollups

        post_migrate.connect(checks.create_cache_tables, sender=self, dispatch_uid="crm_create_cache_tables")
        audit_versions.connect()
        # After every migrate (SQLite drops a table's triggers when a migration rebuilds it).
        post_migrate.connect(
            rollups.rollups_install_after_migrate, sender=self, dispatch_uid="crm_rollup_triggers"
        )

        from crm.api import events
        from crm.events import admin as events_admin  # noqa: F401  (the outbox's admin pages)
        from crm.events import admin_schedules
        from crm.jobs import admin as jobs_admin  # noqa: F401  (the jobs' pages)
        from crm.webhooks import admin as webhooks_admin  # noqa: F401

        events.register()
        from crm.db.backends.hooks import register_pre_commit
        from crm.events.publishing import outbox_flush

        register_pre_commit(outbox_flush)
        admin_schedules.register()

        from crm.notifications import admin as notifications_admin  # noqa: F401
        from crm.notifications import consumers as notification_consumers

        notification_consumers.register()

        from crm.automation import admin as automation_admin  # noqa: F401
        from crm.automation import setup as automation_setup

        automation_setup.register()

        from crm.consent import admin as consent_admin  # noqa: F401  (consents, preferences)
        from crm.consent import api as consent_api
        from crm.marketing import admin as marketing_admin  # noqa: F401  (segments, campaigns)

        consent_api.register()
        from crm.messaging import admin as messaging_admin  # noqa: F401  (templates, sent emails)
        from crm.sequences import admin as sequences_admin  # noqa: F401  (sequences, enrollments)
        from crm.sequences import consumers as sequence_consumers

        sequence_consumers.register()

        from crm.reports.sources import register_sources as register_report_sources

        register_report_sources()

        from crm.insights import account_churn_annotations
        from crm.reports import admin_saved  # noqa: F401  (saved reports' admin)
        from crm.saved_views import admin as saved_views_admin  # noqa: F401  (saved views' admin)
        from crm.selectors import register_annotations

        register_annotations("crm.Account", account_churn_annotations)

        from crm.privacy import admin as privacy_admin  # noqa: F401  (privacy requests)
        from crm.privacy import sources as privacy_sources

        privacy_sources.register()
        from crm import next_action_rules

        next_action_rules.register()
