"""The activities' domain events, registered into crm's event engine."""

from activities import selectors
from activities.api.serializers import ActivitySerializer
from activities.models import Activity, ActivityStatus
from crm.events import api_representation, register_source, transition_classifier


def register() -> None:
    register_source(
        Activity,
        name="activity",
        serialize=api_representation(selectors.activity_list, ActivitySerializer),
        types=("created", "updated", "completed", "deleted"),
        classify=transition_classifier(statuses={ActivityStatus.COMPLETED: "completed"}),
    )
