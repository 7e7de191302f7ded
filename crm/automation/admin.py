"""Automation rules and their runs in the admin (CRM Admins and superusers).

The rule form has the trigger's settings as plain fields (the events, the changed field and its
values, the date field, the cron), the conditions and actions as rows that follow the chosen model
(crm.automation.rule_form; a JSON box for nested groups), checked by the rule services with each
message on its row; "Test on a record" previews a rule on a record and runs it by hand.
"""

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import Http404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from crm.admin.base import ServiceModelAdmin
from crm.automation import engine, rule_form, services
from crm.automation.conditions import OPERATORS
from crm.automation.registry import action_kinds, automatable_models
from crm.automation.triggers import UPDATE_KINDS, date_fields, event_kinds
from crm.models import AutomationRule, AutomationRun, TriggerKind

EVENT_CHOICES = [(k, k.replace("_", " ")) for k in ("created", "deleted", *sorted(UPDATE_KINDS))]


def _may_manage(request) -> bool:
    # Asked for every model of the sidebar and every action: once a request.
    if not hasattr(request, "_crm_manages_automations"):
        request._crm_manages_automations = services.automations_manageable_by(request.user)
    return request._crm_manages_automations


class ManagedByCrmAdmins:
    def has_module_permission(self, request):
        return _may_manage(request)

    def has_view_permission(self, request, obj=None):
        return _may_manage(request)


def _model_choices():
    return [(label, f"{entry.noun.capitalize()} ({label})") for label, entry in automatable_models().items()]


class JSONText(forms.CharField):
    """Rows (rule_form's widgets) or JSON typed in their box."""

    def __init__(self, *, empty, **kwargs):
        self.empty = empty
        super().__init__(required=False, **kwargs)

    def has_changed(self, initial, data):
        return True  # the rule is checked as a whole

    def prepare_value(self, value):
        if isinstance(value, dict) and "rows" in value:
            return value  # posted rows, shown again as rows
        if isinstance(value, dict | list):
            return json.dumps(value, indent=2, ensure_ascii=False)
        return value

    def to_python(self, value):
        if value in (None, ""):
            return self.empty
        if isinstance(value, dict | list):
            return value  # rows (turned into JSON by the form, which knows the model)
        try:
            return json.loads(value)
        except ValueError as exc:
            raise ValidationError(f"Not valid JSON: {exc}") from None


class AutomationRuleForm(forms.ModelForm):
    model = forms.ChoiceField(choices=_model_choices, help_text="The kind of record the rule acts on.")
    events = forms.MultipleChoiceField(
        choices=EVENT_CHOICES,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Event trigger: which events (“updated” includes stage changed, won, lost, converted, "
        "reopened).",
    )
    changed_field = forms.CharField(
        required=False, help_text="Event trigger: only when this field changed (e.g. stage)."
    )
    changed_from = forms.CharField(
        required=False, help_text="…changed from this value (an id for a relation)."
    )
    changed_to = forms.CharField(
        required=False, help_text="…changed to this value (fires once when it becomes it)."
    )
    date_field = forms.CharField(
        required=False, help_text="Time trigger: a date field (close_date, due_date...)."
    )
    days = forms.IntegerField(required=False, min_value=0, max_value=3650, help_text="Time trigger: N days.")
    when = forms.ChoiceField(
        choices=[("after", "after the date"), ("before", "before the date")], required=False
    )
    no_activity_days = forms.IntegerField(
        required=False,
        min_value=0,
        max_value=3650,
        help_text="Time trigger instead: N days without activity.",
    )
    cron = forms.CharField(
        required=False, help_text="Schedule trigger: cron in UTC, e.g. 0 8 * * 1 (Mondays 08:00)."
    )
    conditions = JSONText(
        empty={},
        widget=rule_form.ConditionRowsWidget,
        help_text="A row per condition: a field of the record or of a related record (account → "
        "industry, owner → sales teams → name), an operator valid for it, a value (a list: comma-"
        'separated). Nested AND/OR groups: JSON in the box, e.g. {"any": [ ... , {"all": [...]}]}.',
    )
    actions = JSONText(
        empty=[],
        widget=rule_form.ActionRowsWidget,
        help_text="In order, a row per action: its kind, then what it needs (ids of tags or users "
        "comma-separated; JSON where it says so).",
    )

    class Meta:
        model = AutomationRule
        fields = (
            "name",
            "description",
            "model",
            "trigger_kind",
            "conditions",
            "actions",
            "on_error",
            "order",
            "is_active",
            "owner",
        )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        label = self.data.get("model") if self.is_bound else None
        label = label or self.initial.get("model") or self.instance.model
        if label not in automatable_models():
            label = next(iter(automatable_models()), None)
        for name in ("conditions", "actions"):
            # A field's widget is copied shallowly per form: give this form its own state.
            self.fields[name].widget.model_label = label
            self.fields[name].widget.row_errors = {}
        trigger = self.instance.trigger or {}
        self.initial.update(
            events=trigger.get("events", []),
            changed_field=trigger.get("field", ""),
            changed_from=trigger.get("from", ""),
            changed_to=trigger.get("to", ""),
            date_field=trigger.get("date_field", ""),
            days=trigger.get("days"),
            when=trigger.get("when", "after"),
            no_activity_days=trigger.get("no_activity_days"),
            cron=trigger.get("cron", ""),
        )

    @property
    def changed_data(self):
        # The rule is checked as a whole (trigger, conditions and actions depend on the model).
        return [*self.cleaned_data, "trigger"]

    def clean(self):
        data = super().clean()
        kind = data.get("trigger_kind")
        trigger: dict = {}
        if kind == TriggerKind.EVENT:
            trigger["events"] = data.get("events") or []
            if data.get("changed_field"):
                trigger["field"] = data["changed_field"]
                for key, name in (("from", "changed_from"), ("to", "changed_to")):
                    if data.get(name):
                        trigger[key] = data[name]
        elif kind == TriggerKind.TIME:
            if data.get("no_activity_days") is not None:
                trigger["no_activity_days"] = data["no_activity_days"]
            else:
                trigger.update(
                    date_field=data.get("date_field"),
                    days=data.get("days") or 0,
                    when=data.get("when") or "after",
                )
        elif kind == TriggerKind.SCHEDULE:
            trigger["cron"] = data.get("cron")
        data["trigger"] = trigger
        self._rows_to_json(data)
        if "model" not in data or "trigger_kind" not in data:
            return data
        # Check what parsed (a part with a JSON error keeps its own message).
        names = ("model", "trigger_kind", "trigger", "conditions", "actions")
        try:
            services._clean({k: data[k] for k in names if k in data}, self.instance)
        except ValidationError as exc:
            for key, problems in exc.message_dict.items():
                target = key if key in self.fields else None
                if target in ("conditions", "actions") and self._rows[target]:
                    rows, problems = rule_form.errors_by_row(problems)
                    widget = self.fields[target].widget
                    for index, messages in rows.items():
                        widget.row_errors.setdefault(index, []).extend(messages)
                    if rows:
                        problems = [*problems, f"Fix the {target} rows marked below."]
                if target is None or target not in self.errors:
                    self.add_error(target, problems)
        if self.fields["actions"].widget.row_errors and "actions" not in self.errors:
            self.add_error("actions", "Fix the actions rows marked below.")  # JSON that did not parse
        return data

    def _rows_to_json(self, data) -> None:
        """What the rows posted, as the JSON the rule stores (the model names the fields' types)."""
        label = data.get("model")
        entry = automatable_models().get(label)
        self._rows = {"conditions": False, "actions": False}
        conditions = data.get("conditions")
        if isinstance(conditions, dict) and "rows" in conditions:
            self._rows["conditions"] = True
            data["conditions"] = rule_form.conditions_from_rows(
                conditions.get("match", "all"), conditions["rows"], entry.model if entry else None
            )
        actions = data.get("actions")
        if isinstance(actions, dict) and "rows" in actions:
            self._rows["actions"] = True
            data["actions"], problems = rule_form.actions_from_rows(actions["rows"], label)
            widget = self.fields["actions"].widget
            for index, messages in problems.items():
                widget.row_errors.setdefault(index, []).extend(messages)


@admin.register(AutomationRule)
class AutomationRuleAdmin(ManagedByCrmAdmins, ServiceModelAdmin):
    form = AutomationRuleForm
    list_display = (
        "name",
        "model",
        "trigger_kind",
        "trigger_text",
        "order",
        "is_active",
        "runs_link",
        "owner",
    )
    list_filter = ("is_active", "trigger_kind", "model")
    list_editable = ()
    search_fields = ("name", "description")
    list_select_related = ("owner",)
    raw_id_fields = ("owner",)
    actions = ["enable", "disable"]
    readonly_fields = ("webhook_url", "test_link", "reference")
    fieldsets = (
        (None, {"fields": ("name", "description", "model", "order", "is_active", "owner", "on_error")}),
        (
            "Trigger",
            {
                "fields": (
                    "trigger_kind",
                    "events",
                    ("changed_field", "changed_from", "changed_to"),
                    ("date_field", "days", "when"),
                    "no_activity_days",
                    "cron",
                    "webhook_url",
                )
            },
        ),
        ("Conditions", {"fields": ("conditions",)}),
        ("Actions", {"fields": ("actions", "test_link")}),
        ("What a rule can use, by model", {"fields": ("reference",), "classes": ("collapse",)}),
    )

    def has_add_permission(self, request):
        return _may_manage(request)

    has_change_permission = has_delete_permission = ManagedByCrmAdmins.has_view_permission

    def create_record(self, request, data):
        return services.automation_rule_create(user=request.user, data=data)

    def update_record(self, request, obj, data):
        return services.automation_rule_update(rule=obj, user=request.user, data=data)

    def delete_record(self, request, obj):
        services.automation_rule_delete(rule=obj, user=request.user)

    @admin.display(description="trigger")
    def trigger_text(self, obj):
        return ", ".join(f"{k}: {v}" for k, v in (obj.trigger or {}).items()) or "—"

    @admin.display(description="runs")
    def runs_link(self, obj):
        url = reverse("admin:crm_automationrun_changelist") + f"?rule__id__exact={obj.pk}"
        return format_html('<a href="{}">Runs</a>', url)

    @admin.display(description="webhook URL")
    def webhook_url(self, obj):
        if obj is None or obj.trigger_kind != TriggerKind.WEBHOOK or not obj.webhook_token:
            return 'Webhook rules get a secret URL when saved: POST {"record_id": 12} to it.'
        from crm.automation.api import INBOUND_PATH

        return INBOUND_PATH.format(id=obj.pk, token=obj.webhook_token)

    @admin.display(description="test")
    def test_link(self, obj):
        if obj is None or obj.pk is None:
            return "Save the rule, then test it on a record."
        return format_html(
            '<a class="button" href="{}">Test on a record / run now</a>',
            reverse("admin:crm_automationrule_test", args=[obj.pk]),
        )

    @admin.display(description="fields, events, actions")
    def reference(self, obj):
        rows = []
        for label, entry in automatable_models().items():
            fields = ", ".join(f.name for f in entry.model._meta.get_fields() if f.concrete or f.many_to_many)
            kinds = "; ".join(f"{a.kind} {json.dumps(a.example)}" for a in action_kinds(label))
            rows.append(
                (label, ", ".join(event_kinds(entry)), ", ".join(date_fields(entry.model)), fields, kinds)
            )
        table = format_html_join(
            "",
            "<tr><th>{}</th><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
            rows,
        )
        return format_html(
            "<p>Operators: {}</p><table><tr><th>model</th><th>events</th><th>date fields</th><th>fields</th>"
            "<th>actions (params example)</th></tr>{}</table>",
            ", ".join(OPERATORS),
            table,
        )

    @admin.action(description="Enable the selected rules", permissions=["change"])
    def enable(self, request, queryset):
        for rule in queryset:
            services.automation_rule_update(rule=rule, user=request.user, data={"is_active": True})
        self.message_user(request, f"{queryset.count()} rule(s) enabled.")

    @admin.action(description="Disable the selected rules", permissions=["change"])
    def disable(self, request, queryset):
        for rule in queryset:
            services.automation_rule_update(rule=rule, user=request.user, data={"is_active": False})
        self.message_user(request, f"{queryset.count()} rule(s) disabled.")

    def get_urls(self):
        return [
            path(
                "<path:object_id>/test/",
                self.admin_site.admin_view(self.test_view),
                name="crm_automationrule_test",
            ),
            *super().get_urls(),
        ]

    def test_view(self, request, object_id):
        if not _may_manage(request):
            raise Http404
        rule = self.get_object(request, object_id)
        if rule is None:
            raise Http404
        source = request.POST if request.method == "POST" else request.GET
        raw = str(source.get("record_id", "")).strip()
        preview, error = None, ""
        if raw:
            if not raw.isdigit() or len(raw) > 18:
                error = "Give a record id (a number)."
            else:
                entry = automatable_models().get(rule.model)
                if entry is None or not entry.model._default_manager.filter(pk=int(raw)).exists():
                    error = f"No record with id {raw}."
                elif request.method == "POST":
                    try:
                        with transaction.atomic():
                            runs = services.automation_rule_run(
                                rule=rule, record_ids=[int(raw)], user=request.user
                            )
                    except ValidationError as exc:
                        error = " ".join(exc.messages)
                    else:
                        self.message_user(
                            request,
                            "Queued a run."
                            if runs
                            else "The record does not meet the conditions: nothing ran.",
                            messages.SUCCESS if runs else messages.WARNING,
                        )
                        preview = engine.rule_preview(rule=rule, record_id=int(raw))
                else:
                    preview = engine.rule_preview(rule=rule, record_id=int(raw))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Test “{rule}” on a record",
            "rule": rule,
            "record_id": raw,
            "preview": preview,
            "error": error,
            "runs_url": reverse("admin:crm_automationrun_changelist") + f"?rule__id__exact={rule.pk}",
        }
        return TemplateResponse(request, "admin/crm/automationrule/test.html", context)


@admin.register(AutomationRun)
class AutomationRunAdmin(ManagedByCrmAdmins, ServiceModelAdmin):
    """Read-only: the engine writes runs."""

    list_display = (
        "id",
        "rule",
        "model",
        "record_id",
        "trigger",
        "status",
        "attempts",
        "duration_ms",
        "created_at",
        "short_error",
    )
    list_filter = ("status", "model", "rule")
    list_select_related = ("rule",)
    search_fields = ("=record_id", "rule__name", "error")
    show_full_result_count = False
    date_hierarchy = "created_at"
    fields = (
        "rule",
        "model",
        "record_id",
        "trigger",
        "event_id",
        "chain",
        "status",
        "attempts",
        "next_attempt_at",
        "created_at",
        "started_at",
        "finished_at",
        "duration_ms",
        "reason",
        "error",
        "outcome_table",
    )
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="error")
    def short_error(self, obj):
        return (obj.error or obj.reason)[:80]

    @admin.display(description="actions")
    def outcome_table(self, obj):
        rows = [
            (
                o.get("index", 0) + 1,
                o.get("kind"),
                o.get("status"),
                o.get("detail", ""),
                o.get("error", ""),
                o.get("duration_ms", ""),
            )
            for o in obj.outcomes
        ]
        return format_html(
            "<table><tr><th>#</th><th>action</th><th>outcome</th><th>detail</th><th>error</th><th>ms</th></tr>{}</table>",
            format_html_join(
                "", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", rows
            ),
        )
