"""Reads that carry rules for the crm app: annotated querysets for lists and pages."""

from decimal import Decimal

from django.apps import apps
from django.db.models import (
    Count,
    DecimalField,
    IntegerField,
    OuterRef,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce

from crm.models import Account, Pipeline

MONEY = DecimalField(max_digits=16, decimal_places=2)


def _subquery_aggregate(queryset: QuerySet, fk: str, aggregate, output_field, empty):
    """A correlated subquery: one aggregate per outer row, without multiplying joined rows."""
    sub = (
        queryset.filter(**{fk: OuterRef("pk")})
        .order_by()
        .values(fk)
        .annotate(result=aggregate)
        .values("result")
    )
    return Coalesce(Subquery(sub, output_field=output_field), Value(empty, output_field=output_field))


def account_annotate_aggregates(queryset: QuerySet[Account]) -> QuerySet[Account]:
    """Contact count, opportunity count and open / won opportunity value on every account."""
    # Looked up at run time: crm does not import sales at module level.
    Opportunity = apps.get_model("sales", "Opportunity")
    Contact = apps.get_model("crm", "Contact")
    opps = Opportunity.objects.all()
    return queryset.annotate(
        contact_count=_subquery_aggregate(Contact.objects.all(), "account", Count("*"), IntegerField(), 0),
        opportunity_count=_subquery_aggregate(opps, "account", Count("*"), IntegerField(), 0),
        open_value=_subquery_aggregate(
            opps.filter(status="open"), "account", Sum("amount"), MONEY, Decimal("0")
        ),
        won_value=_subquery_aggregate(
            opps.filter(status="won"), "account", Sum("amount"), MONEY, Decimal("0")
        ),
    )


def pipeline_annotate_counts(queryset: QuerySet[Pipeline]) -> QuerySet[Pipeline]:
    Stage = apps.get_model("crm", "Stage")
    Lead = apps.get_model("crm", "Lead")
    return queryset.annotate(
        stage_count=_subquery_aggregate(Stage.objects.all(), "pipeline", Count("*"), IntegerField(), 0),
        open_lead_count=_subquery_aggregate(
            Lead.objects.filter(status="open"),
            "pipeline",
            Count("*"),
            IntegerField(),
            0,
        ),
    )
