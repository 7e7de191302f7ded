"""Saved views in the API: ``saved-views/`` (yours and those shared with you; ``?list_key=crm.lead``),
and ``saved-views/lists/``: the lists that take views, with their columns and filters."""

from django.urls import NoReverseMatch, reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from crm.api.serializers import TIMESTAMPS, related_id
from crm.api.viewsets import ServiceModelViewSet, crud_schema
from crm.models import SalesTeam, SavedView

from .services import saved_view_create, saved_view_delete, saved_view_list, saved_view_update
from .specs import list_specs


class SavedViewSerializer(serializers.ModelSerializer):
    owner_id = serializers.IntegerField(read_only=True)
    owner_username = serializers.CharField(source="owner.username", read_only=True)
    team_id = related_id(SalesTeam.objects.all(), "team", help_text="With sharing=team: the team.")
    filters = serializers.DictField(
        child=serializers.CharField(allow_blank=True, max_length=500),
        required=False,
        help_text='The list\'s filter parameters: {"status__exact": "open", "owner__id__exact": "3"}.',
    )
    ordering = serializers.ListField(
        child=serializers.CharField(max_length=100),
        required=False,
        max_length=10,
        help_text='Columns to sort by, "-" for descending: ["-revenue", "name"].',
    )
    columns = serializers.ListField(
        child=serializers.CharField(max_length=100),
        required=False,
        max_length=60,
        help_text="The visible columns in order (names from saved-views/lists/); empty: the list's own.",
    )
    admin_url = serializers.SerializerMethodField(help_text="The admin list opened in this view.")

    class Meta:
        model = SavedView
        fields = (
            "id",
            "name",
            "list_key",
            "owner_id",
            "owner_username",
            "filters",
            "search",
            "ordering",
            "columns",
            "sharing",
            "team_id",
            "is_default",
            "admin_url",
            *TIMESTAMPS,
        )
        read_only_fields = ("id", "owner_id", "owner_username", "admin_url", *TIMESTAMPS)

    def get_admin_url(self, obj: SavedView) -> str:
        app_label, _, model_name = obj.list_key.partition(".")
        try:
            return f"{reverse(f'admin:{app_label}_{model_name}_changelist')}?view={obj.pk}"
        except NoReverseMatch:
            return ""


class ListColumnSerializer(serializers.Serializer):
    name = serializers.CharField()
    label = serializers.CharField()
    sortable = serializers.BooleanField()


class ListInfoSerializer(serializers.Serializer):
    list_key = serializers.CharField()
    label = serializers.CharField()
    columns = ListColumnSerializer(many=True, help_text="In the list's own order.")
    filters = serializers.ListField(
        child=serializers.CharField(), help_text="The filter parameters it takes."
    )
    searchable = serializers.BooleanField()


LIST_KEY = OpenApiParameter(
    "list_key", OpenApiTypes.STR, description='Only the views of one list: "crm.lead".'
)


@extend_schema_view(
    **{**crud_schema("saved view", SavedViewSerializer), "list": extend_schema(parameters=[LIST_KEY])}
)
class SavedViewViewSet(ServiceModelViewSet):
    """Saved views of the admin's lists: yours and those shared with you; only their owner changes them.
    An unknown column, filter or sort column is a 400 naming it."""

    serializer_class = SavedViewSerializer
    selector = staticmethod(lambda *, user, filters=None: saved_view_list(user=user))
    filterset_class = None

    def get_queryset(self):
        views = saved_view_list(user=self.request.user)
        list_key = self.request.query_params.get("list_key")
        return views.filter(list_key=list_key) if list_key else views

    def create_record(self, data):
        return saved_view_create(user=self.request.user, data=data)

    def update_record(self, instance, data):
        return saved_view_update(saved_view=instance, user=self.request.user, data=data)

    def delete_record(self, instance):
        saved_view_delete(saved_view=instance, user=self.request.user)

    @extend_schema(
        summary="The lists that take saved views",
        description="Each list's columns (for columns and ordering) and filter parameters, as you see them.",
        responses={200: ListInfoSerializer(many=True)},
    )
    @action(detail=False, methods=["get"], url_path="lists", url_name="lists", pagination_class=None)
    def lists(self, request: Request) -> Response:
        body = []
        for spec in list_specs():
            if not spec.model_admin.has_view_or_change_permission(request._request):
                continue
            body.append(
                {
                    "list_key": spec.key,
                    "label": spec.label,
                    "columns": [
                        {"name": n, "label": spec.column_label(n), "sortable": spec.column_sortable(n)}
                        for n in spec.columns
                    ],
                    "filters": sorted(spec.filter_parameters(request.user)),
                    "searchable": spec.searchable,
                }
            )
        return Response(ListInfoSerializer(body, many=True).data)
