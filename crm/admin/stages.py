"""Stages on their own: a list across pipelines (a stage is edited in its pipeline too)."""

from django.contrib import admin

from crm import services
from crm.admin.base import (
    ColorPickerMixin,
    ServiceModelAdmin,
    color_swatch,
)
from crm.models import Stage


@admin.register(Stage)
class StageAdmin(ColorPickerMixin, ServiceModelAdmin):
    list_display = ("name", "pipeline", "sequence", "probability", "swatch", "is_won", "is_lost")
    list_filter = ("pipeline", "is_won", "is_lost")
    list_select_related = ("pipeline",)
    search_fields = ("name", "pipeline__name")
    autocomplete_fields = ("pipeline",)
    ordering = ("pipeline__sequence", "pipeline__name", "sequence", "id")

    def get_readonly_fields(self, request, obj=None):
        # A stage stays in its pipeline (stage_update refuses the move): its records would leave it.
        readonly = tuple(super().get_readonly_fields(request, obj))
        return (*readonly, "pipeline") if obj is not None else readonly

    def create_record(self, request, data):
        return services.stage_create(user=request.user, data=data)

    def update_record(self, request, obj, data):
        return services.stage_update(stage=obj, user=request.user, data=data)

    @admin.display(description="colour")
    def swatch(self, obj):
        return color_swatch(obj.color, obj.color)
