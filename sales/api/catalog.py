"""Products and price lists in the API: ``products/`` (with import and export) and ``price-lists/``."""

from drf_spectacular.utils import extend_schema_view
from rest_framework import serializers

from crm.api.import_export import ImportExportViewSetMixin
from crm.api.serializers import TIMESTAMPS
from crm.api.viewsets import ServiceModelViewSet, crud_schema
from sales import services_catalog as services
from sales.filters_quotes import PriceListFilter, ProductFilter
from sales.models import PriceList, PriceListItem, Product
from sales.selectors_quotes import price_list_list, product_list


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
