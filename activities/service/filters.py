"""The ticket list's filters, shared by the API and the admin's queues."""

import django_filters
from django.contrib.auth import get_user_model

from activities.service.models import Ticket, TicketChannel, TicketStatus, TicketType
from activities.service.queues import QUEUES, ticket_queue_condition
from crm.filters import SearchFilterSet, StrictBooleanFilter, id_filter, ordering, tag_filter
from crm.models import Account, Contact, Priority, SalesTeam


class TicketFilter(SearchFilterSet):
    search_fields = ("number", "subject", "description")

    status = django_filters.MultipleChoiceFilter(choices=TicketStatus.choices)
    priority = django_filters.ChoiceFilter(choices=Priority.choices)
    channel = django_filters.ChoiceFilter(choices=TicketChannel.choices)
    ticket_type = django_filters.ChoiceFilter(choices=TicketType.choices)
    account = id_filter(Account.objects.all(), label="Account id")
    contact = id_filter(Contact.objects.all(), label="Contact id")
    team = id_filter(SalesTeam.objects.all(), label="Queue (team) id")
    assignee = id_filter(get_user_model().objects.all(), label="Assignee (user id)")
    unassigned = StrictBooleanFilter(field_name="assignee", lookup_expr="isnull", label="Nobody assigned")
    tag = tag_filter()
    created = django_filters.DateFromToRangeFilter(field_name="created_at", label="Created between")
    queue = django_filters.ChoiceFilter(
        choices=list(QUEUES.items()), method="filter_queue", label="Work queue (for the requesting user)"
    )
    ordering = ordering("created_at", "updated_at", "priority", "status", "number")

    class Meta:
        model = Ticket
        fields = [
            "queue",
            "status",
            "priority",
            "channel",
            "ticket_type",
            "account",
            "contact",
            "team",
            "assignee",
        ]

    def filter_queue(self, queryset, name, value):
        user = getattr(self.request, "user", None)
        if not value or user is None:
            return queryset
        return queryset.filter(ticket_queue_condition(user=user, queue=value))
