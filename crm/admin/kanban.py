"""Kanban boards in the admin: one mixin gives a ModelAdmin its board, a cards fragment and a move endpoint.

The board is a column per stage of one pipeline, built by the app's kanban selector (the same one as
``GET .../kanban``), with the FilterSet's filters as a small form. Dragging a card POSTs to the move
endpoint, which calls the app's move-stage service and answers the recomputed column figures and the
re-rendered card, or a 400 with the service's message. ``static/crm/kanban.js`` does the dragging.
"""

import dataclasses
import datetime
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib.admin.widgets import AutocompleteSelect
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Model, QuerySet
from django.http import HttpResponse, HttpResponseNotAllowed, JsonResponse, QueryDict
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.http import urlencode

from crm.admin.base import CRM_CHANGE_LIST_TEMPLATE, money, with_changelist_tool
from crm.admin.record import KeyFigure, apply_service_errors, money_figure
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
    tags: list = dataclasses.field(default_factory=list)
    rotting_days: int | None = None


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

    # The transition a drop on the won stage runs through its dialog (a lead converts, a deal is won);
    # a drop on the lost stage runs "mark_lost". Both are the record admin's registered transitions.
    kanban_won_transition = "mark_won"

    def kanban_create(self, *, user, data: dict):
        """Create a record from a column's quick-add form (the app's create service)."""
        raise NotImplementedError

    # --- URLs ----------------------------------------------------------------------------------------

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        wrap = self.admin_site.admin_view
        return [
            path("board/", wrap(self.kanban_view), name="{}_{}_board".format(*info)),
            path("board/cards/", wrap(self.kanban_cards_view), name="{}_{}_board_cards".format(*info)),
            path("board/move/", wrap(self.kanban_move_view), name="{}_{}_board_move".format(*info)),
            path("board/dialog/", wrap(self.kanban_dialog_view), name="{}_{}_board_dialog".format(*info)),
            path("board/add/", wrap(self.kanban_add_view), name="{}_{}_board_add".format(*info)),
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
        now = timezone.now()
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
                    tags=list(record.tags.all()),
                    rotting_days=self.kanban_rotting_days(record, now),
                )
            )
        return cards

    @staticmethod
    def kanban_rotting_days(record, now) -> int | None:
        """Days without a change for an open record past its stage's ``rotting_days``, else None."""
        limit = record.stage.rotting_days
        if limit is None or record.is_closed or record.updated_at is None:
            return None
        quiet = now - record.updated_at
        return quiet.days if quiet >= datetime.timedelta(days=limit) else None

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
                        "weighted": weighted(column),
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
            "can_add": self.has_add_permission(request),
            "value_label": self.kanban_value_label,
            "dialog_url": f"{self.kanban_url('board_dialog')}?{query_string}",
            "add_url": f"{self.kanban_url('board_add')}?{query_string}",
            "board_total": sum((column["total"] for column in columns), Decimal("0")),
            "board_weighted": sum((column["weighted"] for column in columns), Decimal("0")),
            "dialog_media": self.kanban_dialog_media(),
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
        message = f"“{record}” moved to {record.stage.name}."
        if record.is_closed:
            message = (
                f"“{record}” moved to {record.stage.name}: it is now {record.get_status_display().lower()}."
            )
        return self.kanban_moved_response(request, record, message)

    def kanban_moved_response(self, request, record, message: str) -> JsonResponse:
        """The answer to a card that moved (or was added): every column's figures and the card."""
        filters, _form = self.kanban_filters(request.GET)
        board = self.kanban_board(user=request.user, pipeline=record.pipeline, filters=filters, limit=0)
        card = self.kanban_make_cards(request, [record])[0]
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
                        "total_display": money(column.total, compact=True),
                        "weighted_display": money(weighted(column), compact=True),
                    }
                    for column in board.columns
                ],
                "card_html": self.kanban_render_cards(request, [card]),
            }
        )

    def kanban_refusal(self, error: str, status: int = 400) -> JsonResponse:
        return JsonResponse({"ok": False, "error": error}, status=status)

    def kanban_target(self, request) -> tuple[Any, Stage | None, JsonResponse | None]:
        """The card and the column a dialog is about (``card``, ``column`` in GET or POST: the forms it
        carries have fields of their own named record or stage), or a refusal."""
        params = request.POST if request.method == "POST" else request.GET
        record_id, stage_id = params.get("card", ""), params.get("column", "")
        if not (record_id.isascii() and record_id.isdigit() and stage_id.isascii() and stage_id.isdigit()):
            return None, None, self.kanban_refusal("Say which card moves to which stage.")
        record = self.kanban_records(user=request.user).filter(pk=record_id).first()
        if record is None:
            return None, None, self.kanban_refusal("This record no longer exists.", status=404)
        if not self.has_change_permission(request, record):
            return None, None, self.kanban_refusal("You may not change this record.", status=403)
        stage = Stage.objects.select_related("pipeline").filter(pk=stage_id).first()
        if stage is None:
            return None, None, self.kanban_refusal("This stage no longer exists.")
        return record, stage, None

    # --- the won and lost dialogs ------------------------------------------------------------------------

    def kanban_closing_transition(self, stage: Stage):
        """The registered transition a drop on ``stage`` runs through a dialog; None for an open stage."""
        if stage.is_won:
            name = self.kanban_won_transition
        elif stage.is_lost:
            name = "mark_lost"
        else:
            return None
        return next((known for known in self.get_transitions() if known.name == name), None)

    def kanban_dialog_media(self):
        """The scripts a dialog's form needs (the admin's autocomplete), loaded with the board."""
        return AutocompleteSelect(self.model._meta.get_field("owner"), self.admin_site).media

    def kanban_dialog_form(self, request, transition, record):
        if transition.make_form is None:
            return None
        data = request.POST if request.method == "POST" else None
        form = transition.make_form(data, record=record, admin_site=self.admin_site)
        if (
            transition.name == "mark_lost"
            and record.pipeline.lost_reason_required
            and "lost_reason" in form.fields
        ):
            form.fields["lost_reason"].required = True
            form.fields["lost_reason"].empty_label = "Choose a reason"
            form.fields["lost_reason"].help_text = f"The pipeline “{record.pipeline}” requires a reason."
        return form

    def kanban_dialog_view(self, request):
        """GET: the dialog a drop on a won or lost column opens (HTML). POST: run it; JSON like a move,
        or a 400 with the form and its errors (``form_html``) or the refusal (``error``)."""
        if request.method not in ("GET", "POST"):
            return HttpResponseNotAllowed(["GET", "POST"])
        record, stage, refusal = self.kanban_target(request)
        if refusal is not None:
            return refusal
        if stage.pipeline_id != record.pipeline_id:
            return self.kanban_refusal(f"The stage “{stage.name}” is not in this record's pipeline.")
        transition = self.kanban_closing_transition(stage)
        if transition is None:
            return self.kanban_refusal(f"“{stage.name}” is an open stage: drop the card there to move it.")
        if not transition.applies(record):
            return self.kanban_refusal(transition.refusal(record) or "This record is closed.", status=409)
        if not self.may_run(request, transition, record):
            return self.kanban_refusal("You may not do this to this record.", status=403)
        form = self.kanban_dialog_form(request, transition, record)
        if request.method == "POST" and (form is None or form.is_valid()):
            try:
                record = transition.run(record=record, user=request.user, **self._choices(form))
            except ValidationError as exc:
                if form is None:
                    return self.kanban_refusal(" ".join(exc.messages))
                apply_service_errors(form, exc, getattr(form, "service_fields", None))
            else:
                self.log_change(request, record, f"{transition.log_message(record)} (on the board)")
                return self.kanban_moved_response(request, record, transition.success_message(record))
        html = render_to_string(
            "admin/crm/kanban/dialog.html",
            {
                "form": form,
                "transition": transition,
                "title": transition.title(record) if transition.title else transition.label,
                "intro": transition.intro(record),
                "record": record,
                "stage": stage,
                "is_lost": stage.is_lost,
            },
            request=request,
        )
        if request.method == "POST":
            return JsonResponse({"ok": False, "error": "Check the form.", "form_html": html}, status=400)
        return HttpResponse(html)

    # --- the record page's header: stage stepper and key figures ---------------------------------------

    def get_stepper(self, request, obj) -> dict | None:
        """The pipeline's stages, the record's highlighted; clicking one moves the record through the
        board's endpoints (a won or lost stage opens the board's dialog)."""
        stages = list(obj.pipeline.stages.order_by("sequence", "id"))
        current = next((index for index, stage in enumerate(stages) if stage.pk == obj.stage_id), -1)
        return {
            "stages": [
                {
                    "stage": stage,
                    "state": "current" if index == current else ("done" if index < current else "todo"),
                    "closing": "won" if stage.is_won else ("lost" if stage.is_lost else ""),
                }
                for index, stage in enumerate(stages)
            ],
            "record_id": obj.pk,
            "locked": obj.is_closed or not self.has_change_permission(request, obj),
            "move_url": self.kanban_url("board_move"),
            "dialog_url": self.kanban_url("board_dialog"),
            "media": self.kanban_dialog_media(),
        }

    def get_key_figures(self, request, obj) -> list[KeyFigure]:
        figures = [
            money_figure(self.kanban_value_label.capitalize(), getattr(obj, self.kanban_value_field)),
            KeyFigure("Probability", f"{obj.probability}%" if obj.probability is not None else "—"),
        ]
        if hasattr(self, "automated_probability"):
            figures.append(KeyFigure("Automated probability", str(self.automated_probability(obj))))
        if hasattr(obj, "score"):
            figures.append(KeyFigure("Score", "—" if obj.score is None else str(obj.score)))
        owner = obj.owner
        figures.append(
            KeyFigure("Owner", (owner.get_full_name() or owner.get_username()) if owner else "Nobody")
        )
        upcoming = next_activity_by_record(user=request.user, model=self.model, ids=[obj.pk]).get(obj.pk)
        if upcoming is not None:
            when = f" · {timezone.localtime(upcoming.due_date):%d %b %H:%M}" if upcoming.due_date else ""
            figures.append(
                KeyFigure(
                    "Next activity",
                    f"{upcoming.get_activity_type_display()}: {upcoming.subject}{when}",
                    url=reverse("admin:activities_activity_change", args=[upcoming.pk]),
                    css_class="is-overdue" if upcoming.is_overdue else "",
                )
            )
        else:
            figures.append(KeyFigure("Next activity", "None planned", css_class="is-missing"))
        entered = obj.stage_changes.order_by("-changed_at").values_list("changed_at", flat=True).first()
        entered = entered or obj.created_at
        if entered is not None and not obj.is_closed:
            figures.append(KeyFigure("Days in stage", str((timezone.now() - entered).days)))
        return figures

    # --- quick add ---------------------------------------------------------------------------------------

    def kanban_add_view(self, request):
        """Create a card in a column: ``stage``, ``name`` and ``value``, through the create service."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_add_permission(request):
            return self.kanban_refusal("You may not add records here.", status=403)
        stage_id = request.POST.get("stage", "")
        stage = (
            Stage.objects.select_related("pipeline").filter(pk=stage_id).first()
            if stage_id.isascii() and stage_id.isdigit()
            else None
        )
        if stage is None:
            return self.kanban_refusal("Say which column the card goes in.")
        if stage.is_closed:
            return self.kanban_refusal(f"“{stage.name}” is a won or lost stage: add cards to an open stage.")
        form = QuickAddForm(request.POST)
        if not form.is_valid():
            return JsonResponse({"ok": False, "error": "Check the card.", "errors": form.errors}, status=400)
        data = {
            "name": form.cleaned_data["name"],
            "pipeline": stage.pipeline,
            "stage": stage,
            "owner": request.user,
        }
        if form.cleaned_data["value"] is not None:
            data[self.kanban_value_field] = form.cleaned_data["value"]
        try:
            record = self.kanban_create(user=request.user, data=data)
        except ValidationError as exc:
            errors = exc.message_dict if hasattr(exc, "error_dict") else {"__all__": exc.messages}
            return JsonResponse({"ok": False, "error": " ".join(exc.messages), "errors": errors}, status=400)
        self.log_addition(request, record, f"Added on the board in “{stage.name}”.")
        return self.kanban_moved_response(request, record, f"“{record}” added to {stage.name}.")


class QuickAddForm(forms.Form):
    name = forms.CharField(max_length=200)
    value = forms.DecimalField(max_digits=14, decimal_places=2, min_value=0, required=False)


def weighted(column) -> Decimal:
    """A column's total weighted by its stage's probability (as Pipedrive weighs a stage)."""
    return (column.total * column.stage.probability / 100).quantize(Decimal("0.01"))
