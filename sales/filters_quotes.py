"""FilterSets for products, price lists and quotes, shared by the API, the selectors and the admin."""

import django_filters

from crm.filters import SearchFilterSet, id_filter, ordering
from sales.models import Opportunity, PriceList, PriceListItem, Product, Quote


class ProductFilter(SearchFilterSet):
    search_fields = ("sku", "name", "description", "category")

    category = django_filters.CharFilter(field_name="category", lookup_expr="iexact", label="Category")
    ordering = ordering("sku", "name", "category", "unit_price", "created_at", "updated_at")

    class Meta:
        model = Product
        fields = ["category", "currency", "is_active"]


class PriceListFilter(SearchFilterSet):
    search_fields = ("name", "description")

    ordering = ordering("name", "currency", "created_at")

    class Meta:
        model = PriceList
        fields = ["currency", "is_active"]


class PriceListItemFilter(SearchFilterSet):
    search_fields = ("product__sku", "product__name", "price_list__name")

    price_list = id_filter(PriceList.objects.all(), label="Price list id")
    product = id_filter(Product.objects.all(), label="Product id")
    currency = django_filters.CharFilter(field_name="price_list__currency", label="The price list's currency")
    ordering = ordering("unit_price", "created_at", "updated_at")

    class Meta:
        model = PriceListItem
        fields = ["price_list", "product"]


class QuoteFilter(SearchFilterSet):
    search_fields = ("number", "opportunity__name", "notes")

    opportunity = id_filter(Opportunity.objects.all(), label="Opportunity id")
    current = django_filters.BooleanFilter(
        field_name="superseded_at",
        lookup_expr="isnull",
        label="Only current versions (true) or frozen (false)",
    )
    ordering = ordering("number", "version", "status", "valid_until", "total", "created_at", "updated_at")

    class Meta:
        model = Quote
        fields = ["opportunity", "status", "currency"]
