"""The lists every door reads: leads, accounts, contacts and the configuration, each limited to what the user
may see.
"""

from collections.abc import Mapping
from typing import Any

from django.db.models import (
    OuterRef,
    Prefetch,
    QuerySet,
    Subquery,
)

from crm.actors import Actor
from crm.filters import (
    AccountFilter,
    ContactFilter,
    LeadFilter,
    LostReasonFilter,
    PipelineFilter,
    StageFilter,
    TagFilter,
    filter_queryset,
)
from crm.models import Account, Contact, Lead, LostReason, Pipeline, Stage, Tag

from .annotations import account_annotate_aggregates, priority_rank, tags_prefetch
from .visibility import account_visible_to, contact_visible_to, lead_visible_to, same_for_every_reader

Filters = Mapping[str, Any] | None


# --- lists ----------------------------------------------------------------------------------------


@same_for_every_reader
def lead_list(*, user: Actor, filters: Filters = None) -> QuerySet[Lead]:
    queryset = (
        lead_visible_to(user)
        .select_related("pipeline", "stage", "owner", "lost_reason", "score_breakdown")
        .prefetch_related(tags_prefetch())
        .annotate(priority_rank=priority_rank(), converted_opportunity_pk=_converted_opportunity_pk())
    )
    return filter_queryset(LeadFilter, queryset, filters, reader=user)


def _converted_opportunity_pk() -> Subquery:
    """The id of the deal a lead was converted into: a subquery on the deal's lead, not a join, which
    would stay in every query of the list, its count too (crm.api.listing.ListRows.queryset). The deal
    model is sales', reached through the relation it declares."""
    relation = Lead._meta.get_field("converted_opportunity")
    deals = relation.related_model._base_manager.filter(**{relation.field.name: OuterRef("pk")})
    return Subquery(deals.order_by().values("pk")[:1])


def account_list(*, user: Actor, filters: Filters = None) -> QuerySet[Account]:
    queryset = account_annotate_aggregates(
        account_visible_to(user).select_related("owner", "parent").prefetch_related(tags_prefetch()),
        user=user,
    )
    return filter_queryset(AccountFilter, queryset, filters, reader=user)


@same_for_every_reader
def contact_list(*, user: Actor, filters: Filters = None) -> QuerySet[Contact]:
    queryset = contact_visible_to(user).select_related("account", "owner").prefetch_related(tags_prefetch())
    return filter_queryset(ContactFilter, queryset, filters, reader=user)


def pipeline_list(*, user: Actor, filters: Filters = None) -> QuerySet[Pipeline]:
    queryset = Pipeline.objects.prefetch_related(
        Prefetch("stages", queryset=Stage.objects.order_by("sequence", "id"))
    )
    return filter_queryset(PipelineFilter, queryset, filters)


def stage_list(*, user: Actor, filters: Filters = None) -> QuerySet[Stage]:
    queryset = Stage.objects.select_related("pipeline").order_by(
        "pipeline__sequence", "pipeline_id", "sequence", "id"
    )
    return filter_queryset(StageFilter, queryset, filters)


def tag_list(*, user: Actor, filters: Filters = None) -> QuerySet[Tag]:
    return filter_queryset(TagFilter, Tag.objects.all(), filters)


def lost_reason_list(*, user: Actor, filters: Filters = None) -> QuerySet[LostReason]:
    return filter_queryset(LostReasonFilter, LostReason.objects.all(), filters)
