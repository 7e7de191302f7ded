"""django-filter FilterSets for opportunities, shared by the API, the selectors and the admin pages."""

import django_filters

from crm.filters import SearchFilterSet, id_filter, ordering, owner_filter, tag_filter
from crm.models import Account, Contact, Pipeline, Stage
from sales.models import Opportunity


class OpportunityFilter(SearchFilterSet):
    search_fields = ("name", "account__name", "description")

    pipeline = id_filter(Pipeline.objects.all(), label="Pipeline id")
    stage = id_filter(Stage.objects.all(), label="Stage id")
    account = id_filter(Account.objects.all(), label="Account id")
    contact = id_filter(Contact.objects.all(), label="Contact id")
    owner = owner_filter()
    tag = tag_filter()
    close_date = django_filters.DateFromToRangeFilter(
        label="Close date between (close_date_after, close_date_before; inclusive)"
    )
    ordering = ordering(
        "name",
        "amount",
        "probability",
        "close_date",
        "created_at",
        "updated_at",
        ("priority_rank", "priority"),
        ("stage__sequence", "stage"),
        ("account__name", "account"),
        "status",
    )

    class Meta:
        model = Opportunity
        fields = [
            "pipeline",
            "stage",
            "account",
            "contact",
            "priority",
            "status",
            "opportunity_type",
            "owner",
            "tag",
            "close_date",
        ]
