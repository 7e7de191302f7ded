"""“Enroll the selected in a sequence”: the bulk action of the leads and contacts lists."""

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied, ValidationError

from crm.admin.base import run_transition
from crm.admin.bulk import BulkActionsMixin
from crm.models import Sequence
from crm.sequences import services


class EnrollForm(forms.Form):
    sequence = forms.ModelChoiceField(queryset=Sequence.objects.filter(is_active=True).order_by("name"))


class EnrollInSequenceMixin:
    """ "Enroll in a sequence" on a list of leads or contacts: choose the sequence, then each selected
    record is enrolled (or skipped, with the reason: closed, opted out, enrolled already...)."""

    @admin.action(description="Enroll the selected in a sequence", permissions=["change"])
    def enroll_in_sequence(self, request, queryset):
        if not request.user.has_perm("crm.add_sequenceenrollment"):
            raise PermissionDenied
        form, page = BulkActionsMixin._bulk_form(
            self,
            request,
            queryset,
            EnrollForm,
            title="Enroll in a sequence",
            action="enroll_in_sequence",
            apply_label="Enroll",
        )
        if page is not None:
            return page
        sequence = form.cleaned_data["sequence"]

        def enroll(record):
            try:
                return services.sequence_enroll(
                    sequence=sequence, record=record, user=request.user, kick=False
                )
            except PermissionDenied as exc:
                raise ValidationError(str(exc)) from exc

        run_transition(self, request, queryset, enroll, f"enrolled in “{sequence}”")
        services.sequences_kick()
        return None
