"""Lead scoring rules, and recomputing every lead's score."""

from django.contrib import admin, messages

from crm import services
from crm.admin.base import (
    ServiceModelAdmin,
)
from crm.models import ScoringRule
from crm.scoring import lead_scores_refresh


@admin.register(ScoringRule)
class ScoringRuleAdmin(ServiceModelAdmin):
    list_display = ("criterion", "value", "points", "is_active")
    list_editable = ("points", "is_active")
    list_filter = ("criterion", "is_active")
    actions = ["recompute_scores"]

    def create_record(self, request, data):
        return services.scoring_rule_create(user=request.user, data=data)

    def update_record(self, request, obj, data):
        return services.scoring_rule_update(scoring_rule=obj, user=request.user, data=data)

    @admin.action(description="Recompute every lead's score now", permissions=["change"])
    def recompute_scores(self, request, queryset):
        written = lead_scores_refresh()
        self.message_user(request, f"Recomputed the scores of {written} leads.", messages.SUCCESS)
