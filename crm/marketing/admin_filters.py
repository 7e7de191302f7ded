"""The "By segment" filter of the leads, contacts and accounts lists in the admin."""

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters

from crm.filters import segment_apply
from crm.models import Segment


class SegmentListFilter(admin.SimpleListFilter):
    """``?segment=<id>``: the records of a segment of this list's kind (the same rule as the API's)."""

    title = "segment"
    parameter_name = "segment"

    def lookups(self, request, model_admin):
        entity = model_admin.model._meta.model_name
        return list(Segment.objects.filter(entity=entity).order_by("name", "id").values_list("pk", "name"))

    def queryset(self, request, queryset):
        value = self.value()
        if not value:
            return queryset
        entity = queryset.model._meta.model_name
        segment = (
            Segment.objects.filter(entity=entity, pk=int(value)).first()
            if value.isdigit() and len(value) < 18
            else None
        )
        if segment is None:
            raise IncorrectLookupParameters(f"No segment of {entity}s has the id {value}.")
        return segment_apply(segment, queryset)
