"""``POST .../merge/`` for leads, contacts and accounts: 2–5 records into one survivor."""

from django.core.exceptions import ValidationError
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from crm.api.viewsets import BAD_REQUEST, CHANGE, DetailSerializer, ModelPermissions
from crm.merging import MAX_MERGE, MIN_MERGE, record_merge


class MergePermissions(ModelPermissions):
    """Merging changes the survivor and deletes the others: change_<model> and delete_<model>."""

    perms_map = {**ModelPermissions.perms_map, "POST": [CHANGE, "%(app_label)s.delete_%(model_name)s"]}


# Record ids are 64-bit (BigAutoField); a larger number names no record, and SQLite cannot even
# compare with one, so it is refused as bad input.
MAX_ID = 2**63 - 1


class MergeInputSerializer(serializers.Serializer):
    ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=MAX_ID),
        help_text=f"The {MIN_MERGE}–{MAX_MERGE} records to merge, the survivor included.",
    )
    survivor_id = serializers.IntegerField(
        min_value=1,
        max_value=MAX_ID,
        required=False,
        allow_null=True,
        help_text="Which record survives. Default: the oldest.",
    )


class MergeResultSerializer(serializers.Serializer):
    survivor = serializers.DictField(help_text="The survivor, as its resource reads it.")
    merged_ids = serializers.ListField(child=serializers.IntegerField(), help_text="The records deleted.")
    filled_fields = serializers.ListField(
        child=serializers.CharField(), help_text="The survivor's empty fields filled from the others."
    )
    moved = serializers.DictField(
        child=serializers.IntegerField(), help_text="How many related records moved to the survivor, by kind."
    )


class MergeViewSetMixin:
    @extend_schema(
        summary="Merge duplicates",
        description=f"Merges {MIN_MERGE}–{MAX_MERGE} records into the survivor (`survivor_id`, else the "
        "oldest): its empty fields are filled from the others, every related record (contacts, "
        "opportunities, activities, tags, stage history, converted links) moves to it, the others are "
        "deleted; all or nothing. Needs change and delete permissions, and the right to change every "
        "record merged (accounts and contacts: the owner's team); otherwise 403 and nothing changes.",
        request=MergeInputSerializer,
        responses={
            200: MergeResultSerializer,
            400: BAD_REQUEST,
            403: OpenApiResponse(response=DetailSerializer, description="A record the user may not change."),
        },
    )
    @action(detail=False, methods=["post"], permission_classes=[MergePermissions], filter_backends=[])
    def merge(self, request: Request) -> Response:
        data = self.validated_input(MergeInputSerializer)
        ids = list(dict.fromkeys(data["ids"]))
        records = list(self.get_queryset().filter(pk__in=ids))
        unknown = sorted(set(ids) - {r.pk for r in records})
        if unknown:
            raise ValidationError(
                {
                    "ids": f"No {self.get_queryset().model._meta.verbose_name} with the id(s) "
                    f"{', '.join(map(str, unknown))}."
                }
            )
        survivor = None
        if data.get("survivor_id") is not None:
            survivor = next((r for r in records if r.pk == data["survivor_id"]), None)
            if survivor is None:
                raise ValidationError({"survivor_id": "The survivor must be one of the ids merged."})
        plan = record_merge(records=records, survivor=survivor, user=request.user)
        payload = {
            "survivor": self.serializer_class(
                self.reread(plan.survivor), context=self.get_serializer_context()
            ).data,
            "merged_ids": [r.pk for r in plan.others],
            "filled_fields": sorted(plan.filled),
            "moved": plan.moved,
        }
        return Response(MergeResultSerializer(payload).data)
