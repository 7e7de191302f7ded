"""Commissions in the admin: plans with their tiers and category rates inline, assignments, and the
statements (computed from a form, approved and locked by actions, exported for payroll)."""

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from crm.admin.base import (
    DateInput,
    ServiceModelAdmin,
    ServiceRefused,
    register_inline_saver,
    save_inline_forms,
    with_changelist_tool,
)
from crm.services import record_delete
from sales import services_commissions as services
from sales.commissions import commission_statement_visible_to, commission_statements_export
from sales.models import (
    CommissionAssignment,
    CommissionCategoryRate,
    CommissionPlan,
    CommissionStatement,
    CommissionTier,
    QuotaPeriod,
    company_currency,
)


class CommissionTierInline(admin.TabularInline):
    model = CommissionTier
    fields = ("attainment_from", "attainment_to", "rate")
    extra = 1


class CommissionCategoryRateInline(admin.TabularInline):
    model = CommissionCategoryRate
    fields = ("category", "rate")
    extra = 1


register_inline_saver(
    CommissionTier,
    lambda request, formset: save_inline_forms(
        request,
        formset,
        create=lambda user, data: services.commission_tier_create(user=user, data=data),
        update=lambda user, obj, data: services.commission_tier_update(tier=obj, user=user, data=data),
        delete=lambda user, obj: record_delete(instance=obj, user=user),
    ),
)
register_inline_saver(
    CommissionCategoryRate,
    lambda request, formset: save_inline_forms(
        request,
        formset,
        create=lambda user, data: services.commission_category_rate_create(user=user, data=data),
        update=lambda user, obj, data: services.commission_category_rate_update(
            rate=obj, user=user, data=data
        ),
        delete=lambda user, obj: record_delete(instance=obj, user=user),
    ),
)


@admin.register(CommissionPlan)
class CommissionPlanAdmin(ServiceModelAdmin):
    list_display = ("name", "base_rate", "tier_summary", "is_active")
    list_filter = ("is_active",)
    search_fields = ("name", "description")
    fields = ("name", "base_rate", "description", "is_active")
    inlines = [CommissionTierInline, CommissionCategoryRateInline]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("tiers")

    def create_record(self, request, data):
        return services.commission_plan_create(user=request.user, data=data)

    def update_record(self, request, obj, data):
        return services.commission_plan_update(plan=obj, user=request.user, data=data)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        try:  # the tier rows were saved one by one: together they must not overlap
            services.commission_tiers_ensure_apart(plan=form.instance)
        except ValidationError as exc:
            raise ServiceRefused(exc) from exc

    @admin.display(description="tiers")
    def tier_summary(self, obj):
        return "; ".join(str(tier) for tier in obj.tiers.all()) or "—"


@admin.register(CommissionAssignment)
class CommissionAssignmentAdmin(ServiceModelAdmin):
    list_display = ("user", "plan", "period", "period_start", "period_end")
    list_filter = ("period", "plan")
    list_select_related = ("user", "plan")
    autocomplete_fields = ("user", "plan")
    search_fields = ("user__username", "plan__name")
    date_hierarchy = "period_start"
    fields = ("user", "plan", "period", "period_start")

    def create_record(self, request, data):
        return services.commission_assignment_create(user=request.user, data=data)

    def update_record(self, request, obj, data):
        return services.commission_assignment_update(assignment=obj, user=request.user, data=data)


class StatementComputeForm(forms.Form):
    user = forms.ModelChoiceField(queryset=get_user_model().objects.order_by("username"), label="Rep")
    period = forms.ChoiceField(choices=QuotaPeriod.choices, initial=QuotaPeriod.QUARTER)
    date = forms.DateField(label="Any day of the period", widget=DateInput)


@admin.register(CommissionStatement)
class CommissionStatementAdmin(ServiceModelAdmin):
    list_display = ("user", "plan", "period", "period_start", "status", "won_amount", "attainment", "total")
    list_filter = ("status", "period", "plan")
    list_select_related = ("user", "plan")
    date_hierarchy = "period_start"
    fields = (
        "user",
        "plan",
        "period",
        "period_start",
        "period_end",
        "status",
        "won_amount",
        "quota_target",
        "attainment",
        "total",
        "computed_at",
        "approved_at",
        "approved_by",
        "locked_at",
        "lines_table",
    )
    readonly_fields = fields
    actions = ["approve_selected", "lock_selected", "export_csv", "export_xlsx"]

    def get_queryset(self, request):
        return commission_statement_visible_to(request.user).select_related("user", "plan", "approved_by")

    @admin.display(description="lines")
    def lines_table(self, obj):
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    line.get_kind_display(),
                    line.description,
                    line.close_date or "—",
                    line.amount,
                    line.commission,
                )
                for line in obj.lines.all()
            ),
        )
        return format_html(
            "<table><tr><th>kind</th><th>deal</th><th>closed</th><th>amount ({})</th><th>commission</th></tr>"
            "{}</table>",
            company_currency(),
            rows,
        )

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_manage_permission(self, request):
        return request.user.has_perm("sales.change_commissionstatement")

    def delete_record(self, request, obj):
        services.commission_statement_delete(statement=obj, user=request.user)

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("compute/", wrap(self.compute_view), name="sales_commissionstatement_compute"),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        if self.has_manage_permission(request):
            url = reverse("admin:sales_commissionstatement_compute")
            extra_context = with_changelist_tool(extra_context, "Compute a statement", url)
        return super().changelist_view(request, extra_context)

    def compute_view(self, request):
        if not self.has_manage_permission(request):
            raise PermissionDenied
        form = StatementComputeForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                statement = services.commission_statement_compute(
                    user=request.user,
                    rep=form.cleaned_data["user"],
                    period=form.cleaned_data["period"],
                    day=form.cleaned_data["date"],
                )
            except ValidationError as exc:
                for field, errors in exc.message_dict.items():
                    form.add_error(None, f"{field}: {' '.join(errors)}")
            else:
                self.message_user(request, f"Statement computed: {statement.total} {company_currency()}.")
                return HttpResponseRedirect(
                    reverse("admin:sales_commissionstatement_change", args=[statement.pk])
                )
        request.current_app = self.admin_site.name
        context = {
            **self.admin_site.each_context(request),
            "title": "Compute a commission statement",
            "opts": self.opts,
            "form": form,
        }
        return TemplateResponse(request, "admin/sales/commissionstatement/compute.html", context)

    def _each(self, request, queryset, service, done: str):
        changed = 0
        for statement in queryset:
            try:
                service(statement=statement, user=request.user)
            except ValidationError as exc:
                self.message_user(request, f"{statement}: {' '.join(exc.messages)}", messages.WARNING)
            else:
                changed += 1
        self.message_user(request, f"{changed} statement(s) {done}.", messages.SUCCESS)

    @admin.action(description="Approve the selected draft statements", permissions=["manage"])
    def approve_selected(self, request, queryset):
        self._each(request, queryset, services.commission_statement_approve, "approved")

    @admin.action(description="Lock the selected approved statements", permissions=["manage"])
    def lock_selected(self, request, queryset):
        self._each(request, queryset, services.commission_statement_lock, "locked")

    def _export(self, queryset, fmt):
        content, content_type = commission_statements_export(statements=queryset, fmt=fmt)
        response = HttpResponse(content, content_type=content_type)
        response["Content-Disposition"] = f'attachment; filename="commission-statements.{fmt}"'
        return response

    @admin.action(description="Export the selected statements for payroll (CSV)")
    def export_csv(self, request, queryset):
        return self._export(queryset, "csv")

    @admin.action(description="Export the selected statements for payroll (XLSX)")
    def export_xlsx(self, request, queryset):
        return self._export(queryset, "xlsx")
