"""Reads of segments and campaigns: who is in a segment now, a campaign's members and its figures,
each limited to the records the reader may see."""

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.db.models import Case, Count, IntegerField, OuterRef, Q, QuerySet, Subquery, Value, When
from django.db.models.functions import Coalesce

from crm import registries
from crm.actors import Actor
from crm.filters import segment_apply
from crm.models import (
    Campaign,
    CampaignMember,
    CampaignMemberStatus,
    Segment,
    SegmentEntity,
    SegmentKind,
)
from crm.selectors import account_visible_to, contact_visible_to, lead_visible_to, user_sees_everything

VISIBLE = {
    SegmentEntity.LEAD: lead_visible_to,
    SegmentEntity.CONTACT: contact_visible_to,
    SegmentEntity.ACCOUNT: account_visible_to,
}
PREVIEW_SIZE = 10


def _picked_count(entity: str):
    through = getattr(Segment, f"{entity}s").through
    picked = through.objects.filter(segment_id=OuterRef("pk")).order_by().values("segment_id")
    return Coalesce(Subquery(picked.annotate(n=Count("*")).values("n")[:1]), 0)


def segment_list(*, user: Actor, filters=None) -> QuerySet[Segment]:
    """Every segment (configuration every member of staff reads); what each holds depends on the reader.
    ``static_member_count``: how many records were picked into a static one (whoever sees them)."""
    queryset = (
        Segment.objects.select_related("owner")
        .annotate(
            static_member_count=Case(
                *[
                    When(kind=SegmentKind.STATIC, entity=entity, then=_picked_count(entity))
                    for entity in SegmentEntity.values
                ],
                default=Value(0),
                output_field=IntegerField(),
            )
        )
        .order_by("name", "id")
    )
    if filters:
        entity = filters.get("entity")
        if entity:
            queryset = queryset.filter(entity=entity)
    return queryset


def segment_records(*, segment: Segment, user: Actor) -> QuerySet:
    """The records of ``segment`` that ``user`` sees, now."""
    return segment_apply(segment, VISIBLE[segment.entity](user))


def segment_count(*, segment: Segment, user: Actor) -> int:
    return segment_records(segment=segment, user=user).order_by().count()


def _label(record) -> str:
    if hasattr(record, "first_name"):
        return f"{record.first_name} {record.last_name}".strip()
    return record.name


def segment_preview(*, segment: Segment, user: Actor, limit: int = PREVIEW_SIZE) -> dict[str, Any]:
    """The live count and the first records (id, name, email), newest first."""
    records = segment_records(segment=segment, user=user)
    first = list(records.order_by("-created_at", "-id")[:limit])
    return {
        "count": segment_count(segment=segment, user=user),
        "results": [
            {"id": record.pk, "name": _label(record), "email": getattr(record, "email", "") or ""}
            for record in first
        ],
    }


# --- campaigns -------------------------------------------------------------------------------------


def campaign_list(*, user: Actor, filters=None) -> QuerySet[Campaign]:
    queryset = Campaign.objects.select_related("owner", "consent_purpose").annotate(
        member_count=Count("members", distinct=True)
    )
    if filters:
        for name in ("status", "campaign_type"):
            if filters.get(name):
                queryset = queryset.filter(**{name: filters[name]})
    return queryset.order_by("-start_date", "name", "id")


def campaign_member_list(*, campaign: Campaign, user: Actor) -> QuerySet[CampaignMember]:
    """The campaign's members whose record ``user`` sees (every contact; leads by visibility)."""
    members = campaign.members.select_related("lead", "contact").order_by("id")
    if getattr(user, "is_system", False) or user_sees_everything(user):
        return members
    return members.filter(Q(lead__isnull=True) | Q(lead__in=lead_visible_to(user)))


CENT = Decimal("0.01")
RATIO = Decimal("0.0001")


def campaign_stats(*, campaign: Campaign, user: Actor) -> dict[str, Any]:
    """A campaign's figures, over the records ``user`` sees: members by status, responses, leads and
    opportunities it sourced, the revenue they won, cost per lead and ROI = (won − cost) / cost."""
    members = campaign_member_list(campaign=campaign, user=user)
    by_status = dict(members.order_by().values_list("status").annotate(n=Count("*")))
    leads = lead_visible_to(user).filter(campaign=campaign).order_by().count()
    deals = registries.campaign_figures(user=user, campaign_ids=[campaign.pk]).get(campaign.pk, {})
    won_revenue = Decimal(deals.get("won_revenue") or 0).quantize(CENT)
    cost = campaign.actual_cost
    cost_per_lead = (cost / leads).quantize(CENT, ROUND_HALF_UP) if cost is not None and leads else None
    roi = ((won_revenue - cost) / cost).quantize(RATIO, ROUND_HALF_UP) if cost else None
    return {
        "members": sum(by_status.values()),
        "members_by_status": {status: by_status.get(status, 0) for status in CampaignMemberStatus.values},
        "responses": by_status.get(CampaignMemberStatus.RESPONDED, 0),
        "leads": leads,
        "opportunities": deals.get("opportunities", 0),
        "won_opportunities": deals.get("won_opportunities", 0),
        "won_revenue": won_revenue,
        "budget": campaign.budget,
        "actual_cost": cost,
        "expected_revenue": campaign.expected_revenue,
        "cost_per_lead": cost_per_lead,
        "roi": roi,
    }
