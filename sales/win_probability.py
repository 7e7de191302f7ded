"""Opportunities as a kind of record crm's win-probability models learn from (crm.win_probability)."""

from crm.models import WinModelKind
from crm.win_probability import KindSpec
from sales.models import OpportunityStatus

OPPORTUNITY = KindSpec(
    kind=WinModelKind.OPPORTUNITY,
    model_label="sales.Opportunity",
    noun="opportunity",
    plural="opportunities",
    won_status=OpportunityStatus.WON,
    lost_status=OpportunityStatus.LOST,
    # An opportunity has no source or rating of its own; its industry is its account's.
    variables=("stage", "priority", "industry", "owner"),
)
