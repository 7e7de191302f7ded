"""``GET .../{id}/duplicates/`` for leads, contacts and accounts, and the duplicates a create reports."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from crm.api.viewsets import NOT_FOUND
from crm.duplicates import find_duplicates, rule_fields
from crm.selectors import record_visible_listed

LIKELY_DUPLICATES_HEADER = "X-Likely-Duplicates"


class DuplicateMatchSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="record.pk")
    label = serializers.CharField(source="record")
    reasons = serializers.ListField(
        child=serializers.CharField(),
        help_text="Why it matched: same email, same company domain (…), same phone, same company name, "
        "similar name (…%).",
    )
    similarity = serializers.FloatField(help_text="Name similarity 0–1, 0 when the name did not match.")


class DuplicatesSerializer(serializers.Serializer):
    results = DuplicateMatchSerializer(many=True, help_text="Best first.")


class DuplicatesViewSetMixin:
    """Adds the duplicates action, and a header on create naming the likely duplicates found.

    The viewset sets ``duplicates_scope`` (``lambda user: QuerySet``), the records a user may see.
    """

    duplicates_scope = None

    def _duplicates_of(self, record, *, ids_only: bool = False):
        model, user = type(record), self.request.user
        # The visibility rule with the owners the user sees listed, where it is a matter of owners: each
        # rule's query repeats it, and as a list it compiles and plans in a fraction of the subqueries'
        # time (a rep's create: five queries).
        listed = record_visible_listed(model, user)
        scope = (
            model._default_manager.filter(listed) if listed is not None else type(self).duplicates_scope(user)
        )
        if ids_only:
            # Of the matches only their ids are wanted: only what the rules compare is read of them.
            scope = scope.only(*rule_fields(type(record)))
        return find_duplicates(record, queryset=scope)

    @extend_schema(
        summary="Likely duplicates",
        description="Records of the same kind that look like this one, best first, each with its reasons: "
        "same email (any case), same company email domain (public providers such as gmail.com excluded), "
        "same phone digits, the same company name once case, punctuation and legal forms (Inc, Ltd, GmbH…) "
        "are set aside, similar names (trigram similarity at least 0.6). A create answers with their ids in "
        f"the `{LIKELY_DUPLICATES_HEADER}` header.",
        request=None,
        responses={200: DuplicatesSerializer, 404: NOT_FOUND},
    )
    @action(detail=True, methods=["get"], pagination_class=None, filter_backends=[])
    def duplicates(self, request: Request, pk=None) -> Response:
        matches = self._duplicates_of(self.get_object())
        return Response(DuplicatesSerializer({"results": matches}).data)

    def perform_create(self, serializer):
        super().perform_create(serializer)
        self._created = serializer.instance

    def create(self, request, *args, **kwargs):
        response = super().create(request, *args, **kwargs)
        if response.status_code == status.HTTP_201_CREATED:
            # The record as created and read again for the answer.
            matches = self._duplicates_of(self._created, ids_only=True)
            if matches:
                response[LIKELY_DUPLICATES_HEADER] = ", ".join(str(m.record.pk) for m in matches)
        return response
