"""The opportunities' rollup declaration (kept by crm.rollups' triggers; the model is
sales.models.OpportunityRollup)."""

from crm.reached import Reach, register_reach
from crm.rollups import CENTS, Joined, Rollup, register_rollup

OPPORTUNITY_ROLLUP = Rollup(
    name="opportunities",
    table="sales_opportunityrollup",
    source="sales_opportunity",
    keys={
        "pipeline_id": "{row}.pipeline_id",
        "stage_id": "{row}.stage_id",
        "status": "{row}.status",
        "owner_id": "COALESCE({row}.owner_id, 0)",
        "currency": "{row}.currency",
        "close_month": (
            "COALESCE(CAST(EXTRACT(YEAR FROM {row}.close_date) AS INTEGER) * 100"
            " + CAST(EXTRACT(MONTH FROM {row}.close_date) AS INTEGER), 0)"
        ),
        "from_lead": "CASE WHEN {row}.lead_id IS NULL THEN 0 ELSE 1 END",
    },
    vendor_keys={
        "sqlite": {"close_month": "COALESCE(CAST(strftime('%Y%m', {row}.close_date) AS INTEGER), 0)"}
    },
    sums={
        "amount_cents": CENTS.format(column="amount"),
        "weighted_cents_percent": CENTS.format(column="amount") + " * COALESCE({row}.probability, 0)",
    },
    watched=(
        "pipeline_id",
        "stage_id",
        "status",
        "owner_id",
        "currency",
        "close_date",
        "lead_id",
        "amount",
        "probability",
    ),
)
register_rollup(OPPORTUNITY_ROLLUP)

# What the boards' column headers read: the same deals by pipeline, stage and owner only (a few hundred
# rows, where the rollup above grows with the months of close dates).
OPPORTUNITY_BOARD_ROLLUP = Rollup(
    name="opportunity board",
    table="sales_opportunityboardrollup",
    source="sales_opportunity",
    keys={
        "pipeline_id": "{row}.pipeline_id",
        "stage_id": "{row}.stage_id",
        "owner_id": "COALESCE({row}.owner_id, 0)",
    },
    sums={"amount_cents": CENTS.format(column="amount")},
    watched=("pipeline_id", "stage_id", "owner_id", "amount"),
)
register_rollup(OPPORTUNITY_BOARD_ROLLUP)

CLOSE_MONTH = OPPORTUNITY_ROLLUP.keys["close_month"]

# The funnel's last step for a reader who sees some owners' leads: the won deals from leads by the lead's
# owner and pipeline (read through the deal's lead). Only won deals from a lead count: an open deal
# created, moved or lost writes nothing here.
WON_FROM_LEAD_ROLLUP = Rollup(
    name="won deals from leads",
    table="sales_wonfromleadrollup",
    source="sales_opportunity",
    keys={
        "lead_owner_id": "COALESCE({joined.owner_id}, 0)",
        "lead_pipeline_id": "COALESCE({joined.pipeline_id}, 0)",
        "currency": "{row}.currency",
        "close_month": CLOSE_MONTH,
    },
    vendor_keys={"sqlite": {"close_month": OPPORTUNITY_ROLLUP.vendor_keys["sqlite"]["close_month"]}},
    sums={"amount_cents": CENTS.format(column="amount")},
    watched=("status", "lead_id", "currency", "close_date", "amount"),
    condition="{row}.status = 'won' AND {row}.lead_id IS NOT NULL",
    joined=Joined(table="crm_lead", fk="lead_id", columns=("owner_id", "pipeline_id")),
)
register_rollup(WON_FROM_LEAD_ROLLUP)

# How far each deal got (crm.reached): what the conversion funnel of deals reads.
OPPORTUNITY_REACH = Reach(
    name="opportunities", table="sales_opportunity", history="sales_opportunitystagechange"
)
register_reach(OPPORTUNITY_REACH)
