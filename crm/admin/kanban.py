"""Kanban boards in the admin: one mixin gives a ModelAdmin its board, a cards fragment and a move endpoint.

The board is a column per stage of one pipeline, built by the app's kanban selector (the same one as
``GET .../kanban``), with the FilterSet's filters as a small form. Dragging a card POSTs to the move
endpoint, which calls the app's move-stage service and answers the recomputed column figures and the
re-rendered card, or a 400 with the service's message. ``static/crm/kanban.js`` does the dragging.
"""

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django import forms
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Model, QuerySet
from django.http import HttpResponse, HttpResponseNotAllowed, JsonResponse, QueryDict
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.http import urlencode

from crm.admin.base import CRM_CHANGE_LIST_TEMPLATE, money, with_changelist_tool
from crm.models import Pipeline, Stage
from crm.registries import next_activity_by_record
from crm.selectors import KANBAN_DEFAULT_LIMIT, KanbanBoard

# Changelist query parameters (Django's list_filter and search) and the FilterSet names they mean.
CHANGELIST_PARAMS = {"q": "search", "tags__id__exact": "tag"}


@dataclass
class KanbanCard:
    """What a card shows; built once per record so the templates stay free of model knowledge."""

    record: Model
    url: str
    title: str
    subtitle: str
    value: Decimal | None
    owner: str
    priority: str
    priority_label: str
    status: str
    status_label: str
    locked: bool
    next_activity: Any
    origin_stage_id: int


class KanbanAdminMixin:
    """Adds ``board/``, ``board/cards/`` and ``board/move/`` to a ModelAdmin of pipeline records.

    A subclass says which selectors and service to use (``kanban_board``, ``kanban_cards``,
    ``kanban_move``), which FilterSet filters the board offers, and what a card shows.
    """

    kanban_filterset: type
    kanban_filter_fields: tuple[str, ...] = ("search", "owner", "priority", "status", "tag")
    kanban_filter_labels = {"search": "Search", "owner": "Owner", "tag": "Tag"}
    kanban_page_size = KANBAN_DEFAULT_LIMIT
    kanban_value_field: str
    kanban_value_label = "value"
    change_list_template = CRM_CHANGE_LIST_TEMPLATE

    # --- what a subclass provides ------------------------------------------------------------------

    def kanban_records(self, *, user) -> QuerySet:
        """The records ``user`` may see (the app's visibility selector)."""
        raise NotImplementedError

    def kanban_board(self, *, user, pipeline: Pipeline | None, filters, limit: int) -> KanbanBoard:
        raise NotImplementedError

    def kanban_cards(self, *, user, stage: Stage, filters, offset: int, limit: int) -> tuple[list, bool]:
        raise NotImplementedError

    def kanban_move(self, *, record, stage: Stage, user):
        raise NotImplementedError

    def kanban_card_subtitle(self, record) -> str:
        return ""

    # --- URLs ----------------------------------------------------------------------------------------

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        wrap = self.admin_site.admin_view
        return [
            path("board/", wrap(self.kanban_view), name="{}_{}_board".format(*info)),
            path("board/cards/", wrap(self.kanban_cards_view), name="{}_{}_board_cards".format(*info)),
            path("board/move/", wrap(self.kanban_move_view), name="{}_{}_board_move".format(*info)),
            *super().get_urls(),
        ]

    def kanban_url(self, name: str) -> str:
        return reverse(
            f"admin:{self.opts.app_label}_{self.opts.model_name}_{name}", current_app=self.admin_site.name
        )

    # --- filters -------------------------------------------------------------------------------------

    def kanban_filter_form(self, params: QueryDict):
        """The FilterSet's form, bound to the request, showing only the board's filters."""
        filterset = self.kanban_filterset(data=params, queryset=self.model._default_manager.none())
        form = filterset.form
        # In the board's order (search first), without the filters the board has no use for.
        form.fields = {name: form.fields[name] for name in self.kanban_filter_fields if name in form.fields}
        for name, label in self.kanban_filter_labels.items():
            if name in form.fields:
                form.fields[name].label = label
        for field in form.fields.values():
            field.required = False
            if isinstance(field, forms.ChoiceField):
                field.empty_label = "Any"
                if not isinstance(field, forms.ModelChoiceField):
                    # django-filter's choice fields hand their widget a list made at creation.
                    field.widget.choices = list(field.choices)
        return form

    def kanban_filters(self, params: QueryDict) -> tuple[dict[str, Any], Any]:
        """The selector's filters (the board's filters and ``ordering``) and the bound form.

        A filter with a bad value is dropped and reported on the form rather than failing the page.
        """
        form = self.kanban_filter_form(params)
        form.is_valid()
        allowed = (*self.kanban_filter_fields, "ordering")
        filters = {
            name: params.get(name)
            for name in allowed
            if params.get(name) not in (None, "") and name not in form.errors
        }
        return filters, form

    def kanban_pipeline(self, params: QueryDict) -> Pipeline | None:
        value = params.get("pipeline", "")
        return Pipeline.objects.filter(pk=value).first() if value.isdigit() else None

    def changelist_params_to_filters(self, params: QueryDict) -> dict[str, str]:
        """The changelist's search and list filters as the board's query parameters."""
        names = {*self.kanban_filter_fields, "pipeline"}
        result = {}
        for key, value in params.items():
            name = CHANGELIST_PARAMS.get(key, key.removesuffix("__exact").removesuffix("__id"))
            if name in names and value:
                result[name] = value
        return result

    def changelist_view(self, request, extra_context=None):
        board_query = urlencode(self.changelist_params_to_filters(request.GET))
        board_url = self.kanban_url("board") + (f"?{board_query}" if board_query else "")
        extra_context = with_changelist_tool(extra_context, "Board view", board_url, "crm-board-link")
        extra_context["kanban_board_url"] = board_url
        return super().changelist_view(request, extra_context)

    # --- cards ---------------------------------------------------------------------------------------

    def kanban_make_cards(
        self, request, records: list, origin_stage_id: int | None = None
    ) -> list[KanbanCard]:
        next_activities = next_activity_by_record(
            user=request.user, model=self.model, ids=[record.pk for record in records]
        )
        cards = []
        for record in records:
            owner = record.owner
            cards.append(
                KanbanCard(
                    record=record,
                    url=reverse(
                        f"admin:{self.opts.app_label}_{self.opts.model_name}_change",
                        args=[record.pk],
                        current_app=self.admin_site.name,
                    ),
                    title=str(record),
                    subtitle=self.kanban_card_subtitle(record),
                    value=getattr(record, self.kanban_value_field),
                    owner=(owner.get_full_name() or owner.get_username()) if owner else "",
                    priority=record.priority,
                    priority_label=record.get_priority_display(),
                    status=record.status,
                    status_label=record.get_status_display(),
                    locked=record.is_closed,
                    next_activity=next_activities.get(record.pk),
                    origin_stage_id=origin_stage_id or record.stage_id,
                )
            )
        return cards

    def kanban_render_cards(self, request, cards: list[KanbanCard]) -> str:
        return render_to_string(
            "admin/crm/kanban/cards.html",
            {"cards": cards, "value_label": self.kanban_value_label},
            request=request,
        )

    # --- views ---------------------------------------------------------------------------------------

    def kanban_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        filters, form = self.kanban_filters(request.GET)
        pipeline = self.kanban_pipeline(request.GET)
        try:
            board = self.kanban_board(
                user=request.user, pipeline=pipeline, filters=filters, limit=self.kanban_page_size
            )
        except ValidationError as exc:
            # No default pipeline (a fresh install): say so instead of failing.
            self.message_user(request, " ".join(exc.messages), "error")
            board = None
        columns = []
        if board is not None:
            all_cards = self.kanban_make_cards(
                request, [record for column in board.columns for record in column.results]
            )
            by_pk = {card.record.pk: card for card in all_cards}
            for column in board.columns:
                columns.append(
                    {
                        "stage": column.stage,
                        "count": column.count,
                        "total": column.total,
                        "cards": [by_pk[record.pk] for record in column.results],
                        "has_more": column.count > len(column.results),
                    }
                )
        query = {**filters}
        if board is not None:
            query["pipeline"] = board.pipeline.pk
        query_string = urlencode(query)
        context = {
            **self.admin_site.each_context(request),
            "title": f"{self.opts.verbose_name_plural.capitalize()} board",
            "opts": self.opts,
            "board": board,
            "columns": columns,
            "filter_form": form,
            "filters": filters,
            "pipelines": Pipeline.objects.filter(is_active=True).order_by("sequence", "name", "pk"),
            "changelist_url": self.kanban_url("changelist"),
            "move_url": f"{self.kanban_url('board_move')}?{query_string}",
            "cards_url": f"{self.kanban_url('board_cards')}?{query_string}",
            "can_move": self.has_change_permission(request),
            "value_label": self.kanban_value_label,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/crm/kanban/board.html", context)

    def kanban_cards_view(self, request):
        """HTML cards of one column from ``offset``; the ``X-Has-More`` header says if more follow."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        stage_id = request.GET.get("stage", "")
        stage = Stage.objects.filter(pk=stage_id).first() if stage_id.isdigit() else None
        if stage is None:
            return HttpResponse("Unknown stage.", status=400, content_type="text/plain")
        offset = request.GET.get("offset") or "0"
        if not (offset.isascii() and offset.isdigit()):
            return HttpResponse(
                "The offset is how many cards the column already shows: a whole number, 0 or more.",
                status=400,
                content_type="text/plain",
            )
        offset = int(offset)
        filters, _form = self.kanban_filters(request.GET)
        records, has_more = self.kanban_cards(
            user=request.user, stage=stage, filters=filters, offset=offset, limit=self.kanban_page_size
        )
        html = self.kanban_render_cards(request, self.kanban_make_cards(request, records, stage.pk))
        response = HttpResponse(html)
        response["X-Has-More"] = "true" if has_more else "false"
        return response

    def kanban_move_view(self, request):
        """Move a record to a stage through the service; JSON with the fresh columns, or 400 and why."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        record_id, stage_id = request.POST.get("record", ""), request.POST.get("stage", "")
        if not (record_id.isdigit() and stage_id.isdigit()):
            return self.kanban_refusal("Say which card moves to which stage.")
        record = self.kanban_records(user=request.user).filter(pk=record_id).first()
        if record is None:
            return self.kanban_refusal("This record no longer exists.", status=404)
        if not self.has_change_permission(request, record):
            return self.kanban_refusal("You may not change this record.", status=403)
        stage = Stage.objects.select_related("pipeline").filter(pk=stage_id).first()
        if stage is None:
            return self.kanban_refusal("This stage no longer exists.")
        try:
            record = self.kanban_move(record=record, stage=stage, user=request.user)
        except ValidationError as exc:
            return self.kanban_refusal(" ".join(exc.messages))
        self.log_change(request, record, f"Moved to the stage “{record.stage.name}” on the board.")

        filters, _form = self.kanban_filters(request.GET)
        board = self.kanban_board(user=request.user, pipeline=record.pipeline, filters=filters, limit=0)
        card = self.kanban_make_cards(request, [record])[0]
        message = f"“{record}” moved to {record.stage.name}."
        if record.is_closed:
            message = (
                f"“{record}” moved to {record.stage.name}: it is now {record.get_status_display().lower()}."
            )
        return JsonResponse(
            {
                "ok": True,
                "message": message,
                "record": {"id": record.pk, "stage_id": record.stage_id, "status": record.status},
                "columns": [
                    {
                        "stage_id": column.stage.pk,
                        "count": column.count,
                        "total": str(column.total),
                        "total_display": money(column.total),
                    }
                    for column in board.columns
                ],
                "card_html": self.kanban_render_cards(request, [card]),
            }
        )

    def kanban_refusal(self, error: str, status: int = 400) -> JsonResponse:
        return JsonResponse({"ok": False, "error": error}, status=status)
