"""The crm records' domain events (leads, accounts, contacts), and the webhooks' consumer of events."""

from crm import selectors
from crm.api.serializers import AccountSerializer, ContactSerializer, LeadSerializer
from crm.events import api_representation, register_consumer, register_source, transition_classifier
from crm.models import Account, Contact, Lead, LeadStatus


def register() -> None:
    register_source(
        Lead,
        name="lead",
        serialize=api_representation(selectors.lead_list, LeadSerializer),
        types=("created", "updated", "deleted", "stage_changed", "converted", "lost", "reopened"),
        classify=transition_classifier(
            statuses={LeadStatus.CONVERTED: "converted", LeadStatus.LOST: "lost"},
            reopen_from=(LeadStatus.LOST, LeadStatus.CONVERTED),
            stage=True,
        ),
    )
    register_source(
        Account, name="account", serialize=api_representation(selectors.account_list, AccountSerializer)
    )
    register_source(
        Contact, name="contact", serialize=api_representation(selectors.contact_list, ContactSerializer)
    )

    from crm.webhooks.delivery import webhook_fan_out

    register_consumer("*", webhook_fan_out, name="webhooks", batch=True)
