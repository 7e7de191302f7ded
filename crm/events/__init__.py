"""Domain events: the apps' registrations, the services' publishing hooks, the outbox and its relay.

Services publish through ``record_snapshot``/``record_published``/``record_deleting`` (for a
registered record's save and delete) or ``event_publish``; the rows go to the outbox in the
service's transaction, and the relay hands them to the consumers once it commits.
"""

from crm.events.registry import (
    api_representation,
    register_consumer,
    register_event_types,
    register_source,
    transition_classifier,
)

__all__ = [
    "api_representation",
    "register_consumer",
    "register_event_types",
    "register_source",
    "transition_classifier",
]
