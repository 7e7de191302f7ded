"""crm's registrations into the automation engine: leads, accounts, contacts, its actions, the consumer."""

from django.db.models import Q

from crm import services
from crm.automation import actions, engine, outreach
from crm.automation.registry import register_model
from crm.events import register_consumer
from crm.models import Account, Contact, Lead, LeadStatus


def register() -> None:
    register_model(
        Lead,
        event_name="lead",
        update=lambda *, instance, user, data: services.lead_update(lead=instance, user=user, data=data),
        open_q=Q(status=LeadStatus.OPEN),
        activity_field="last_activity_at",
    )
    register_model(
        Account,
        event_name="account",
        update=lambda *, instance, user, data: services.account_update(
            account=instance, user=user, data=data
        ),
        open_q=Q(is_active=True),
        activity_field="last_activity_at",  # kept by the activity services, indexed (quiet since)
    )
    register_model(
        Contact,
        event_name="contact",
        update=lambda *, instance, user, data: services.contact_update(
            contact=instance, user=user, data=data
        ),
        open_q=Q(is_active=True),
        activity_field="last_activity_at",
    )
    actions.register()
    outreach.register()
    register_consumer("*", engine.events_consume, name="automation", batch=True)
