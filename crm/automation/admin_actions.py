"""“Run an automation rule on the selected”: the manual trigger as a bulk action of the record lists."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError

from crm.admin.bulk import BulkActionsMixin
from crm.automation.services import automation_rule_run, automations_manageable_by
from crm.models import AutomationRule

MAX_RECORDS = 1000


class RunRuleForm(forms.Form):
    rule = forms.ModelChoiceField(queryset=AutomationRule.objects.none())

    def __init__(self, *args, model_label: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["rule"].queryset = AutomationRule.objects.filter(
            model=model_label, is_active=True
        ).order_by("order", "name")


class RunAutomationRuleMixin:
    """Choose one of the active rules on this kind of record; each selected record that meets its
    conditions gets a run (the others are skipped), logged like every run. CRM Admins only."""

    def get_actions(self, request):
        actions = super().get_actions(request)
        if not automations_manageable_by(request.user):
            actions.pop("run_automation_rule", None)
        return actions

    @admin.action(description="Run an automation rule on the selected", permissions=["change"])
    def run_automation_rule(self, request, queryset):
        if not automations_manageable_by(request.user):
            raise PermissionDenied
        form, page = BulkActionsMixin._bulk_form(
            self,
            request,
            queryset,
            RunRuleForm,
            title="Run an automation rule",
            action="run_automation_rule",
            apply_label="Run",
            model_label=self.model._meta.label,
        )
        if page is not None:
            return page
        rule = form.cleaned_data["rule"]
        ids = list(queryset.values_list("pk", flat=True)[: MAX_RECORDS + 1])
        if len(ids) > MAX_RECORDS:
            self.message_user(
                request, f"Choose at most {MAX_RECORDS} records to run a rule on at once.", messages.ERROR
            )
            return None
        try:
            runs = automation_rule_run(rule=rule, record_ids=ids, user=request.user)
        except (ValidationError, PermissionDenied) as exc:
            self.message_user(request, "; ".join(getattr(exc, "messages", [str(exc)])), messages.ERROR)
            return None
        skipped = len(ids) - len(runs)
        text = f"“{rule}”: {len(runs)} run(s) queued"
        if skipped:
            text += f"; {skipped} record(s) skipped (they do not meet its conditions)"
        self.message_user(request, text + ". See Automation runs for their outcome.", messages.SUCCESS)
        return None
