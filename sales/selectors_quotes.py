"""Reads for products, price lists, a deal's lines and quotes. A quote is seen by whoever sees its deal."""

from django.db.models import Prefetch, QuerySet

from crm.actors import Actor
from crm.filters import filter_queryset
from crm.selectors import Filters, register_record_access
from sales.filters_quotes import PriceListFilter, PriceListItemFilter, ProductFilter, QuoteFilter
from sales.models import OpportunityLine, PriceList, PriceListItem, Product, Quote, QuoteLine
from sales.selectors import opportunity_visible_to


def product_list(*, user: Actor, filters: Filters = None) -> QuerySet[Product]:
    return filter_queryset(ProductFilter, Product.objects.all(), filters)


def price_list_list(*, user: Actor, filters: Filters = None) -> QuerySet[PriceList]:
    items = PriceListItem.objects.select_related("product").order_by("product__name", "id")
    queryset = PriceList.objects.prefetch_related(Prefetch("items", queryset=items))
    return filter_queryset(PriceListFilter, queryset, filters)


def price_list_item_list(*, user: Actor, filters: Filters = None) -> QuerySet[PriceListItem]:
    """Every price of every list, by list and product name (the catalogue is everyone's to read)."""
    queryset = PriceListItem.objects.select_related("price_list", "product").order_by(
        "price_list__name", "product__name", "id"
    )
    return filter_queryset(PriceListItemFilter, queryset, filters)


def opportunity_lines(opportunity) -> QuerySet[OpportunityLine]:
    return opportunity.lines.select_related("product").order_by("position", "id")


def quote_visible_to(user: Actor) -> QuerySet[Quote]:
    return Quote.objects.filter(opportunity__in=opportunity_visible_to(user).values("pk"))


register_record_access(Quote, visible_to=quote_visible_to)


def quote_list(*, user: Actor, filters: Filters = None) -> QuerySet[Quote]:
    lines = QuoteLine.objects.select_related("product").order_by("position", "id")
    queryset = (
        quote_visible_to(user)
        .select_related("opportunity", "created_by")
        .prefetch_related(Prefetch("lines", queryset=lines))
    )
    return filter_queryset(QuoteFilter, queryset, filters)
