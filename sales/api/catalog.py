"""Products and price lists in the API: ``products/`` (with import and export), ``price-lists/`` and
``price-list-items/`` (every list's prices, with import and export)."""

from drf_spectacular.utils import extend_schema_view
from rest_framework import serializers, viewsets

from crm.api.import_export import ImportExportViewSetMixin
from crm.api.serializers import TIMESTAMPS
from crm.api.viewsets import ModelPermissions, ServiceModelViewSet, crud_schema
from sales import services_catalog as services
from sales.filters_quotes import PriceListFilter, PriceListItemFilter, ProductFilter
from sales.models import PriceList, PriceListItem, Product
from sales.selectors_quotes import price_list_item_list, price_list_list, product_list


class ProductSerializer(serializers.ModelSerializer):
    class Meta:
        model = Product
        fields = (
            "id",
            "sku",
            "name",
            "description",
            "category",
            "unit_price",
            "currency",
            "tax_rate",
            "is_active",
            *TIMESTAMPS,
        )
        read_only_fields = ("id", *TIMESTAMPS)
        validators: list = []
        extra_kwargs = {"unit_price": {"min_value": 0}}


class PriceListItemSerializer(serializers.ModelSerializer):
    product_id = serializers.PrimaryKeyRelatedField(source="product", queryset=Product.objects.all())
    product_sku = serializers.CharField(source="product.sku", read_only=True)
    product_name = serializers.CharField(source="product.name", read_only=True)

    class Meta:
        model = PriceListItem
        fields = ("product_id", "product_sku", "product_name", "unit_price")
        extra_kwargs = {"unit_price": {"min_value": 0}}


class PriceListSerializer(serializers.ModelSerializer):
    items = PriceListItemSerializer(
        many=True, required=False, help_text="The list's prices; when sent, they replace the list's prices."
    )

    class Meta:
        model = PriceList
        fields = ("id", "name", "currency", "description", "is_active", "items", *TIMESTAMPS)
        read_only_fields = ("id", *TIMESTAMPS)
        validators: list = []


@extend_schema_view(**crud_schema("product", ProductSerializer))
class ProductViewSet(ImportExportViewSetMixin, ServiceModelViewSet):
    """Products: SKU (unique, ignoring case), price, currency and tax rate. Everyone reads them; CRM
    Admins change them (and import them by SKU)."""

    import_export_kind = "products"
    serializer_class = ProductSerializer
    filterset_class = ProductFilter
    selector = staticmethod(product_list)

    def create_record(self, data):
        return services.product_create(user=self.request.user, data=data)

    def update_record(self, instance, data):
        return services.product_update(product=instance, user=self.request.user, data=data)


@extend_schema_view(**crud_schema("price list", PriceListSerializer))
class PriceListViewSet(ServiceModelViewSet):
    """Price lists: one currency each, with a price per product (``items``)."""

    serializer_class = PriceListSerializer
    filterset_class = PriceListFilter
    selector = staticmethod(price_list_list)

    def create_record(self, data):
        items = data.pop("items", None)
        return services.price_list_create(user=self.request.user, data=data, items=items)

    def update_record(self, instance, data):
        items = data.pop("items", None)
        return services.price_list_update(price_list=instance, user=self.request.user, data=data, items=items)


class PriceListItemRowSerializer(serializers.ModelSerializer):
    """One price of one list, read on its own (``price-list-items/``)."""

    price_list_id = serializers.IntegerField(read_only=True)
    price_list_name = serializers.CharField(source="price_list.name", read_only=True)
    currency = serializers.CharField(source="price_list.currency", read_only=True)
    product_id = serializers.IntegerField(read_only=True)
    product_sku = serializers.CharField(source="product.sku", read_only=True)
    product_name = serializers.CharField(source="product.name", read_only=True)

    class Meta:
        model = PriceListItem
        fields = (
            "id",
            "price_list_id",
            "price_list_name",
            "currency",
            "product_id",
            "product_sku",
            "product_name",
            "unit_price",
            *TIMESTAMPS,
        )
        read_only_fields = fields


class PriceListItemViewSet(ImportExportViewSetMixin, viewsets.ReadOnlyModelViewSet):
    """Every price list's prices, one row per list and product: read, filter, and import or export as a
    file matched on the price list's name and the product's SKU. A single list's prices are changed
    with the list (``price-lists/{id}/``)."""

    import_export_kind = "price-list-items"
    serializer_class = PriceListItemRowSerializer
    filterset_class = PriceListItemFilter
    permission_classes = [ModelPermissions]

    def get_queryset(self):
        return price_list_item_list(user=self.request.user)
