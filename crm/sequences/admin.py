"""Sequences in the admin: the sequence with its steps in order (an inline), enrollments with their
state and history (failures shown), and "Enroll in a sequence" on the leads and contacts lists."""

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils.html import format_html

from crm.admin.base import ServiceModelAdmin, ServiceRefused, register_inline_saver, run_transition
from crm.models import EnrollmentEvent, EnrollmentStatus, Sequence, SequenceEnrollment, SequenceStep
from crm.sequences import selectors, services
from crm.sequences.conditions import CONDITION_FIELDS


class SequenceStepForm(forms.ModelForm):
    condition_field = forms.ChoiceField(
        required=False, choices=[("", "—")] + [(name, name) for name in CONDITION_FIELDS]
    )

    class Meta:
        model = SequenceStep
        fields = (
            "position",
            "kind",
            "email_template",
            "task_subject",
            "task_type",
            "task_due_days",
            "wait_days",
            "business_days",
            "condition_field",
            "condition_operator",
            "condition_value",
            "branch_to",
        )


class SequenceStepInline(admin.TabularInline):
    """The steps, in the order of their position: renumber to reorder (steps may swap positions)."""

    model = SequenceStep
    form = SequenceStepForm
    extra = 1
    ordering = ("position",)
    autocomplete_fields = ("email_template",)


def _save_steps(request, formset) -> None:
    """The inline's rows, written together by the sequence's service (so positions may be swapped)."""
    formset.save(commit=False)
    sequence = formset.instance
    creates, updates, new_forms = [], [], []
    for form in formset.forms:
        if form in formset.deleted_forms or not form.has_changed():
            continue
        names = form.changed_data if form.instance.pk else list(form.cleaned_data)
        data = {
            n: form.cleaned_data[n]
            for n in names
            if n in form.cleaned_data and n not in ("id", "DELETE", "sequence")
        }
        if form.instance.pk:
            updates.append((form.instance, data))
        else:
            creates.append(data)
            new_forms.append(form)
    try:
        saved = services.sequence_steps_write(
            sequence=sequence,
            user=request.user,
            create=creates,
            update=updates,
            delete=formset.deleted_objects,
        )
    except ValidationError as exc:
        raise ServiceRefused(exc) from exc
    formset.new_objects = saved[len(updates) :]
    formset.changed_objects = [(step, []) for step in saved[: len(updates)]]


register_inline_saver(SequenceStep, _save_steps)


@admin.register(Sequence)
class SequenceAdmin(ServiceModelAdmin):
    inlines = [SequenceStepInline]
    list_display = ("name", "is_active", "steps", "active", "updated_at", "enrollments_link")
    list_filter = ("is_active",)
    search_fields = ("name",)
    fields = ("name", "description", "is_active", "consent_purpose")
    autocomplete_fields = ("consent_purpose",)

    def get_queryset(self, request):
        return selectors.sequence_list(user=request.user)

    @admin.display(description="steps", ordering="step_count")
    def steps(self, obj):
        return obj.step_count

    @admin.display(description="active enrollments", ordering="active_enrollments")
    def active(self, obj):
        return obj.active_enrollments

    @admin.display(description="enrollments")
    def enrollments_link(self, obj):
        return format_html('<a href="../sequenceenrollment/?sequence__id__exact={}">See them</a>', obj.pk)

    def create_record(self, request, data):
        return services.sequence_create(user=request.user, data=data)

    def update_record(self, request, obj, data):
        return services.sequence_update(sequence=obj, user=request.user, data=data)

    def delete_record(self, request, obj):
        services.sequence_delete(sequence=obj, user=request.user)


class EnrollmentEventInline(admin.TabularInline):
    model = EnrollmentEvent
    fields = ("at", "position", "kind", "detail")
    readonly_fields = fields
    extra = 0
    can_delete = False
    verbose_name_plural = "history"

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class EnrollmentForm(forms.ModelForm):
    class Meta:
        model = SequenceEnrollment
        fields = ("sequence", "lead", "contact")

    def clean(self):
        data = super().clean()
        if bool(data.get("lead")) == bool(data.get("contact")):
            raise forms.ValidationError("Enroll a lead or a contact (one of them).")
        return data


@admin.register(SequenceEnrollment)
class SequenceEnrollmentAdmin(ServiceModelAdmin):
    """Enroll one record by hand (add), see each enrollment's state and history, stop them."""

    form = EnrollmentForm
    inlines = [EnrollmentEventInline]
    list_display = (
        "id",
        "record",
        "sequence",
        "status",
        "position",
        "next_run_at",
        "attempts",
        "last_error",
        "updated_at",
    )
    list_filter = ("status", "sequence")
    list_select_related = ("sequence", "lead", "contact")
    search_fields = ("lead__name", "contact__first_name", "contact__last_name", "sequence__name")
    autocomplete_fields = ("sequence", "lead", "contact")
    actions = ["stop_selected"]
    show_full_result_count = False
    readonly_fields = (
        "status",
        "position",
        "next_run_at",
        "attempts",
        "last_error",
        "stop_reason",
        "enrolled_by",
        "created_at",
        "finished_at",
    )

    def get_queryset(self, request):
        return selectors.enrollment_list(user=request.user)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("sequence", "lead", "contact")
        return ("sequence", "lead", "contact", *self.readonly_fields)

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is None else ("sequence", "lead", "contact", *self.readonly_fields)

    def get_inlines(self, request, obj):
        return [] if obj is None else self.inlines

    @admin.display(description="record")
    def record(self, obj):
        return obj.lead or obj.contact

    def has_change_permission(self, request, obj=None):
        return False  # an enrollment moves on by itself; stop it with the action

    def has_delete_permission(self, request, obj=None):
        return False  # its history is kept

    def create_record(self, request, data):
        record = data.get("lead") or data.get("contact")
        try:
            return services.sequence_enroll(sequence=data["sequence"], record=record, user=request.user)
        except PermissionDenied as exc:
            raise ValidationError(str(exc)) from exc

    @admin.action(description="Stop the selected enrollments", permissions=["view"])
    def stop_selected(self, request, queryset):
        if not request.user.has_perm("crm.change_sequenceenrollment"):
            raise PermissionDenied

        def stop(enrollment):
            try:
                return services.enrollment_stop(enrollment=enrollment, user=request.user)
            except PermissionDenied as exc:
                raise ValidationError(str(exc)) from exc

        run_transition(self, request, queryset.filter(status=EnrollmentStatus.ACTIVE), stop, "stopped")
