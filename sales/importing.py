"""How opportunities (export only) and products look as files, registered with crm's import/export engine."""

from decimal import Decimal

from crm.importing.cells import KEEP
from crm.importing.schemas import ImportSchema, Problem, Schema

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


class ProductSchema(ImportSchema):
    def finalize(self, rec, old, ctx, problems):
        rate = rec.get("tax_rate", KEEP)
        if rate is not KEEP and rate is not None and not Decimal(0) <= rate <= Decimal(100):
            problems.append(Problem("tax_rate", str(rate), "A percentage between 0 and 100."))


PRODUCTS = ProductSchema(
    kind="products",
    model_label="sales.Product",
    verbose="products",
    columns=("sku", "name", "description", "category", "unit_price", "currency", "tax_rate", "is_active"),
    key="sku",
    key_index="upper",
    required=("sku", "name"),
)
