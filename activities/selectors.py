"""Reads that carry rules for the activities app. The conventions are crm.selectors'."""

from django.db.models import QuerySet

from activities.filters import ActivityFilter
from activities.models import Activity
from crm.filters import filter_queryset
from crm.selectors import Filters, User


def activity_visible_to(user: User) -> QuerySet[Activity]:
    return Activity.objects.all()


def activity_list(*, user: User, filters: Filters = None) -> QuerySet[Activity]:
    return filter_queryset(ActivityFilter, activity_visible_to(user).select_related("owner"), filters)
