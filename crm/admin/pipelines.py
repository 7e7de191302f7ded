"""Pipelines, with their stages as rows ordered by dragging."""

from django.contrib import admin
from django.core.exceptions import ValidationError
from django.forms.models import BaseInlineFormSet

from crm import selectors, services
from crm.admin.base import (
    ColorPickerMixin,
    ServiceModelAdmin,
    register_inline_saver,
    save_inline_forms,
)
from crm.admin.record import apply_service_errors
from crm.models import Pipeline, Stage


class StageInlineFormSet(BaseInlineFormSet):
    def clean(self):
        """Validate each changed stage as the stage services will, so a rule broken by a row (a second
        won stage) is an error on that row rather than a failure while saving."""
        super().clean()
        for form in self.forms:
            if form in self.deleted_forms or not form.has_changed() or form.errors:
                continue
            try:
                # A new pipeline has no stages in the database yet to conflict with.
                form.instance.full_clean(exclude=["pipeline"] if self.instance.pk is None else None)
            except ValidationError as exc:
                apply_service_errors(form, exc)


class StageInline(ColorPickerMixin, admin.TabularInline):
    """A pipeline's stages, ordered by dragging their rows (static/crm/stage_sort.js) or by sequence."""

    model = Stage
    formset = StageInlineFormSet
    fields = ("name", "sequence", "probability", "color", "is_won", "is_lost", "rotting_days")
    extra = 0
    ordering = ("sequence", "id")

    class Media:
        js = ("crm/stage_sort.js",)


def save_stage_inline(request, formset) -> None:
    """A pipeline's stages are written by the stage services, in the order shown."""
    save_inline_forms(
        request,
        formset,
        create=lambda user, data: services.stage_create(user=user, data=data),
        update=lambda user, obj, data: services.stage_update(stage=obj, user=user, data=data),
        delete=lambda user, obj: services.record_delete(instance=obj, user=user),
    )


register_inline_saver(Stage, save_stage_inline)


@admin.register(Pipeline)
class PipelineAdmin(ServiceModelAdmin):
    list_display = ("name", "is_default", "is_active", "sequence", "stage_count", "open_lead_count")
    list_filter = ("is_active", "is_default")
    search_fields = ("name", "description")
    inlines = [StageInline]
    actions = ["make_default"]

    def get_queryset(self, request):
        return selectors.pipeline_annotate_counts(super().get_queryset(request), user=request.user)

    @admin.display(description="stages", ordering="stage_count")
    def stage_count(self, obj):
        return obj.stage_count

    @admin.display(description="open leads", ordering="open_lead_count")
    def open_lead_count(self, obj):
        return obj.open_lead_count

    def create_record(self, request, data):
        return services.pipeline_create(user=request.user, data=data)

    def update_record(self, request, obj, data):
        return services.pipeline_update(pipeline=obj, user=request.user, data=data)

    def delete_record(self, request, obj):
        services.pipeline_delete(pipeline=obj, user=request.user)

    def get_deleted_objects(self, objs, request):
        deleted, model_count, perms_needed, protected = super().get_deleted_objects(objs, request)
        for pipeline in objs:
            protected.extend(services.pipeline_delete_problems(pipeline=pipeline))
        return deleted, model_count, perms_needed, protected

    @admin.action(description="Make the selected pipeline the default", permissions=["change"])
    def make_default(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one pipeline to make default.", "error")
            return
        pipeline = services.pipeline_set_default(pipeline=queryset.get(), user=request.user)
        self.message_user(request, f"“{pipeline}” is now the default pipeline.")
