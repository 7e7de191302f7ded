"""The sales app: opportunities and revenue."""

from django.apps import AppConfig


class SalesConfig(AppConfig):
    name = "sales"
    verbose_name = "Sales"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from crm.conversion import register_lead_converter
        from sales import (
            notifications,
            rollups,  # noqa: F401  (registers the opportunities' rollup with crm.rollups)
            selectors,  # noqa: F401
            selectors_quotes,  # noqa: F401  (registers who sees quotes)
            territories,  # noqa: F401  (registers the territory visibility grant)
        )
        from sales.api import convert, events, operations
        from sales.registration import register_with_crm
        from sales.services import lead_convert

        # Importing sales.selectors registers this app's visibility rules with crm
        # (crm.selectors.register_record_access), so merges, relation checks and exports know them in
        # every process, commands included.
        events.register()
        register_with_crm()
        # crm converts a lead put into a won stage, and routes /leads/{id}/convert/, through these.
        register_lead_converter(lead_convert)
        # A new or changed account is placed in its territory by the rules, whatever door saved it.
        from crm.registries import register_save_effect
        from sales.services_territories import account_place

        register_save_effect("crm.account", account_place)
        convert.register()
        # GET accounts/{id}/hierarchy/ reads the deals: an action sales adds to crm's account viewset.
        operations.register()
        # Opportunity notifications (owner, team managers on won/lost) consume the domain events.
        notifications.register()
        # Opportunities as records automation rules act on; its actions (move stage, from a lead).
        from sales import automation

        automation.register()
        from sales import next_actions

        next_actions.register()
