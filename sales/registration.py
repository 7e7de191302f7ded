"""What the sales app tells crm about itself, registered from SalesConfig.ready()."""

from decimal import Decimal

from django.db.models import Count, IntegerField, Q, Sum

from crm import registries, rules
from crm.actors import Actor
from crm.api.serializers import LeadConvertResultSerializer, register_nested_field
from crm.importing.schemas import register_schema
from crm.search import SearchSource, register_search_source
from crm.search_indexes import register_trigram_indexes
from crm.selectors import MONEY, record_visible_to, register_annotations, subquery_aggregate
from crm.win_probability import register_win_kind
from sales import privacy
from sales.api.serializers import OpportunitySerializer
from sales.currencies import converted
from sales.importing import OPPORTUNITIES, PRICE_LIST_ITEMS, PRODUCTS
from sales.models import Opportunity, OpportunityStatus
from sales.reports import register_reports
from sales.win_probability import OPPORTUNITY


def account_deal_figures(user: Actor) -> dict:
    """An account's opportunity count and open / won value, of the deals ``user`` sees."""
    deals = record_visible_to(Opportunity, user)
    return {
        "opportunity_count": subquery_aggregate(deals, "account", Count("*"), IntegerField(), 0),
        # In the company currency, at the rate in force on each deal's close date.
        "open_value": subquery_aggregate(
            deals.filter(status=OpportunityStatus.OPEN), "account", Sum(converted()), MONEY, Decimal("0")
        ),
        "won_value": subquery_aggregate(
            deals.filter(status=OpportunityStatus.WON), "account", Sum(converted()), MONEY, Decimal("0")
        ),
    }


def lost_reason_deal_count(user: Actor) -> dict:
    """How many of the deals ``user`` sees a lost reason explains."""
    deals = record_visible_to(Opportunity, user)
    return {"opportunity_count": subquery_aggregate(deals, "lost_reason", Count("*"), IntegerField(), 0)}


def campaign_deal_figures(*, user: Actor, campaign_ids) -> dict[int, dict]:
    """The deals each campaign sourced that ``user`` sees, and the revenue won (company currency)."""
    rows = (
        record_visible_to(Opportunity, user)
        .filter(campaign_id__in=list(campaign_ids))
        .order_by()
        .values("campaign_id")
        .annotate(
            opportunities=Count("*"),
            won_opportunities=Count("pk", filter=Q(status=OpportunityStatus.WON)),
            won_revenue=Sum(converted(), filter=Q(status=OpportunityStatus.WON)),
        )
    )
    return {
        row["campaign_id"]: {
            "opportunities": row["opportunities"],
            "won_opportunities": row["won_opportunities"],
            "won_revenue": row["won_revenue"] or Decimal("0"),
        }
        for row in rows
    }


def register_with_crm() -> None:
    privacy.register()
    registries.register_campaign_figures(campaign_deal_figures)
    register_reports()
    rules.register_state_fields("sales.Opportunity", ("status", "closed_at"))
    register_trigram_indexes("sales_opportunity", ("name", "description"))
    register_search_source(
        SearchSource(
            key="deals",
            label="Deals",
            model=Opportunity,
            fields=("name",),
            subtitle=lambda deal: " · ".join(
                str(part) for part in (deal.account, deal.stage.name, deal.get_status_display()) if part
            ),
            select_related=("account", "stage"),
            permission="sales.view_opportunity",
        )
    )
    register_schema(OPPORTUNITIES)
    register_schema(PRODUCTS)
    register_schema(PRICE_LIST_ITEMS)
    register_win_kind(OPPORTUNITY)
    register_nested_field(
        LeadConvertResultSerializer, "opportunity", lambda: OpportunitySerializer(allow_null=True)
    )
    register_annotations("crm.Account", account_deal_figures)
    register_annotations("crm.LostReason", lost_reason_deal_count)
    registries.register_seed_table(
        registries.SeedTable(
            label="opportunities",
            model_label="sales.Opportunity",
            base_id="opportunity",
            fields="OPPORTUNITY_FIELDS",
            rows="opportunities",
        )
    )
