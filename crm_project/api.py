"""The REST API's project-wide plumbing: the router, pagination and the exception handler.

Apps register their viewsets in ``<app>/api/urls.py``; ``build_router()`` gathers them under one
router mounted at /api/v1/crm/. The base viewset and permissions are in crm_project.viewsets: DRF
imports this module (named in REST_FRAMEWORK settings) while its own generic views are loading, so
this module must not import them.
"""

import logging
from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError
from django.db.models import ProtectedError, RestrictedError
from rest_framework import exceptions, serializers, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.routers import DefaultRouter
from rest_framework.settings import api_settings
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

from crm import services

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


def build_router() -> ApiRouter:
    # Imported here: the apps' views import this module for the base classes below.
    from activities.api.urls import router as activities_router
    from crm.api.urls import router as crm_router
    from sales.api.urls import router as sales_router

    router = ApiRouter()
    for app_router in (crm_router, sales_router, activities_router):
        router.registry.extend(app_router.registry)
    return router


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


class ApiPagination(PageNumberPagination):
    """``?page=`` and ``?page_size=`` (default 25, capped at 200); a malformed value is a 400."""

    page_size = 25
    page_size_query_param = "page_size"
    max_page_size = 200

    def paginate_queryset(self, queryset, request, view=None):
        if request.query_params.get(self.page_query_param) not in self.last_page_strings:
            _positive_int_param(request, self.page_query_param)
        _positive_int_param(request, self.page_size_query_param)
        return super().paginate_queryset(queryset, request, view)


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
