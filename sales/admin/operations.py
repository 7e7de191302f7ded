"""Sales operations in the admin: exchange rates (with a CSV import), quotas, and two pages of the
opportunity admin, the account hierarchy (linked from an account's page) and the performance board."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from crm.admin.base import DateInput, ServiceModelAdmin, with_changelist_tool
from crm.admin.record import RecordAction, register_record_actions
from crm.models import Account
from crm.money import money_format
from sales import services
from sales.currencies import conversion_note
from sales.hierarchy import account_hierarchy
from sales.models import ExchangeRate, Quota, QuotaPeriod, company_currency
from sales.performance import performance_board
from sales.quotas import quota_editable_by, quota_visible_to, with_attainment
from sales.rate_files import rate_rows

# --- exchange rates -------------------------------------------------------------------------------


class RateImportForm(forms.Form):
    file = forms.FileField(help_text="CSV, UTF-8, with a header row: currency,date,rate (date YYYY-MM-DD).")


@admin.register(ExchangeRate)
class ExchangeRateAdmin(ServiceModelAdmin):
    list_display = ("currency", "date", "rate", "company_currency")
    list_filter = ("currency",)
    search_fields = ("currency",)
    date_hierarchy = "date"
    ordering = ("currency", "-date")

    def create_record(self, request, data):
        return services.exchange_rate_create(user=request.user, data=data)

    def update_record(self, request, obj, data):
        return services.exchange_rate_update(exchange_rate=obj, user=request.user, data=data)

    @admin.display(description="in")
    def company_currency(self, obj):
        return company_currency()

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("import/", wrap(self.import_view), name="sales_exchangerate_import"),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        if self.has_add_permission(request):
            url = reverse("admin:sales_exchangerate_import")
            extra_context = with_changelist_tool(extra_context, "Import rates", url)
        return super().changelist_view(request, extra_context)

    def import_view(self, request):
        if not (self.has_add_permission(request) and self.has_change_permission(request)):
            raise PermissionDenied
        form = RateImportForm(request.POST or None, request.FILES or None)
        errors: list[str] = []
        if request.method == "POST" and form.is_valid():
            try:
                result = services.exchange_rate_import(
                    user=request.user, rows=rate_rows(form.cleaned_data["file"].read())
                )
            except ValidationError as exc:
                errors = [f"{where}: {' '.join(texts)}" for where, texts in exc.message_dict.items()]
            else:
                self.message_user(
                    request,
                    f"Rates imported: {result.created} created, {result.updated} updated.",
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(reverse("admin:sales_exchangerate_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "title": "Import exchange rates",
            "opts": self.opts,
            "form": form,
            "errors": errors,
            "company_currency": company_currency(),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/sales/exchangerate/import.html", context)


# --- quotas ---------------------------------------------------------------------------------------


@admin.register(Quota)
class QuotaAdmin(ServiceModelAdmin):
    list_display = ("holder", "period", "period_start", "period_end", "target_amount", "target_count", "won")
    list_filter = ("period", "team")
    list_select_related = ("user", "team")
    autocomplete_fields = ("user", "team")
    date_hierarchy = "period_start"
    fields = ("user", "team", "period", "period_start", "target_amount", "target_count")

    def get_queryset(self, request):
        return with_attainment(quota_visible_to(request.user))

    def create_record(self, request, data):
        return services.quota_create(user=request.user, data=data)

    def update_record(self, request, obj, data):
        return services.quota_update(quota=obj, user=request.user, data=data)

    def delete_record(self, request, obj):
        services.quota_delete(quota=obj, user=request.user)

    def _may_set(self, request, obj) -> bool:
        if obj is None:
            return True
        holders = quota_editable_by(request.user)
        if obj.user_id is not None:
            return holders["users"].filter(pk=obj.user_id).exists()
        return holders["teams"].filter(pk=obj.team_id).exists()

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and self._may_set(request, obj)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and self._may_set(request, obj)

    @admin.display(description="for")
    def holder(self, obj):
        return obj.user or obj.team

    @admin.display(description="won (attainment)")
    def won(self, obj):
        parts = []
        if obj.target_amount is not None:
            share = f" ({obj.won_amount * 100 / obj.target_amount:.0f}%)" if obj.target_amount else ""
            parts.append(f"{money_format(obj.won_amount, currency=company_currency())}{share}")
        if obj.target_count is not None:
            share = f" ({obj.won_count * 100 / obj.target_count:.0f}%)" if obj.target_count else ""
            parts.append(f"{obj.won_count} deals{share}")
        return " · ".join(parts)


# --- pages of the opportunity admin: the account hierarchy, the performance board ------------------


class PerformanceForm(forms.Form):
    period = forms.ChoiceField(choices=QuotaPeriod.choices, required=False)
    date = forms.DateField(label="Holding the day", required=False, widget=DateInput)


class SalesOperationsPagesMixin:
    """``account-hierarchy/<account id>/`` and ``performance/`` on the opportunity admin."""

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path(
                "account-hierarchy/<path:object_id>/",
                wrap(self.account_hierarchy_view),
                name="sales_opportunity_account_hierarchy",
            ),
            path("performance/", wrap(self.performance_view), name="sales_opportunity_performance"),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        url = reverse("admin:sales_opportunity_performance")
        return super().changelist_view(request, with_changelist_tool(extra_context, "Performance", url))

    def _page(self, request, template, context):
        request.current_app = self.admin_site.name
        return TemplateResponse(
            request, template, {**self.admin_site.each_context(request), "opts": self.opts, **context}
        )

    def account_hierarchy_view(self, request, object_id):
        if not (self.has_view_permission(request) and request.user.has_perm("crm.view_account")):
            raise PermissionDenied
        if not str(object_id).isdigit() or len(str(object_id)) > 18:
            raise Http404("No such account.")
        account = Account.objects.filter(pk=int(object_id)).first()
        if account is None:
            raise Http404("No such account.")
        tree = account_hierarchy(user=request.user, account=account)
        return self._page(
            request,
            "admin/sales/opportunity/account_hierarchy.html",
            {
                "title": f"Hierarchy of {account.name}",
                "account": account,
                "tree": tree,
                "account_url": reverse("admin:crm_account_change", args=[account.pk]),
            },
        )

    def performance_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        form = PerformanceForm(request.GET or None)
        options = {}
        if form.is_bound:
            form.is_valid()
            options = form.cleaned_data
        board = performance_board(
            user=request.user, period=options.get("period") or QuotaPeriod.QUARTER, day=options.get("date")
        )
        return self._page(
            request,
            "admin/sales/opportunity/performance.html",
            {
                "title": "Performance",
                "form": form,
                "board": board,
                "conversion": conversion_note(),
                "changelist_url": reverse("admin:sales_opportunity_changelist"),
            },
        )


def account_hierarchy_action(*, request, obj) -> list[RecordAction]:
    """The "Hierarchy" button on an account's page."""
    if not request.user.has_perm("sales.view_opportunity"):
        return []
    return [RecordAction("Hierarchy", reverse("admin:sales_opportunity_account_hierarchy", args=[obj.pk]))]


register_record_actions("crm.account", account_hierarchy_action)
