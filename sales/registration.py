"""What the sales app tells crm about itself, registered from SalesConfig.ready()."""

from decimal import Decimal

from django.db.models import Count, IntegerField, Sum

from crm import registries, rules
from crm.actors import Actor
from crm.api.serializers import LeadConvertResultSerializer, register_nested_field
from crm.importing.schemas import register_schema
from crm.search_indexes import register_trigram_indexes
from crm.selectors import MONEY, record_visible_to, register_annotations, subquery_aggregate
from crm.win_probability import register_win_kind
from sales.api.serializers import OpportunitySerializer
from sales.currencies import converted
from sales.importing import OPPORTUNITIES, PRODUCTS
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


def register_with_crm() -> None:
    register_reports()
    rules.register_state_fields("sales.Opportunity", ("status", "closed_at"))
    register_trigram_indexes("sales_opportunity", ("name", "description"))
    register_schema(OPPORTUNITIES)
    register_schema(PRODUCTS)
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
