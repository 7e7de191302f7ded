"""The opportunities' domain events, registered into crm's event engine."""

from crm.events import api_representation, register_source, transition_classifier
from sales import selectors
from sales.api.serializers import OpportunitySerializer
from sales.models import Opportunity, OpportunityStatus


def register() -> None:
    register_source(
        Opportunity,
        name="opportunity",
        serialize=api_representation(selectors.opportunity_list, OpportunitySerializer),
        types=("created", "updated", "deleted", "stage_changed", "won", "lost", "reopened"),
        classify=transition_classifier(
            statuses={OpportunityStatus.WON: "won", OpportunityStatus.LOST: "lost"},
            reopen_from=(OpportunityStatus.WON, OpportunityStatus.LOST),
            stage=True,
        ),
    )
