"""Admin building blocks shared by the crm, sales and activities admins."""

import functools
import html
from collections import defaultdict
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.contrib.admin.widgets import AutocompleteSelect, AutocompleteSelectMultiple
from django.core.exceptions import ImproperlyConfigured, PermissionDenied, ValidationError
from django.db import models, transaction
from django.http import Http404, HttpResponseRedirect
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.utils.translation import gettext
from simple_history.admin import SimpleHistoryAdmin

from crm import services as crm_services
from crm.admin.saved_views import SavedViewsMixin
from crm.money import money_format
from crm.services import owner_ensure_allowed, record_stored_version, record_version
from crm.win_probability import win_estimate_cached

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


class DateInput(forms.DateInput):
    """A date field as the browser's date picker."""

    input_type = "date"


def money(value: Decimal | None, *, compact: bool = False) -> str:
    """An amount in the CRM's currency by the locale: "$334,000", or compact "$334K" (crm.money)."""
    return money_format(value, compact=compact)


# The name of a changelist row's checkbox, as format_html writes it.
_CHECKBOX_NAME = html.escape(helpers.ACTION_CHECKBOX_NAME)


@functools.lru_cache(maxsize=1024)
def color_swatch(color: str, label: str = "") -> str:
    """A square of ``color`` before ``label``, both escaped; a changelist writes the same few stages'
    pills on every row, so they are kept."""
    return format_html(
        '<span style="display:inline-block;width:.8em;height:.8em;border-radius:2px;'
        'background:{};vertical-align:middle;margin-right:.3em"></span>{}',
        color,
        label,
    )


def _is_key_of(field: models.Field, value) -> bool:
    """True when ``value`` could be a value of ``field`` (an id in its range, say)."""
    try:
        field.run_validators(field.to_python(value))
    except (ValidationError, TypeError, ValueError, OverflowError):
        return False
    return True


class _KnownKeysOnlyMixin:
    """Shows only the values that could be ids of the related model: the widget looks the selected
    ones up by id, and ``?lead=abc`` (or a form posted back with it) would fail that query."""

    def optgroups(self, name, value, attr=None):
        target = self.field.target_field
        empty = self.choices.field.empty_values
        value = [item for item in value if str(item) in empty or _is_key_of(target, item)]
        return super().optgroups(name, value, attr)


class KnownKeysAutocompleteSelect(_KnownKeysOnlyMixin, AutocompleteSelect):
    pass


class KnownKeysAutocompleteSelectMultiple(_KnownKeysOnlyMixin, AutocompleteSelectMultiple):
    pass


class BadKeysTolerantMixin:
    """Autocomplete fields that show a form prefilled or posted with an id that is not one (``abc``,
    ``99999999999999999999``) without it, where Django's widget answers 500; the field itself says
    "Select a valid choice" on a post. A history version page with such an id is a 404."""

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if "widget" not in kwargs and db_field.name in self.get_autocomplete_fields(request):
            kwargs["widget"] = KnownKeysAutocompleteSelect(
                db_field, self.admin_site, using=kwargs.get("using")
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        # simple-history looks the version up by both ids: one that is not a number failed that query.
        history_model = self.model.history.model
        if not (
            _is_key_of(self.model._meta.pk, object_id)
            and _is_key_of(history_model._meta.get_field("history_id"), version_id)
        ):
            raise Http404("No such version.")
        return super().history_form_view(request, object_id, version_id, extra_context)

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        if "widget" not in kwargs and db_field.name in self.get_autocomplete_fields(request):
            kwargs["widget"] = KnownKeysAutocompleteSelectMultiple(
                db_field, self.admin_site, using=kwargs.get("using")
            )
        return super().formfield_for_manytomany(db_field, request, **kwargs)


class ServiceRefusedPageMixin:
    """A change form whose save a service refused (the record's, or an inline record's) shows the
    reason on the page instead of failing; changeform_view's transaction has rolled it all back."""

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except ServiceRefused as refused:
            self.message_user(request, " ".join(refused.error.messages), messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())


class OwnerDefaultMixin(ServiceRefusedPageMixin):
    """New records are owned by the person who creates them, unless they pick someone else."""

    def get_changeform_initial_data(self, request):
        initial = super().get_changeform_initial_data(request)
        initial.setdefault("owner", request.user.pk)
        return initial

    def get_form(self, request, obj=None, change=False, **kwargs):
        form_class = super().get_form(request, obj, change, **kwargs)
        user = request.user

        class OwnerRuleForm(form_class):
            """Refuses an owner the services would refuse (services.owner_ensure_allowed), on the field."""

            def clean(self):
                cleaned = super().clean()
                if "owner" in self.fields and "owner" in cleaned and "owner" in self.changed_data:
                    try:
                        owner_ensure_allowed(
                            user=user, record=self.instance, data={"owner": cleaned["owner"]}
                        )
                    except ValidationError as exc:
                        for message in exc.message_dict.get("owner", exc.messages):
                            self.add_error("owner", message)
                return cleaned

        OwnerRuleForm.__name__ = form_class.__name__
        return OwnerRuleForm


# Every model shown in an inline registers the function(request, formset) that writes its rows through
# its services (an activity rescores its lead, a contact keeps one primary contact per account);
# ServiceModelAdmin.save_formset calls it instead of formset.save().
INLINE_SAVERS: dict[type[models.Model], Callable] = {}


def register_inline_saver(model: type[models.Model], saver: Callable) -> None:
    INLINE_SAVERS[model] = saver


def save_inline_forms(request, formset, *, create, update, delete) -> None:
    """Write an inline formset through services: ``create(user, data)``, ``update(user, obj, data)``,
    ``delete(user, obj)``, with the changed fields of each form; sets formset.new_objects etc. as
    formset.save() would, for the admin's change message."""
    formset.save(commit=False)  # sorts the forms into new, changed and deleted ones
    for obj in formset.deleted_objects:
        try:
            delete(request.user, obj)
        except ValidationError as exc:
            raise ServiceRefused(exc) from exc
    fk_name = formset.fk.name
    saved_new, saved_changed = [], []
    for inline_form in formset.forms:
        if inline_form in formset.deleted_forms or not inline_form.has_changed():
            continue
        obj = inline_form.instance
        names = inline_form.changed_data if obj.pk else list(inline_form.cleaned_data)
        data = {
            name: inline_form.cleaned_data[name]
            for name in names
            if name in inline_form.cleaned_data and name not in ("id", "DELETE", fk_name)
        }
        if obj.pk is None:
            data[fk_name] = formset.instance
            if getattr(obj, "owner_id", None) is not None and "owner" not in data:
                data["owner"] = obj.owner
            try:
                saved = create(request.user, data)
            except ValidationError as exc:
                raise ServiceRefused(exc) from exc
            saved_new.append(saved)
        else:
            try:
                saved = update(request.user, obj, data)
            except ValidationError as exc:
                raise ServiceRefused(exc) from exc
            saved_changed.append((saved, inline_form.changed_data))
        inline_form.instance = saved
    formset.new_objects, formset.changed_objects = saved_new, saved_changed


class StagePillMixin:
    @admin.display(description="stage", ordering="stage__sequence")
    def stage_pill(self, obj):
        return color_swatch(obj.stage.color, obj.stage.name)


class WinProbabilityAdminMixin:
    """The automated (naive Bayes) win probability beside the manual one: a changelist column that
    costs one query for the page's pipeline models, and a line on the record page saying where the
    figure comes from or why there is none."""

    def get_changelist_instance(self, request):
        changelist = super().get_changelist_instance(request)
        if request.method == "GET":
            # The page's records are fetched here instead of by the template (the same query, once).
            models: dict = {}
            for record in changelist.result_list:
                record._win_estimate = win_estimate_cached(record, models)
        return changelist

    @staticmethod
    def _win_estimate(obj):
        estimate = getattr(obj, "_win_estimate", None)
        if estimate is None:
            estimate = obj._win_estimate = win_estimate_cached(obj, {})
        return estimate

    @admin.display(description="auto prob.")
    def automated_probability(self, obj):
        estimate = self._win_estimate(obj)
        if estimate.probability is None:
            return format_html('<span title="{}">—</span>', estimate.note)
        return f"{estimate.probability}%"

    @admin.display(description="automated probability")
    def automated_probability_explained(self, obj):
        if obj.pk is None:
            return "Estimated once the record is saved."
        estimate = self._win_estimate(obj)
        if estimate.probability is None:
            return estimate.note
        return (
            f"{estimate.probability}% — naive Bayes estimate from the won and lost history of this "
            f"pipeline (stage, owner, priority, tags...), beside the manual probability."
        )


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


class ServiceRefused(Exception):
    """A service refused a save that the form had accepted; carries the service's ValidationError."""

    def __init__(self, error: ValidationError):
        super().__init__(error)
        self.error = error


class ClosedRecordMixin:
    """A converted, won or lost record keeps its pipeline and stage: show them read-only."""

    def get_readonly_fields(self, request, obj=None):
        readonly = tuple(super().get_readonly_fields(request, obj))
        if obj is not None and obj.is_closed:
            readonly += tuple(name for name in ("pipeline", "stage") if name not in readonly)
        return readonly


def run_transition(
    modeladmin: admin.ModelAdmin,
    request,
    queryset: models.QuerySet,
    transition: Callable[[models.Model], models.Model],
    done: str,
) -> None:
    """Apply a service to each selected record; report how many succeeded and why others did not."""
    succeeded, refused = 0, []
    for record in queryset:
        try:
            transition(record)
        except ValidationError as exc:
            refused.append(f"“{record}”: {' '.join(exc.messages)}")
        else:
            succeeded += 1
    opts = queryset.model._meta
    if succeeded:
        noun = opts.verbose_name if succeeded == 1 else opts.verbose_name_plural
        modeladmin.message_user(request, f"{succeeded} {noun} {done}.", messages.SUCCESS)
    for reason in refused:
        modeladmin.message_user(request, f"Skipped {reason}", messages.WARNING)


CRM_CHANGE_LIST_TEMPLATE = "admin/crm/change_list.html"


def with_changelist_tool(extra_context: dict | None, label: str, url: str, css: str = "") -> dict:
    """Add a button to a changelist's object tools (drawn by admin/crm/change_list.html)."""
    context = dict(extra_context or {})
    context["crm_tools"] = [*context.get("crm_tools", []), {"label": label, "url": url, "class": css}]
    return context


class VisibleRecordsAdminMixin:
    """The admin (changelist, change pages, autocompletes, actions) starts from the records the app's
    selectors let the user see, so another rep's record is absent, as if it did not exist.

    Put it right before ``admin.ModelAdmin`` or an inline class: it replaces their ``get_queryset``.
    ``editable_records(user)``, when set, narrows which of those the user may change or delete.
    """

    def visible_records(self, user) -> models.QuerySet:
        raise NotImplementedError

    def editable_records(self, user) -> models.QuerySet | None:
        return None

    def get_queryset(self, request):
        queryset = self.visible_records(request.user)
        ordering = self.get_ordering(request)
        return queryset.order_by(*ordering) if ordering else queryset

    def _may_write(self, request, obj) -> bool:
        if obj is None or obj.pk is None:
            return True
        editable = self.editable_records(request.user)
        return editable is None or editable.filter(pk=obj.pk).exists()

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and self._may_write(request, obj)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and self._may_write(request, obj)


STALE_EDIT_MESSAGE = (
    "Someone else saved this record after you opened it. Your changes were not saved: reload the page "
    "to see theirs, then make your changes again."
)


class VersionedFormMixin(forms.ModelForm):
    """Carries the version (``updated_at``) a change form was loaded with, and refuses to save over a
    newer one, so two people editing the same record never silently overwrite each other."""

    loaded_version = forms.CharField(widget=forms.HiddenInput, required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            self.fields["loaded_version"].initial = record_version(self.instance)

    def clean(self):
        cleaned = super().clean()
        loaded = cleaned.get("loaded_version")
        if self.instance.pk is not None and loaded:
            # Locked until the admin's transaction ends: no one saves between this check and ours.
            current = record_stored_version(self.instance)
            if current is None or current != loaded:
                raise ValidationError(STALE_EDIT_MESSAGE, code="stale")
        return cleaned


class StaleEditGuardMixin:
    """Puts VersionedFormMixin's hidden version field on the admin's change form."""

    def get_form(self, request, obj=None, change=False, **kwargs):
        base = kwargs.get("form", self.form)
        kwargs["form"] = type(f"Versioned{base.__name__}", (VersionedFormMixin, base), {})
        return super().get_form(request, obj, change, **kwargs)

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None:
            return fieldsets
        (name, options), *rest = fieldsets
        return [(name, {**options, "fields": [*options["fields"], "loaded_version"]}), *rest]


class ServiceModelAdmin(SavedViewsMixin, BadKeysTolerantMixin, ServiceRefusedPageMixin, admin.ModelAdmin):
    """The one base class of our model admins: every write goes through the services, with the user.

    - the change form (and a list_editable row): ``create_record(request, data)`` and
      ``update_record(request, obj, data)``, given the fields the form changed;
    - a delete, of one record or of the "delete selected" action: ``delete_record(request, obj)``,
      ``services.record_delete`` unless the model has its own delete service;
    - inline rows: the saver the inline's model registered with ``register_inline_saver``.

    Its changelist takes saved views and a column chooser (``crm.admin.saved_views``).

    A service's refusal (ValidationError) rolls the whole request back and is shown on the page as a
    message, never a server error. ``tests/admin/test_admin_registry.py`` fails for a registered admin
    that can write without this class.
    """

    def action_checkbox(self, obj):
        """Django's row checkbox, the same HTML written directly: its widget renders two templates a
        row (a sixth of a 100-row changelist's time)."""
        # format_html's escapes, without its lazy-argument checks (a hundred rows a page).
        label = gettext("Select this object for an action - {}").format(html.escape(str(obj)))
        return mark_safe(
            f'<input type="checkbox" name="{_CHECKBOX_NAME}" value="{html.escape(str(obj.pk))}" '
            f'class="action-select" aria-label="{label}">'
        )

    def create_record(self, request, data: dict[str, Any]) -> models.Model:
        raise NotImplementedError

    def update_record(self, request, obj: models.Model, data: dict[str, Any]) -> models.Model:
        raise NotImplementedError

    def delete_record(self, request, obj: models.Model) -> None:
        crm_services.record_delete(instance=obj, user=request.user)

    def save_model(self, request, obj, form, change):
        writable = {
            field.name for field in obj._meta.get_fields() if field.concrete and not field.primary_key
        } | {field.name for field in obj._meta.many_to_many}  # tags too: the services record their change
        names = form.changed_data if change else form.cleaned_data
        data = {
            name: form.cleaned_data[name] for name in names if name in writable and name in form.cleaned_data
        }
        try:
            saved = self.update_record(request, obj, data) if change else self.create_record(request, data)
        except ValidationError as exc:
            raise ServiceRefused(exc) from exc
        # The admin goes on with ``obj`` (inlines, the log, the redirect): make it the saved record.
        for field in obj._meta.concrete_fields:
            setattr(obj, field.attname, getattr(saved, field.attname))
        obj._state.adding = False
        obj._state.db = saved._state.db

    def delete_model(self, request, obj):
        try:
            self.delete_record(request, obj)
        except ValidationError as exc:
            raise ServiceRefused(exc) from exc

    def delete_queryset(self, request, queryset):
        # One record at a time, so each goes through its service (the bulk action's own transaction,
        # opened by changelist_view, makes it all or nothing).
        for obj in queryset:
            self.delete_model(request, obj)

    def save_formset(self, request, form, formset, change):
        # Records added through an inline (a logged call on a lead) belong to whoever adds them.
        for inline_form in formset.forms:
            instance = inline_form.instance
            if instance.pk is None and getattr(instance, "owner_id", False) is None:
                instance.owner = request.user
        saver = INLINE_SAVERS.get(formset.model)
        if saver is None:
            raise ImproperlyConfigured(
                f"{formset.model._meta.label} is edited in an inline but has no service saver: "
                f"call register_inline_saver()."
            )
        saver(request, formset)

    def delete_view(self, request, object_id, extra_context=None):
        try:
            return super().delete_view(request, object_id, extra_context)
        except ServiceRefused as refused:
            self.message_user(request, " ".join(refused.error.messages), messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    def changelist_view(self, request, extra_context=None):
        if request.method != "POST":
            return super().changelist_view(request, extra_context)
        try:
            # Bulk actions and list_editable rows: all written, or none when a service refuses one.
            with transaction.atomic():
                return super().changelist_view(request, extra_context)
        except ServiceRefused as refused:
            self.message_user(request, " ".join(refused.error.messages), messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())


class ServiceHistoryAdmin(ServiceModelAdmin, SimpleHistoryAdmin):
    """ServiceModelAdmin for a model with an audit trail: its history pages show only a record the user
    sees (like its change page), and a revert from a version page is an update by the record's
    service, allowed to those who may change the record, under the same rules as an edit."""

    def history_view(self, request, object_id, extra_context=None):
        # simple-history would otherwise fall back to the stored versions of a record the user
        # cannot see.
        if self.get_object(request, unquote(object_id)) is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        return super().history_view(request, object_id, extra_context)

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        current = self.get_object(request, unquote(object_id))
        if current is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if request.method != "POST":
            request._crm_current_record = current
            return super().history_form_view(request, object_id, version_id, extra_context)
        if not self.has_change_permission(request, current):
            raise PermissionDenied
        if self.revert_disabled(request, current):
            refusal = "Reverting to an earlier version is turned off: edit the record instead."
            self.message_user(request, refusal, messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())
        try:
            with transaction.atomic():
                return self._history_revert(request, current)
        except ServiceRefused as refused:
            self.message_user(request, " ".join(refused.error.messages), messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    def _history_revert(self, request, current):
        """The version page posts the old values (perhaps edited): the form compares them with the
        current record, so the update service gets exactly what the revert changes."""
        form = self.get_form(request, current, change=True)(request.POST, request.FILES, instance=current)
        if not form.is_valid():
            problems = [
                f"{name}: {' '.join(errors)}" if name != "__all__" else " ".join(errors)
                for name, errors in form.errors.items()
            ]
            self.message_user(request, "Not reverted. " + " ".join(problems), messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())
        obj = self.save_form(request, form, change=True)
        self.save_model(request, obj, form, change=True)
        form.save_m2m()
        self.log_change(request, obj, self.construct_change_message(request, form, []))
        return self.response_change(request, obj)

    def render_history_view(self, request, template, context, **kwargs):
        current = getattr(request, "_crm_current_record", None)
        form = getattr(context.get("adminform"), "form", None)
        if current is not None and form is not None and "loaded_version" in form.fields:
            # A revert is checked against the version of the record it replaces, not the old one shown.
            form.initial["loaded_version"] = record_version(current)
        return super().render_history_view(request, template, context, **kwargs)
