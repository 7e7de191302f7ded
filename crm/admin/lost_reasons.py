"""Lost reasons, with how many leads and opportunities each closed."""

from django.contrib import admin

from crm import selectors, services
from crm.admin.base import (
    ServiceModelAdmin,
)
from crm.models import LostReason


@admin.register(LostReason)
class LostReasonAdmin(ServiceModelAdmin):
    list_display = ("name", "is_active", "lead_count", "opportunity_count")
    list_filter = ("is_active",)
    search_fields = ("name",)

    def create_record(self, request, data):
        return services.lost_reason_create(user=request.user, data=data)

    def update_record(self, request, obj, data):
        return services.lost_reason_update(lost_reason=obj, user=request.user, data=data)

    def get_queryset(self, request):
        return selectors.lost_reason_annotate_counts(super().get_queryset(request), user=request.user)

    @admin.display(description="leads lost", ordering="lead_count")
    def lead_count(self, obj):
        return obj.lead_count

    @admin.display(description="opportunities lost", ordering="opportunity_count")
    def opportunity_count(self, obj):
        return obj.opportunity_count
