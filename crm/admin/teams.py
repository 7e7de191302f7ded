"""Admin for sales teams: who manages and who belongs to a team decides who sees whose records."""

from django.contrib import admin
from django.db.models import Count

from crm import selectors, services
from crm.admin.base import ServiceModelAdmin
from crm.models import SalesTeam


@admin.register(SalesTeam)
class SalesTeamAdmin(ServiceModelAdmin):
    """Teams decide who sees whose records, so only a CRM Admin (or a superuser) changes them
    (crm.services.sales_team_*); a manager or a rep views the teams they are in."""

    list_display = ("name", "manager", "member_count", "is_active")
    list_filter = ("is_active",)
    list_select_related = ("manager",)
    search_fields = ("name", "manager__username", "members__username")
    autocomplete_fields = ("manager", "members")

    def get_queryset(self, request):
        teams = selectors.sales_team_visible_to(request.user)
        return teams.annotate(member_total=Count("members", distinct=True)).order_by(
            *self.get_ordering(request) or ("name",)
        )

    def _manages_teams(self, request) -> bool:
        return selectors.user_sees_everything(request.user)

    def has_add_permission(self, request):
        return super().has_add_permission(request) and self._manages_teams(request)

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and self._manages_teams(request)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and self._manages_teams(request)

    def create_record(self, request, data):
        return services.sales_team_create(user=request.user, data=data)

    def update_record(self, request, obj, data):
        return services.sales_team_update(team=obj, user=request.user, data=data)

    def delete_record(self, request, obj):
        services.sales_team_delete(team=obj, user=request.user)

    @admin.display(description="members", ordering="member_total")
    def member_count(self, obj):
        return obj.member_total
