"""How opportunities (export only), products and price-list prices look as files, registered with
crm's import/export engine."""

from decimal import Decimal

from crm.importing.cells import KEEP, CellError, cell_text, unescape_formula
from crm.importing.schemas import ImportSchema, Problem, Schema
from sales.models import PriceList, Product

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


def _reference_parser(ids: dict[str, int], missing: str):
    """A required relation named by a unique text (a price list's name, a product's SKU), in any case."""

    def parse(raw):
        text = cell_text(raw).strip()
        if text[:1] == "'":
            text = unescape_formula(text)
        if not text:
            raise CellError("This column is required.")
        pk = ids.get(text.lower())
        if pk is None:
            raise CellError(missing.format(text))
        return pk

    return parse


class PriceListItemSchema(ImportSchema):
    """A product's price in a price list: one row per (price list, product), matched on both."""

    def load_lookups(self, ctx, names):
        lists = dict(PriceList.objects.values_list("id", "name"))
        skus = dict(Product.objects.values_list("id", "sku"))
        ctx.named = {
            "price_list": {name.lower(): pk for pk, name in lists.items()},
            "product": {sku.lower(): pk for pk, sku in skus.items()},
            "price_list_names": lists,
            "skus": skus,
        }

    def parser(self, column, ctx):
        if column == "price_list":
            return _reference_parser(ctx.named["price_list"], "No price list is named “{}”.")
        if column == "product":
            return _reference_parser(ctx.named["product"], "No product has the SKU “{}”.")
        return super().parser(column, ctx)

    def finalize(self, rec, old, ctx, problems):
        if old is None and rec["unit_price"] in (KEEP, "", None):
            problems.append(Problem("unit_price", "", "A new price needs a unit price."))

    def preview_label(self, row, index, ctx):
        name = ctx.named["price_list_names"].get(row[index["price_list_id"]], "")
        return f"{name} / {ctx.named['skus'].get(row[index['product_id']], '')}"


PRICE_LIST_ITEMS = PriceListItemSchema(
    kind="price-list-items",
    model_label="sales.PriceListItem",
    verbose="price list items",
    columns=("price_list", "product", "unit_price"),
    relation_labels={"price_list": "name", "product": "sku"},
    key=("price_list", "product"),
    required=("price_list", "product", "unit_price"),
)
