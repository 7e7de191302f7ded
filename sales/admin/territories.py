"""Territories in the admin: the tree with its rules inline, members and team, how many accounts each
holds, a "Re-run the rules" button that starts a background run, and the runs' reports (read only)."""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from crm.admin.base import ServiceModelAdmin, register_inline_saver, save_inline_forms, with_changelist_tool
from crm.models import Account
from crm.services import record_delete
from sales import services_territories as services
from sales.models import Territory, TerritoryRule, TerritoryRun
from sales.territories import territory_run_list, with_account_count


class TerritoryRuleInline(admin.TabularInline):
    model = TerritoryRule
    fields = ("country", "state", "postal_code_prefix", "industry", "employees_min", "employees_max")
    extra = 1


def save_territory_rule_inline(request, formset) -> None:
    save_inline_forms(
        request,
        formset,
        create=lambda user, data: services.territory_rule_create(user=user, data=data),
        update=lambda user, obj, data: services.territory_rule_update(rule=obj, user=user, data=data),
        delete=lambda user, obj: record_delete(instance=obj, user=user),
    )


register_inline_saver(TerritoryRule, save_territory_rule_inline)


@admin.register(Territory)
class TerritoryAdmin(ServiceModelAdmin):
    list_display = ("name", "parent", "sequence", "team", "accounts", "is_active")
    list_filter = ("is_active", "team")
    list_select_related = ("parent", "team")
    search_fields = ("name", "description")
    autocomplete_fields = ("parent", "team", "members")
    fields = ("name", "parent", "sequence", "team", "members", "description", "is_active")
    inlines = [TerritoryRuleInline]

    def get_queryset(self, request):
        return with_account_count(super().get_queryset(request))

    def create_record(self, request, data):
        return services.territory_create(user=request.user, data=data)

    def update_record(self, request, obj, data):
        return services.territory_update(territory=obj, user=request.user, data=data)

    def delete_record(self, request, obj):
        services.territory_delete(territory=obj, user=request.user)

    @admin.display(description="accounts", ordering="account_count")
    def accounts(self, obj):
        return obj.account_count

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [path("rerun/", wrap(self.rerun_view), name="sales_territory_rerun"), *super().get_urls()]

    def _may_rerun(self, request) -> bool:
        return request.user.has_perm("sales.change_territory") and request.user.has_perm(
            "sales.view_territoryrun"
        )

    def changelist_view(self, request, extra_context=None):
        if self._may_rerun(request):
            extra_context = with_changelist_tool(
                extra_context, "Re-run the rules", reverse("admin:sales_territory_rerun")
            )
        return super().changelist_view(request, extra_context)

    def rerun_view(self, request):
        """GET: what a run does; POST: start one and show its report page."""
        if not self._may_rerun(request):
            raise PermissionDenied
        if request.method != "POST":
            request.current_app = self.admin_site.name
            context = {
                **self.admin_site.each_context(request),
                "title": "Re-run the territory rules",
                "opts": self.opts,
                "account_count": Account.objects.count(),
                "runs_url": reverse("admin:sales_territoryrun_changelist"),
            }
            return TemplateResponse(request, "admin/sales/territory/rerun.html", context)
        run = services.territory_run_start(user=request.user)
        self.message_user(
            request,
            "The rules are being re-applied to every account in the background: this report shows what "
            "moved once it is done.",
            messages.SUCCESS,
        )
        return HttpResponseRedirect(reverse("admin:sales_territoryrun_change", args=[run.pk]))


@admin.register(TerritoryRun)
class TerritoryRunAdmin(ServiceModelAdmin):
    """The reports of the runs: read only (a run is started from the territories' list)."""

    list_display = ("created_at", "started_by", "status", "accounts", "moved", "finished_at")
    list_filter = ("status",)
    list_select_related = ("started_by",)
    fields = (
        "status",
        "started_by",
        "created_at",
        "finished_at",
        "accounts",
        "moved",
        "moves_table",
        "error",
    )
    readonly_fields = fields

    def get_queryset(self, request):
        return territory_run_list(user=request.user)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="what moved")
    def moves_table(self, obj):
        if not obj.moves:
            return "Nothing moved." if obj.finished_at else "Not finished yet."
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((move.get("account"), move.get("from") or "—", move.get("to") or "—") for move in obj.moves),
        )
        return format_html("<table><tr><th>account</th><th>from</th><th>to</th></tr>{}</table>", rows)
