"""How opportunities look as a file (export only), registered with crm's import/export engine."""

from crm.importing.schemas import Schema

OPPORTUNITIES = Schema(
    kind="opportunities",
    model_label="sales.Opportunity",
    verbose="opportunities",
    columns=(
        "name",
        "account",
        "contact",
        "pipeline",
        "stage",
        "amount",
        "currency",
        "probability",
        "close_date",
        "opportunity_type",
        "priority",
        "status",
        "closed_at",
        "lost_reason",
        "lost_note",
        "lead",
        "description",
        "owner",
        "tags",
    ),
)
