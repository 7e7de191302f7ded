"""Products (with import and export by SKU), price lists with their prices as rows, and every list's
prices on one page (with import and export by price list and SKU)."""

from django.contrib import admin

from crm.admin.base import ServiceHistoryAdmin, ServiceModelAdmin, register_inline_saver, save_inline_forms
from crm.admin.import_export import ImportExportAdminMixin
from crm.money import money_format
from crm.services import record_delete
from sales import services_catalog as services
from sales.models import PriceList, PriceListItem, Product


@admin.register(Product)
class ProductAdmin(ImportExportAdminMixin, ServiceHistoryAdmin):
    list_display = ("sku", "name", "category", "price", "tax_rate", "is_active")
    list_filter = ("is_active", "category", "currency")
    search_fields = ("sku", "name", "description", "category")
    fields = ("sku", "name", "description", "category", "unit_price", "currency", "tax_rate", "is_active")

    def create_record(self, request, data):
        return services.product_create(user=request.user, data=data)

    def update_record(self, request, obj, data):
        return services.product_update(product=obj, user=request.user, data=data)

    @admin.display(description="unit price", ordering="unit_price")
    def price(self, obj):
        return money_format(obj.unit_price, currency=obj.currency)


class PriceListItemInline(admin.TabularInline):
    model = PriceListItem
    fields = ("product", "unit_price")
    autocomplete_fields = ("product",)
    extra = 1


def save_price_list_item_inline(request, formset) -> None:
    save_inline_forms(
        request,
        formset,
        create=lambda user, data: services.price_list_item_create(user=user, data=data),
        update=lambda user, obj, data: services.price_list_item_update(item=obj, user=user, data=data),
        delete=lambda user, obj: record_delete(instance=obj, user=user),
    )


register_inline_saver(PriceListItem, save_price_list_item_inline)


@admin.register(PriceList)
class PriceListAdmin(ServiceModelAdmin):
    list_display = ("name", "currency", "is_active", "created_at")
    list_filter = ("is_active", "currency")
    search_fields = ("name", "description")
    fields = ("name", "currency", "description", "is_active")
    inlines = [PriceListItemInline]

    def create_record(self, request, data):
        return services.price_list_create(user=request.user, data=data)

    def update_record(self, request, obj, data):
        return services.price_list_update(price_list=obj, user=request.user, data=data)


@admin.register(PriceListItem)
class PriceListItemAdmin(ImportExportAdminMixin, ServiceModelAdmin):
    """Every list's prices in one list, for import and export; one list's prices are also its rows."""

    list_display = ("price_list", "product_sku", "product_name", "price", "updated_at")
    list_filter = ("price_list", "price_list__currency")
    list_select_related = ("price_list", "product")
    search_fields = ("product__sku", "product__name", "price_list__name")
    autocomplete_fields = ("price_list", "product")
    fields = ("price_list", "product", "unit_price")
    ordering = ("price_list__name", "product__name", "id")

    def create_record(self, request, data):
        return services.price_list_item_create(user=request.user, data=data)

    def update_record(self, request, obj, data):
        return services.price_list_item_update(item=obj, user=request.user, data=data)

    @admin.display(description="SKU", ordering="product__sku")
    def product_sku(self, obj):
        return obj.product.sku

    @admin.display(description="product", ordering="product__name")
    def product_name(self, obj):
        return obj.product.name

    @admin.display(description="unit price", ordering="unit_price")
    def price(self, obj):
        return f"{obj.unit_price:,.2f} {obj.price_list.currency}"
