"""Products and price lists: what a deal's lines and a quote's lines are priced from."""

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.db.models.functions import Upper

from crm.models import TimeStampedModel
from crm.models.base import audit_history, non_negative_constraint

CURRENCY_VALIDATORS = [RegexValidator(r"^[A-Z]{3}$", "A 3-letter ISO 4217 code in capitals, such as EUR.")]
PERCENT_VALIDATORS = [MinValueValidator(0), MaxValueValidator(100)]


def default_currency() -> str:
    return settings.CRM_CURRENCY


def currency_field(**kwargs) -> models.CharField:
    return models.CharField(
        max_length=3,
        default=default_currency,
        validators=CURRENCY_VALIDATORS,
        help_text="ISO 4217 code (EUR, USD). Default: the CRM's currency.",
        **kwargs,
    )


def percent_constraint(prefix: str, field: str) -> models.CheckConstraint:
    return models.CheckConstraint(
        condition=Q(**{f"{field}__gte": 0}) & Q(**{f"{field}__lte": 100}),
        name=f"{prefix}_{field}_0_100",
        violation_error_code=f"{field}_range",
        violation_error_message="A percentage between 0 and 100.",
    )


class Product(TimeStampedModel):
    sku = models.CharField("SKU", max_length=64, help_text="Stock-keeping unit: unique, ignoring case.")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    category = models.CharField(max_length=100, blank=True, db_index=True)
    unit_price = models.DecimalField(max_digits=14, decimal_places=2, default=0)
    currency = currency_field()
    tax_rate = models.DecimalField(
        max_digits=5, decimal_places=2, default=0, validators=PERCENT_VALIDATORS, help_text="Percent, 0–100."
    )
    is_active = models.BooleanField(default=True)

    constraint_error_fields = {
        **TimeStampedModel.constraint_error_fields,
        "unit_price_negative": "unit_price",
        "tax_rate_range": "tax_rate",
        "sku_unique": "sku",
    }
    # The import writes products in bulk: its history rows are written the same way.
    history = audit_history()

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(
                Upper("sku"),
                name="sales_product_sku_unique",
                violation_error_code="sku_unique",
                violation_error_message="Another product has this SKU.",
            ),
            non_negative_constraint("sales_product", "unit_price"),
            percent_constraint("sales_product", "tax_rate"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.sku})"


class PriceList(TimeStampedModel):
    name = models.CharField(max_length=100, unique=True)
    currency = currency_field()
    description = models.TextField(blank=True)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.currency})"


class PriceListItem(TimeStampedModel):
    """A product's price in one price list (in the list's currency)."""

    price_list = models.ForeignKey(PriceList, on_delete=models.CASCADE, related_name="items")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="price_list_items")
    unit_price = models.DecimalField(max_digits=14, decimal_places=2)

    constraint_error_fields = {
        **TimeStampedModel.constraint_error_fields,
        "unit_price_negative": "unit_price",
    }

    class Meta:
        ordering = ["price_list", "product__name", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["price_list", "product"],
                name="sales_pricelistitem_once",
                violation_error_message="This product already has a price in this list.",
            ),
            non_negative_constraint("sales_pricelistitem", "unit_price"),
        ]

    def __str__(self) -> str:
        return f"{self.product} at {self.unit_price} {self.price_list.currency}"
