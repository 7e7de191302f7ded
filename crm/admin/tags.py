"""Tags: their admin, and the tag column every record changelist shows."""

from django.contrib import admin
from django.db.models import Prefetch

from crm import services
from crm.admin.base import (
    ColorPickerMixin,
    ServiceModelAdmin,
    color_swatch,
)
from crm.models import Tag


class TagListMixin:
    """Shows a record's tags in a changelist with one prefetch query for the whole page."""

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .prefetch_related(Prefetch("tags", queryset=Tag.objects.only("id", "name", "color")))
        )

    @admin.display(description="tags")
    def tag_list(self, obj):
        return ", ".join(tag.name for tag in obj.tags.all()) or "—"


@admin.register(Tag)
class TagAdmin(ColorPickerMixin, ServiceModelAdmin):
    list_display = ("name", "swatch", "created_at")
    search_fields = ("name",)

    def create_record(self, request, data):
        return services.tag_create(user=request.user, data=data)

    def update_record(self, request, obj, data):
        return services.tag_update(tag=obj, user=request.user, data=data)

    @admin.display(description="colour")
    def swatch(self, obj):
        return color_swatch(obj.color, obj.color)
