"""What every resource viewset shares: model permissions, schema helpers and the service-backed base."""

import hashlib
from collections import defaultdict
from collections.abc import Callable
from functools import partial
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.db.models import Model, Q, QuerySet
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, PermissionDenied
from rest_framework.permissions import SAFE_METHODS, BasePermission, DjangoModelPermissions
from rest_framework.response import Response

from crm import services
from crm.api import schema
from crm.api.listing import list_narrowing
from crm.events.registry import record_read, represented, represented_read
from crm.selectors import record_visible_as_held, rollup_count

# --- permissions ----------------------------------------------------------------------------------

VIEW = "%(app_label)s.view_%(model_name)s"
CHANGE = "%(app_label)s.change_%(model_name)s"


class ModelPermissions(DjangoModelPermissions):
    """Django's model permissions, reads included: GET needs view_<model>, POST add, PUT/PATCH change."""

    perms_map = {
        "GET": [VIEW],
        "OPTIONS": [VIEW],
        "HEAD": [VIEW],
        "POST": ["%(app_label)s.add_%(model_name)s"],
        "PUT": [CHANGE],
        "PATCH": [CHANGE],
        "DELETE": ["%(app_label)s.delete_%(model_name)s"],
    }

    def _queryset(self, view):
        # DRF builds the view's whole queryset (the selector: visibility, joins, annotations) only to
        # read its model; a resource viewset names it (tests/api: its serializer's model is the
        # selector's, for every resource).
        model = served_model(view)
        if model is not None:
            return model._default_manager.none()
        return super()._queryset(view)


def served_model(view) -> type[Model] | None:
    """The model a ServiceModelViewSet serves (its serializer's), None for any other view."""
    if not isinstance(view, ServiceModelViewSet):
        return None
    meta = getattr(view.serializer_class, "Meta", None)
    return getattr(meta, "model", None)


class ImportPermissions(ModelPermissions):
    """A bulk import creates and updates records: it needs add_<model> and change_<model>."""

    perms_map = {**ModelPermissions.perms_map, "POST": ["%(app_label)s.add_%(model_name)s", CHANGE]}


class TransitionPermissions(ModelPermissions):
    """For POST actions that change a record's state (move, win, lose, convert): change_<model>."""

    perms_map = {**ModelPermissions.perms_map, "POST": [CHANGE]}


def requires(*perms: str) -> type[BasePermission]:
    """A permission class that needs all of ``perms`` ("sales.add_opportunity") besides the model's."""

    class Requires(BasePermission):
        def has_permission(self, request, view):
            return bool(request.user and request.user.is_authenticated and request.user.has_perms(perms))

    Requires.__name__ = f"Requires({', '.join(perms)})"
    return Requires


# --- schema helpers -------------------------------------------------------------------------------


class ConflictSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="What conflicts, in words a person can act on.")
    code = serializers.CharField(help_text="closed, protected, default_pipeline, no_won_stage or conflict.")


class DetailSerializer(serializers.Serializer):
    detail = serializers.CharField()


BAD_REQUEST = OpenApiResponse(
    response=schema.ref("ValidationError"),
    description="Bad input: {field: [messages]}; messages about no single field under non_field_errors.",
)
NOT_FOUND = OpenApiResponse(response=DetailSerializer, description="No such record.")
PRECONDITION_FAILED = OpenApiResponse(
    response=DetailSerializer,
    description="The record changed since the version named in If-Match: read it again (its ETag) first.",
)
IF_MATCH = OpenApiParameter(
    "If-Match",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    description="The ETag of the version this change is based on; a stale one answers 412. Optional.",
)
CONFLICT = OpenApiResponse(
    response=ConflictSerializer,
    description="The record's state forbids it: closed (converted, won or lost), still in use, the default "
    "pipeline, or a pipeline without a won stage.",
)


class ObjectSchema(AutoSchema):
    """The schema of a ``list`` route that answers one object (the dashboard), not a list of them."""

    def _is_list_view(self, serializer=None) -> bool:
        return False


def crud_schema(noun: str, serializer_class: type[serializers.Serializer]) -> dict[str, Any]:
    """extend_schema_view() arguments documenting a resource's list/create/retrieve/update/delete."""
    plural = f"{noun[:-1]}ies" if noun.endswith("y") else f"{noun}s"
    article = "an" if noun[0] in "aeiou" else "a"
    write = {200: serializer_class, 400: BAD_REQUEST, 404: NOT_FOUND, 409: CONFLICT, 412: PRECONDITION_FAILED}
    return {
        "list": extend_schema(summary=f"List {plural}"),
        "create": extend_schema(
            summary=f"Create {article} {noun}", responses={201: serializer_class, 400: BAD_REQUEST}
        ),
        "retrieve": extend_schema(
            summary=f"Get {article} {noun}",
            description="The response's ETag names this version; send it as If-Match when changing it.",
            responses={200: serializer_class, 404: NOT_FOUND},
        ),
        "update": extend_schema(summary=f"Replace {article} {noun}", parameters=[IF_MATCH], responses=write),
        "partial_update": extend_schema(
            summary=f"Update some fields of {article} {noun}", parameters=[IF_MATCH], responses=write
        ),
        "destroy": extend_schema(
            summary=f"Delete {article} {noun}",
            description="409 when other records still use it (the message names them).",
            parameters=[IF_MATCH],
            responses={204: None, 404: NOT_FOUND, 409: CONFLICT, 412: PRECONDITION_FAILED},
        ),
    }


# --- versions: ETag and If-Match --------------------------------------------------------------------


def record_etag(instance: Model, version: str | None = None) -> str:
    """A strong ETag for one version of a record (crm.services.record_version, the admin's too)."""
    version = services.record_version(instance) if version is None else version
    digest = hashlib.sha256(f"{instance._meta.label}:{instance.pk}:{version}".encode()).hexdigest()[:32]
    return f'"{digest}"'


class PreconditionFailed(APIException):
    status_code = status.HTTP_412_PRECONDITION_FAILED
    default_detail = (
        "This record was changed by someone else since you read it; read it again and redo your change."
    )
    default_code = "precondition_failed"


def _if_match_tags(header: str) -> list[str]:
    return [tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()]


# --- actions other apps contribute -----------------------------------------------------------------
# A route on a crm resource whose rules belong to another app (sales converts a lead into an
# opportunity) is registered by that app, so crm never imports it; the URL and the OpenAPI docs are
# the same as if the viewset declared it.

_registered_actions: dict[str, dict[str, tuple[Callable, type | None]]] = defaultdict(dict)
_labelled_viewsets: dict[str, list[type]] = defaultdict(list)


def register_viewset_action(
    model_label: str, function: Callable, *, input_serializer: type[serializers.Serializer] | None = None
) -> None:
    """Add ``function`` (decorated with DRF's ``@action``, and ``@extend_schema`` for its docs) to the API
    viewset of ``model_label`` ("crm.lead") under the function's name; ``input_serializer`` checks its
    body (OPTIONS describes it, errors name its fields). Call it from the app's ``AppConfig.ready``:
    the router reads a viewset's actions when the URLs are first loaded."""
    if not hasattr(function, "mapping"):
        raise ImproperlyConfigured(f"{function!r} is not a DRF @action: it cannot be routed.")
    _registered_actions[model_label][function.__name__] = (function, input_serializer)
    for viewset in _labelled_viewsets[model_label]:
        _attach_action(viewset, function.__name__, function, input_serializer)


def registered_viewset_actions(model_label: str) -> dict[str, Callable]:
    return {name: function for name, (function, _) in _registered_actions[model_label].items()}


def _attach_action(viewset: type, name: str, function: Callable, input_serializer: type | None) -> None:
    declared = viewset.__dict__.get(name)
    if declared is not None and declared is not function:
        raise ImproperlyConfigured(f"{viewset.__name__} already has an attribute {name!r}.")
    setattr(viewset, name, function)
    if input_serializer is not None:
        viewset.action_serializers = {**viewset.action_serializers, name: input_serializer}


# --- a write's answer -----------------------------------------------------------------------------


def represented_for(
    user, record: Model, selector: Callable, serializer_class: type, *, seen: bool = False
) -> dict[str, Any] | None:
    """``record``, just written by a service and returned by it, as ``serializer_class`` represents it
    read through ``selector`` for ``user``, built as its events are (crm.events.registry.represented:
    statements compiled once instead of the selector's queryset built and compiled again); None unless
    the selector's columns are the same for every reader (``same_for_every_reader``: the events'
    are the system's), the user sees the record as held (``seen``: the request read it through the
    selector, with the same owner, before writing it), and its event source represents it with that
    selector and serializer."""
    if not getattr(selector, "same_for_every_reader", False):
        return None
    if not seen and record_visible_as_held(user=user, record=record) is not True:
        return None
    return represented(record, selector=selector, serializer_class=serializer_class)


def record_answer(
    view, record: Model, *, selector: Callable, serializer_class: type, seen: bool = False
) -> Any:
    """What ``GET`` of ``record`` answers (``selector`` and ``serializer_class``: its resource's), right
    after a service wrote and returned it: ``represented_for``, else read again through ``selector``."""
    user = view.request.user
    data = represented_for(user, record, selector, serializer_class, seen=seen)
    if data is None:
        reread = selector(user=user).get(pk=record.pk)
        data = serializer_class(reread, context=view.get_serializer_context()).data
    return data


def _held_as(instance: Model) -> tuple:
    return (type(instance), instance.pk, getattr(instance, "owner_id", None))


# --- the base viewset -----------------------------------------------------------------------------


class ServiceModelViewSet(viewsets.ModelViewSet):
    """A resource read through a selector and written through services.

    Subclasses set ``selector`` (``lambda *, user, filters=None: QuerySet``), ``serializer_class``,
    ``filterset_class`` and implement ``create_record`` / ``update_record`` (and ``delete_record``
    when deleting has rules) by calling their app's services. Serializers check types only; the
    services check the business rules. Responses re-read the record through the selector so a
    write answers with exactly what a read would.
    """

    permission_classes = [ModelPermissions]
    selector: Callable[..., QuerySet]
    # For records everyone reads but only some may change (accounts, contacts): ``(user) -> QuerySet``
    # of the records ``user`` may write; a write to any other is refused with 403.
    editable_selector: Callable[..., QuerySet] | None = None
    action_serializers: dict[str, type[serializers.BaseSerializer]] = {}
    # "app_label.model" of the records served, for the actions other apps register on them
    # (register_viewset_action).
    record_label: str | None = None
    # A crm.api.listing.ListRows class: the list action reads its page as rows of the columns shown
    # instead of serializing model instances (the same JSON as serializer_class, faster).
    list_rows: type | None = None
    # A rollup of the records (``n`` per owner, crm.rollups) that counts an unfiltered list page.
    list_rollup: type[Model] | None = None
    # The filters the rollup's rows answer too (query parameter → rollup column, such as status →
    # status): a list narrowed by these alone is counted from the rollup as well.
    list_rollup_filters: dict[str, str] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        label = cls.__dict__.get("record_label")
        if label:
            _labelled_viewsets[label].append(cls)
            for name, (function, input_serializer) in _registered_actions[label].items():
                _attach_action(cls, name, function, input_serializer)

    def get_queryset(self) -> QuerySet:
        return type(self).selector(user=self.request.user)

    def get_object(self):
        instance = super().get_object()
        editable = type(self).editable_selector
        if (
            editable is not None
            and self.request.method not in SAFE_METHODS
            and not editable(self.request.user).filter(pk=instance.pk).exists()
        ):
            raise PermissionDenied("Only the owner's team may change this record.")
        self._read_as = _held_as(instance)
        return instance

    def _seen(self, instance: Model) -> bool:
        """Whether this request read ``instance`` through the selector (get_object), with the owner it
        has now: the user sees it, by the same rule, without asking again."""
        return getattr(self, "_read_as", None) == _held_as(instance)

    def check_if_match(self, instance: Model) -> None:
        """412 unless If-Match (when sent) names the stored version of ``instance``. Call inside the
        write's transaction: the row is locked first, so no one can change it between check and write."""
        header = self.request.headers.get("If-Match")
        if not header:
            return
        current = services.record_stored_version(instance)
        tags = _if_match_tags(header)
        if current is None or ("*" not in tags and record_etag(instance, current) not in tags):
            raise PreconditionFailed

    def list(self, request, *args, **kwargs):
        list_rows = type(self).list_rows
        if list_rows is None:
            return super().list(request, *args, **kwargs)
        builder = list_rows(self.get_serializer_context())
        rollup, counted = type(self).list_rollup, None
        if rollup is not None:
            # Reached once the filters have accepted the parameters (a bad value is a 400 first).
            narrowing, columns = list_narrowing(request.query_params), type(self).list_rollup_filters
            if narrowing.keys() <= columns.keys():
                model = builder.serializer_class.Meta.model
                where = {columns[name]: value for name, value in narrowing.items()}
                counted = partial(rollup_count, rollup, model=model, user=request.user, where=where)
        queryset = builder.queryset(self.filter_queryset(self.get_queryset()), counted)
        page = self.paginate_queryset(queryset)
        if page is None:
            return Response(builder.rows(list(queryset.rows)))
        return self.get_paginated_response(builder.rows(page))

    def retrieve(self, request, *args, **kwargs):
        instance = self._read_as_held()
        data = None
        if instance is not None:
            # Read as the events read it: represented by the serializer they keep built.
            data = represented_read(
                instance, selector=type(self).selector, serializer_class=self.get_serializer_class()
            )
        else:
            instance = self.get_object()
        if data is None:
            data = self.get_serializer(instance).data
        response = Response(data)
        response["ETag"] = record_etag(instance)
        return response

    def _read_as_held(self) -> Model | None:
        """A GET's record read by statements compiled once (crm.events.registry.record_read), where the
        selector's columns are the same for every reader (``same_for_every_reader``) and the user sees
        the record as held (``record_visible_as_held``); else None, and get_object reads it (the 404 of
        a record the user does not see among them)."""
        selector = type(self).selector
        if not getattr(selector, "same_for_every_reader", False) or self.request.query_params:
            return None
        try:
            pk = int(self.kwargs[self.lookup_url_kwarg or self.lookup_field])
        except (KeyError, TypeError, ValueError):
            return None
        record = record_read(served_model(self), selector, pk)
        if record is None or record_visible_as_held(user=self.request.user, record=record) is not True:
            return None
        self.check_object_permissions(self.request, record)
        return record

    def update(self, request, *args, **kwargs):
        with transaction.atomic():
            self.check_if_match(self.get_object())
            response = super().update(request, *args, **kwargs)
        instance = getattr(self, "_updated", None)
        if instance is not None:
            response["ETag"] = record_etag(instance)
        return response

    def destroy(self, request, *args, **kwargs):
        with transaction.atomic():
            self.check_if_match(self.get_object())
            return super().destroy(request, *args, **kwargs)

    def get_serializer_class(self):
        action = self.action
        if action == "metadata":
            # OPTIONS describes each method of this route with the serializer of its real action.
            action = self.action_map.get(self.request.method.lower(), action)
        return self.action_serializers.get(action) or super().get_serializer_class()

    def create_record(self, data: dict[str, Any]) -> Model:
        raise NotImplementedError

    def update_record(self, instance: Model, data: dict[str, Any]) -> Model:
        raise NotImplementedError

    def delete_record(self, instance: Model) -> None:
        services.record_delete(instance=instance, user=self.request.user)

    def perform_create(self, serializer):
        self._answer_with(serializer, self.create_record(dict(serializer.validated_data)))

    def perform_update(self, serializer):
        self._answer_with(
            serializer, self.update_record(serializer.instance, dict(serializer.validated_data))
        )
        self._updated = serializer.instance

    def perform_destroy(self, instance):
        self._deleting = instance
        self.delete_record(instance)

    def _answer_with(self, serializer, instance: Model) -> None:
        # DRF answers serializer.data: where the record can be represented as held, that is the answer.
        answer = None
        if type(serializer) is self.serializer_class:
            answer = represented_for(
                self.request.user,
                instance,
                type(self).selector,
                self.serializer_class,
                seen=self._seen(instance),
            )
        if answer is None:
            serializer.instance = self.reread(instance)
        else:
            serializer.instance, serializer._data = instance, answer

    def reread(self, instance: Model) -> Model:
        return self.get_queryset().get(pk=instance.pk)

    def answer(self, instance: Model) -> Any:
        """``instance`` as its GET answers it, right after a service wrote and returned it."""
        return record_answer(
            self,
            instance,
            selector=type(self).selector,
            serializer_class=self.serializer_class,
            seen=self._seen(instance),
        )

    def validated_input(self, serializer_class: type[serializers.Serializer], data=None) -> dict[str, Any]:
        """An action's body (or ``data``) checked by its input serializer; errors raise 400."""
        serializer = serializer_class(
            data=self.request.data if data is None else data, context=self.get_serializer_context()
        )
        serializer.is_valid(raise_exception=True)
        return dict(serializer.validated_data)

    def record_response(self, instance: Model, status_code: int = status.HTTP_200_OK) -> Response:
        return Response(self.answer(instance), status=status_code)


# --- the audit trail ------------------------------------------------------------------------------

HISTORY_TYPES = {"+": "created", "~": "changed", "-": "deleted"}
UNTRACKED = {"updated_at"}  # changes on every save: noise in a list of what changed


class HistoryChangeSerializer(serializers.Serializer):
    field = serializers.CharField(help_text="The API field name (`stage_id`).")
    old = serializers.CharField(allow_null=True, help_text="The value before, as text; null when empty.")
    new = serializers.CharField(allow_null=True, help_text="The value after, as text; null when empty.")


class HistoryEntrySerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="The version's id.")
    date = serializers.DateTimeField()
    type = serializers.ChoiceField(choices=sorted(HISTORY_TYPES.values()))
    user_id = serializers.IntegerField(allow_null=True, help_text="Who made the change; null for the system.")
    username = serializers.CharField(allow_null=True)
    reason = serializers.CharField(allow_null=True, help_text="Why, when known (an import says so).")
    changes = HistoryChangeSerializer(many=True)


class HistoryPageSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = HistoryEntrySerializer(many=True)


def _as_text(value) -> str | None:
    if value is None or value == "":
        return None
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def history_entry(version, previous) -> dict[str, Any]:
    """One version of a record as the API shows it: who, when, what kind, and each field old → new."""
    # The model's fields that its history keeps (it leaves out derived ones such as a lead's score).
    kept = {f.attname for f in type(version)._meta.concrete_fields}
    fields = [
        f
        for f in version.instance_type._meta.concrete_fields
        if f.attname not in UNTRACKED and f.attname in kept
    ]
    changes = []
    if version.history_type != "-":
        for field in fields:
            new = getattr(version, field.attname)
            old = getattr(previous, field.attname) if previous is not None else None
            if old != new:
                name = field.attname if field.attname != "id" else "id"
                changes.append({"field": name, "old": _as_text(old), "new": _as_text(new)})
    user = version.history_user
    return {
        "id": version.history_id,
        "date": version.history_date,
        "type": HISTORY_TYPES[version.history_type],
        "user_id": user.pk if user else None,
        "username": user.get_username() if user else None,
        "reason": version.history_change_reason,
        "changes": changes,
    }


class HistoryViewSetMixin:
    """``GET {resource}/{id}/history/``: the record's versions, newest first, paginated."""

    @extend_schema(
        summary="History of a record",
        description="Every create and change of the record (through the admin, the API, imports and bulk "
        "actions), newest first: when, who, what kind and each changed field's old and new value.",
        responses={200: HistoryPageSerializer, 404: NOT_FOUND},
        filters=False,
    )
    @action(detail=True, methods=["get"], filter_backends=[])
    def history(self, request, pk=None):
        record = self.get_object()
        versions = record.history.select_related("history_user").order_by("-history_date", "-history_id")
        items = list(self.paginate_queryset(versions))
        older = None
        if items:
            last = items[-1]
            older = versions.filter(
                Q(history_date__lt=last.history_date)
                | Q(history_date=last.history_date, history_id__lt=last.history_id)
            ).first()
        entries = [
            history_entry(version, items[index + 1] if index + 1 < len(items) else older)
            for index, version in enumerate(items)
        ]
        return self.get_paginated_response(HistoryEntrySerializer(entries, many=True).data)
