"""Bulk actions on the leads and opportunities lists: assign owner, move to stage, add or remove tags,
mark lost with a reason, export the selection.

Each action runs the model's own services record by record (so every rule and the stage history
apply), reports how many records it changed and, per record, why it refused the others. Actions
that need input show an intermediate page first; its form posts the selection back with ``apply``.
"""

from django import forms
from django.contrib import admin
from django.contrib.admin import helpers
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.template.response import TemplateResponse

from crm.admin.base import run_transition
from crm.admin.transitions import MarkLostForm
from crm.importing import export_queryset, schema_for_model
from crm.models import Stage, Tag


class BulkOwnerForm(forms.Form):
    owner = forms.ModelChoiceField(
        queryset=get_user_model().objects.filter(is_active=True).order_by("username"),
        required=False,
        empty_label="Nobody (unassign)",
    )


class BulkStageForm(forms.Form):
    stage = forms.ModelChoiceField(
        queryset=Stage.objects.none(), help_text="Records of other pipelines are skipped."
    )

    def __init__(self, *args, pipeline_ids, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["stage"].queryset = (
            Stage.objects.filter(pipeline__in=pipeline_ids)
            .select_related("pipeline")
            .order_by("pipeline__sequence", "pipeline__name", "sequence", "id")
        )


class BulkTagsForm(forms.Form):
    tags = forms.ModelMultipleChoiceField(queryset=Tag.objects.order_by("name"))


class BulkActionsMixin:
    """Adds the bulk actions to a lead or opportunity ModelAdmin.

    The admin implements ``bulk_update(request, record, data)``, ``bulk_move(request, record, stage)``
    and ``bulk_mark_lost(request, record, lost_reason, lost_note)`` with its app's services.
    """

    bulk_actions = (
        "assign_owner",
        "move_to_stage",
        "add_tags",
        "remove_tags",
        "mark_lost",
        "export_selected",
    )

    def bulk_update(self, request, record, data):
        raise NotImplementedError

    def bulk_move(self, request, record, stage):
        raise NotImplementedError

    def bulk_mark_lost(self, request, record, lost_reason, lost_note):
        raise NotImplementedError

    def _bulk_form(
        self, request, queryset, form_class, *, title: str, action: str, apply_label: str, **kwargs
    ):
        """The intermediate page's form: bound when the page was submitted, else blank."""
        if "apply" in request.POST:
            form = form_class(request.POST, **kwargs)
            if form.is_valid():
                return form, None
        else:
            form = form_class(**kwargs)
        opts = self.model._meta
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "opts": opts,
            "form": form,
            "action": action,
            "apply_label": apply_label,
            "records": list(queryset[:50]),
            "count": queryset.count(),
            "selected_ids": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
            "select_across": request.POST.get("select_across", "0"),
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return form, TemplateResponse(request, "admin/crm/bulk_action.html", context)

    @admin.action(description="Assign the selected to an owner", permissions=["change"])
    def assign_owner(self, request, queryset):
        form, page = self._bulk_form(
            request,
            queryset,
            BulkOwnerForm,
            title="Assign an owner",
            action="assign_owner",
            apply_label="Assign",
        )
        if page is not None:
            return page
        owner = form.cleaned_data["owner"]
        done = f"assigned to {owner.get_username()}" if owner else "unassigned"
        run_transition(
            self, request, queryset, lambda record: self.bulk_update(request, record, {"owner": owner}), done
        )
        return None

    @admin.action(description="Move the selected to a stage", permissions=["change"])
    def move_to_stage(self, request, queryset):
        pipeline_ids = set(queryset.values_list("pipeline_id", flat=True))
        form, page = self._bulk_form(
            request,
            queryset,
            BulkStageForm,
            title="Move to a stage",
            action="move_to_stage",
            apply_label="Move",
            pipeline_ids=pipeline_ids,
        )
        if page is not None:
            return page
        stage = form.cleaned_data["stage"]
        run_transition(
            self,
            request,
            queryset,
            lambda record: self.bulk_move(request, record, stage),
            f"moved to {stage.name}",
        )
        return None

    def _change_tags(self, request, queryset, *, adding: bool):
        action = "add_tags" if adding else "remove_tags"
        form, page = self._bulk_form(
            request,
            queryset,
            BulkTagsForm,
            title="Add tags" if adding else "Remove tags",
            action=action,
            apply_label="Add" if adding else "Remove",
        )
        if page is not None:
            return page
        chosen = set(form.cleaned_data["tags"])
        names = ", ".join(sorted(tag.name for tag in chosen))

        def change(record):
            current = set(record.tags.all())
            wanted = current | chosen if adding else current - chosen
            if wanted == current:
                raise ValidationError(f"already {'has' if adding else 'has none of'} these tags.")
            return self.bulk_update(request, record, {"tags": list(wanted)})

        run_transition(self, request, queryset, change, f"tagged {names}" if adding else f"untagged {names}")
        return None

    @admin.action(description="Add tags to the selected", permissions=["change"])
    def add_tags(self, request, queryset):
        return self._change_tags(request, queryset, adding=True)

    @admin.action(description="Remove tags from the selected", permissions=["change"])
    def remove_tags(self, request, queryset):
        return self._change_tags(request, queryset, adding=False)

    @admin.action(description="Mark the selected lost", permissions=["change"])
    def mark_lost(self, request, queryset):
        form, page = self._bulk_form(
            request, queryset, MarkLostForm, title="Mark lost", action="mark_lost", apply_label="Mark lost"
        )
        if page is not None:
            return page
        reason, note = form.cleaned_data["lost_reason"], form.cleaned_data["lost_note"]
        run_transition(
            self,
            request,
            queryset,
            lambda record: self.bulk_mark_lost(request, record, reason, note),
            f"marked lost ({reason})" if reason else "marked lost",
        )
        return None

    @admin.action(description="Export the selected (CSV)", permissions=["view"])
    def export_selected(self, request, queryset):
        exported = export_queryset(
            kind=schema_for_model(self.model).kind, queryset=queryset, fmt="csv", user=request.user
        )
        response = HttpResponse(exported.content, content_type=exported.content_type)
        response["Content-Disposition"] = f'attachment; filename="{exported.filename}"'
        return response
