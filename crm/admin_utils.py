"""Admin building blocks shared by the crm, sales and activities admins."""

from collections import defaultdict
from decimal import Decimal

from django import forms
from django.conf import settings
from django.contrib import admin
from django.utils.html import format_html

# Inlines that another app contributes to a crm model's admin (sales adds opportunities to an
# account, activities adds activities everywhere), so crm never imports those apps.
_extra_inlines: dict[str, list[type]] = defaultdict(list)


def register_inline(model_label: str, inline: type) -> None:
    """Show ``inline`` on the change page of ``model_label`` ("crm.account")."""
    if inline not in _extra_inlines[model_label]:
        _extra_inlines[model_label].append(inline)


class ExtensibleInlinesMixin:
    def get_inlines(self, request, obj):
        return [*super().get_inlines(request, obj), *_extra_inlines[self.model._meta.label_lower]]


def money(value: Decimal | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.2f} {settings.CRM_CURRENCY}"


def color_swatch(color: str, label: str = "") -> str:
    return format_html(
        '<span style="display:inline-block;width:.8em;height:.8em;border-radius:2px;'
        'background:{};vertical-align:middle;margin-right:.3em"></span>{}',
        color,
        label,
    )


class OwnerDefaultMixin:
    """New records are owned by the person who creates them, unless they pick someone else."""

    def get_changeform_initial_data(self, request):
        initial = super().get_changeform_initial_data(request)
        initial.setdefault("owner", request.user.pk)
        return initial

    def save_formset(self, request, form, formset, change):
        # Records added through an inline (a logged call on a lead) belong to whoever adds them.
        for inline_form in formset.forms:
            instance = inline_form.instance
            if instance.pk is None and getattr(instance, "owner_id", False) is None:
                instance.owner = request.user
        super().save_formset(request, form, formset, change)


class StagePillMixin:
    @admin.display(description="stage", ordering="stage__sequence")
    def stage_pill(self, obj):
        return color_swatch(obj.stage.color, obj.stage.name)


class ColorInput(forms.TextInput):
    """The browser's colour picker; it submits #rrggbb, which the models' colour validator expects."""

    input_type = "color"

    def __init__(self, attrs=None):
        super().__init__({"class": "crm-color", **(attrs or {})})


class ColorPickerMixin:
    """A colour picker for the model's ``color`` field, on a ModelAdmin or an inline."""

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "color":
            kwargs["widget"] = ColorInput()
        return super().formfield_for_dbfield(db_field, request, **kwargs)
