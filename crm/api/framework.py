"""The REST API's plumbing the apps share: the router class, pagination and the exception handler.

Apps register their viewsets in ``<app>/api/urls.py``; ``crm_project.api.build_router()`` gathers them
under one router mounted at /api/v1/crm/. The base viewset and permissions are in crm.api.viewsets: DRF
imports this module (named in REST_FRAMEWORK settings) while its own generic views are loading, so
this module must not import them.
"""

import base64
import binascii
import datetime
import json
import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError
from django.db.models import ProtectedError, Q, RestrictedError
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework import exceptions, serializers, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.routers import DefaultRouter
from rest_framework.settings import api_settings
from rest_framework.utils.urls import replace_query_param
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

from crm import services
from crm.filters import SearchFilterSet
from crm.selectors import record_visible_keyed, record_visible_listed

logger = logging.getLogger(__name__)


# --- routing --------------------------------------------------------------------------------------


class ApiRouter(DefaultRouter):
    """A DefaultRouter whose URLs answer with or without the trailing slash.

    The spec writes both ``leads/kanban`` and ``dashboard/``; a POST to ``leads/1/move-stage`` must
    not be redirected (a redirect drops the body), so both spellings route to the view.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.trailing_slash = "/?"


# --- pagination -----------------------------------------------------------------------------------


def _positive_int_param(request, name: str) -> None:
    value = request.query_params.get(name)
    if value is None:
        return
    try:
        valid = int(value) > 0
    except ValueError:  # str.isdigit() would let "²" through to int()
        valid = False
    if not valid:
        raise exceptions.ValidationError(
            {name: [f"“{value}” is not a page {name.split('_')[-1]}: use 1 or more."]}
        )


# Query parameters that only page a list (``ordering`` is a filter of each FilterSet).
PAGING_PARAMS = frozenset({"page", "page_size", "cursor", "format"})


class FilterBackend(DjangoFilterBackend):
    """django-filter's backend, skipped for a list asked for no more than a page: a FilterSet given no
    filter leaves the queryset as it is, after building its 30 filters and a form (a millisecond of a
    20 ms cursor page)."""

    filtering = False  # building the FilterSet to filter with, not to show its form

    def filter_queryset(self, request, queryset, view):
        if PAGING_PARAMS.issuperset(request.query_params):
            return queryset
        self.filtering = True
        return super().filter_queryset(request, queryset, view)

    def get_filterset_kwargs(self, request, queryset, view):
        kwargs = super().get_filterset_kwargs(request, queryset, view)
        if issubclass(self.get_filterset_class(view, queryset), SearchFilterSet):
            if request.query_params.get("search"):
                kwargs["search_scope"] = record_visible_listed(queryset.model, request.user)
                kwargs["search_keyed_scope"] = record_visible_keyed(queryset.model, request.user)
                # A list paged by number is counted; by cursor (or an export, a board), it is not.
                numbered = isinstance(getattr(view, "paginator", None), ApiPagination)
                numbered = numbered and getattr(view, "action", None) == "list"
                kwargs["search_counted"] = (
                    numbered and ApiPagination.cursor_query_param not in request.query_params
                )
            # Only the filters the request names are built (SearchFilterSet's only_given).
            kwargs["only_given"] = self.filtering
        return kwargs


class ApiPagination(PageNumberPagination):
    """``?page=`` and ``?page_size=`` (default 25, capped at 200); a malformed value is a 400.

    A resource list also pages by cursor (``?cursor=``, see CursorPage): deep pages cost the same as
    the first, and no COUNT(*) of the matching rows is made.
    """

    page_size = 25
    page_size_query_param = "page_size"
    max_page_size = 200
    cursor_query_param = "cursor"

    def paginate_queryset(self, queryset, request, view=None):
        _positive_int_param(request, self.page_size_query_param)
        self.cursor_page = None
        if self.cursor_query_param in request.query_params:
            if getattr(view, "action", None) != "list":
                raise exceptions.ValidationError(
                    {self.cursor_query_param: ["Only the lists of records page by cursor: use ?page= here."]}
                )
            if self.page_query_param in request.query_params:
                raise exceptions.ValidationError(
                    {self.cursor_query_param: ["Page by ?cursor= or by ?page=, not both."]}
                )
            self.request = request
            self.cursor_page = CursorPage(
                queryset, request, self.cursor_query_param, self.get_page_size(request)
            )
            return self.cursor_page.records
        if request.query_params.get(self.page_query_param) not in self.last_page_strings:
            _positive_int_param(request, self.page_query_param)
        return super().paginate_queryset(queryset, request, view)

    def get_paginated_response(self, data):
        if self.cursor_page is None:
            return super().get_paginated_response(data)
        return Response(
            {
                "next": self.cursor_page.link(self.request, "next"),
                "previous": self.cursor_page.link(self.request, "previous"),
                "results": data,
            }
        )

    def get_paginated_response_schema(self, schema):
        paginated = super().get_paginated_response_schema(schema)
        paginated["required"] = ["next", "previous", "results"]
        paginated["properties"]["count"]["description"] = (
            "How many records match. Absent when paging by cursor."
        )
        return paginated

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        if getattr(view, "action", None) == "list":
            parameters.append(
                {
                    "name": self.cursor_query_param,
                    "required": False,
                    "in": "query",
                    "description": CURSOR_HELP,
                    "schema": {"type": "string"},
                }
            )
        return parameters


CURSOR_HELP = (
    "Page by cursor instead of page number: send `cursor` empty for the first page, then follow the "
    "`next` and `previous` links (their cursors are opaque). Every page costs the same however deep, "
    "and the response has no `count`. Records come newest first (`-created_at`, then `-id`); "
    "`ordering` may be `-created_at` or `created_at`, any other value is a 400. `page_size` applies; "
    "`page` may not be combined with it. A malformed cursor is a 400."
)


class CursorPage:
    """One page of a list by keyset: the records after (or, going back, before) a position in the
    order (created_at, id), read with ``created_at <= x AND (created_at < x OR id < y)`` so the
    created_at index starts at the position instead of skipping the pages before it.

    The cursor is base64 of JSON: the position (created_at, id), whether it reads backwards, and the
    ordering it was made for.
    """

    ORDERINGS = ("-created_at", "created_at")

    def __init__(self, queryset, request, param: str, page_size: int):
        self.param = param
        ordering = request.query_params.get("ordering") or "-created_at"
        if ordering not in self.ORDERINGS:
            raise exceptions.ValidationError(
                {"ordering": ["Paging by cursor orders by -created_at (the default) or created_at only."]}
            )
        self.ordering = ordering
        self.descending = ordering.startswith("-")
        position, backwards = self._decode(request.query_params.get(param, ""))
        # Reading backwards walks the order the other way from the position, then flips the page.
        descending = self.descending != backwards
        sign = "-" if descending else ""
        queryset = queryset.order_by(f"{sign}created_at", f"{sign}pk")
        if position is not None:
            created_at, pk = position
            if descending:
                after = Q(created_at__lte=created_at) & (Q(created_at__lt=created_at) | Q(pk__lt=pk))
            else:
                after = Q(created_at__gte=created_at) & (Q(created_at__gt=created_at) | Q(pk__gt=pk))
            queryset = queryset.filter(after)
        records = list(queryset[: page_size + 1])
        more = len(records) > page_size
        records = records[:page_size]
        if backwards:
            records.reverse()
        self.records = records
        # Going forward there is a previous page whenever we started from a position; going back,
        # there is a next page (the one we came from) and a previous one when more rows remained.
        self.has_next = more if not backwards else True
        self.has_previous = (position is not None) if not backwards else more

    def _decode(self, token: str):
        if not token:
            return None, False
        try:
            data = json.loads(base64.urlsafe_b64decode(token.encode("ascii") + b"=" * (-len(token) % 4)))
            created_at = datetime.datetime.fromisoformat(data["c"])
            pk = int(data["i"])
            backwards = bool(data["b"])
            ordering = data["o"]
            if created_at.tzinfo is None and settings.USE_TZ:
                raise ValueError("naive datetime")
        except (ValueError, TypeError, KeyError, UnicodeError, binascii.Error, RecursionError):
            raise exceptions.ValidationError(
                {self.param: ["This cursor is not valid: follow the next or previous link of a page."]}
            ) from None
        if ordering != self.ordering:
            raise exceptions.ValidationError(
                {self.param: ["This cursor was made for another ordering: start again with cursor empty."]}
            )
        return (created_at, pk), backwards

    def _encode(self, record, backwards: bool) -> str:
        # A record, or a row of the list's columns (crm.api.listing).
        created_at, pk = (
            (record["created_at"], record["id"])
            if isinstance(record, dict)
            else (record.created_at, record.pk)
        )
        data = {"c": created_at.isoformat(), "i": pk, "b": backwards, "o": self.ordering}
        raw = json.dumps(data, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")

    def link(self, request, direction: str) -> str | None:
        if direction == "next":
            if not (self.has_next and self.records):
                return None
            token = self._encode(self.records[-1], backwards=False)
        else:
            if not (self.has_previous and self.records):
                return None
            token = self._encode(self.records[0], backwards=True)
        return replace_query_param(request.build_absolute_uri(), self.param, token)


# --- errors ---------------------------------------------------------------------------------------


def _api_field_names(view) -> dict[str, str]:
    """Model field name → API field name (``stage`` → ``stage_id``) from the view's serializers."""
    mapping: dict[str, str] = {}
    names: set[str] = set()
    classes = [getattr(view, "serializer_class", None)]
    if hasattr(view, "get_serializer_class") and classes[0] is not None:
        classes.insert(0, view.get_serializer_class())
    for serializer_class in classes:
        if not (
            isinstance(serializer_class, type) and issubclass(serializer_class, serializers.BaseSerializer)
        ):
            continue
        for name, field in serializer_class().fields.items():
            names.add(name)
            if field.source and field.source != "*" and "." not in field.source:
                mapping.setdefault(field.source, name)
    return {**{f"{name[:-3]}": name for name in names if name.endswith("_id")}, **mapping}


def validation_error_detail(exc: DjangoValidationError, view=None) -> dict[str, list[str]]:
    """A Django ValidationError as DRF's 400 body: {api_field: [messages]}, non-field ones apart."""
    errors = exc.message_dict if hasattr(exc, "error_dict") else {NON_FIELD_ERRORS: exc.messages}
    names = _api_field_names(view) if view is not None else {}
    detail: dict[str, list[str]] = {}
    for key, messages in errors.items():
        api_key = api_settings.NON_FIELD_ERRORS_KEY if key == NON_FIELD_ERRORS else names.get(key, key)
        detail.setdefault(api_key, []).extend(messages)
    return detail


def _conflict_code(exc: DjangoValidationError) -> str | None:
    if hasattr(exc, "error_dict"):
        return None
    return next((error.code for error in exc.error_list if error.code in services.CONFLICT_CODES), None)


def conflict(detail: str, code: str) -> Response:
    return Response({"detail": detail, "code": code}, status=status.HTTP_409_CONFLICT)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, plus: Django ValidationError → 400 per field, or 409 for state conflicts;
    a delete blocked by records that use the target → 409 naming them; a lost race → 409."""
    view = context.get("view")
    if isinstance(exc, DjangoValidationError):
        set_rollback()
        code = _conflict_code(exc)
        if code is not None:
            return conflict(" ".join(exc.messages), code)
        return Response(validation_error_detail(exc, view), status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, ProtectedError | RestrictedError):
        set_rollback()
        instance = getattr(view, "_deleting", None)
        return conflict(services.protected_message(instance, exc.args[1]), services.PROTECTED)
    if isinstance(exc, IntegrityError):
        set_rollback()
        logger.warning("integrity error answered with 409: %s", exc)
        return conflict(
            "The change conflicts with the current data (another request may have changed it at the same "
            "time). Reload the record and try again.",
            "conflict",
        )
    return drf_exception_handler(exc, context)
