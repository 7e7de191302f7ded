"""django-filter FilterSets for activities, shared by the API, the selectors and the admin pages."""

import django_filters
from django.db.models import QuerySet
from django.utils import timezone

from activities.models import Activity, ActivityTemplate, ActivityType, Attachment, Note
from crm.filters import SearchFilterSet, StrictBooleanFilter, id_filter, ordering, owner_filter
from crm.models import Account, Contact, Lead
from sales.models import Opportunity


class ActivityFilter(SearchFilterSet):
    search_fields = ("subject", "description")

    type = django_filters.ChoiceFilter(
        field_name="activity_type", choices=ActivityType.choices, label="Activity type"
    )
    lead = id_filter(Lead.objects.all(), label="Lead id")
    opportunity = id_filter(Opportunity.objects.all(), label="Opportunity id")
    contact = id_filter(Contact.objects.all(), label="Contact id")
    account = id_filter(Account.objects.all(), label="Account id")
    owner = owner_filter()
    due_date = django_filters.DateFromToRangeFilter(
        label="Due between (due_date_after, due_date_before; dates, inclusive)"
    )
    overdue = StrictBooleanFilter(
        method="filter_overdue", label="Overdue: not completed or cancelled, due in the past"
    )
    ordering = ordering("due_date", "created_at", "updated_at", "subject", "status", "priority")

    class Meta:
        model = Activity
        fields = [
            "type",
            "activity_type",
            "status",
            "priority",
            "lead",
            "opportunity",
            "contact",
            "account",
            "owner",
            "due_date",
        ]

    def filter_overdue(self, queryset: QuerySet, name: str, value: bool) -> QuerySet:
        overdue = Activity.objects.overdue(timezone.now()).values("pk")
        return queryset.filter(pk__in=overdue) if value else queryset.exclude(pk__in=overdue)


class RecordAttachmentFilter(django_filters.FilterSet):
    """Files or notes of one record: ``?record_type=lead&record_id=12``."""

    record_type = django_filters.CharFilter(label="The record's kind: lead, opportunity, account, contact…")
    record_id = django_filters.NumberFilter(label="The record's id")


class AttachmentFilter(RecordAttachmentFilter):
    class Meta:
        model = Attachment
        fields = ["record_type", "record_id"]


class NoteFilter(RecordAttachmentFilter):
    class Meta:
        model = Note
        fields = ["record_type", "record_id"]


class ActivityTemplateFilter(SearchFilterSet):
    search_fields = ("name", "subject")
    ordering = ordering("name", "created_at")

    class Meta:
        model = ActivityTemplate
        fields = ["activity_type", "is_active"]
