"""Opportunity lines, quotes and their lines, and the per-year counter that numbers quotes."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q

from crm.models import TimeStampedModel
from crm.models.base import non_negative_constraint
from sales import pricing
from sales.models import Opportunity
from sales.models_catalog import PERCENT_VALIDATORS, Product, currency_field, percent_constraint

QUANTITY_MESSAGE = "The quantity must be more than 0."


class PricedLine(TimeStampedModel):
    """A line of a deal or a quote: a product (or free text), quantity, unit price, discount, tax rate.
    ``net_amount`` and ``tax_amount`` are derived (sales.pricing) each time the line is validated."""

    product = models.ForeignKey(Product, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    description = models.CharField(
        max_length=300, blank=True, help_text="Free text; empty with a product: the product's name."
    )
    quantity = models.DecimalField(max_digits=12, decimal_places=2, default=1)
    unit_price = models.DecimalField(
        max_digits=14, decimal_places=2, blank=True, help_text="Empty with a product: the product's price."
    )
    discount_percent = models.DecimalField(
        max_digits=5, decimal_places=2, default=0, validators=PERCENT_VALIDATORS, help_text="0–100."
    )
    tax_rate = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        blank=True,
        validators=PERCENT_VALIDATORS,
        help_text="Percent. Empty with a product: the product's rate.",
    )
    position = models.PositiveIntegerField(default=0)
    net_amount = models.DecimalField(max_digits=16, decimal_places=2, default=0, editable=False)
    tax_amount = models.DecimalField(max_digits=16, decimal_places=2, default=0, editable=False)

    constraint_error_fields = {
        **TimeStampedModel.constraint_error_fields,
        "quantity_positive": "quantity",
        "unit_price_negative": "unit_price",
        "discount_percent_range": "discount_percent",
        "tax_rate_range": "tax_rate",
    }

    class Meta:
        abstract = True
        ordering = ["position", "id"]

    @staticmethod
    def line_constraints(prefix: str) -> list[models.BaseConstraint]:
        return [
            models.CheckConstraint(
                condition=Q(quantity__gt=0),
                name=f"{prefix}_quantity_positive",
                violation_error_code="quantity_positive",
                violation_error_message=QUANTITY_MESSAGE,
            ),
            non_negative_constraint(prefix, "unit_price"),
            percent_constraint(prefix, "discount_percent"),
            percent_constraint(prefix, "tax_rate"),
        ]

    def __str__(self) -> str:
        return self.description or (self.product.name if self.product_id else "line")

    def clean(self):
        super().clean()
        if self.product_id:
            if not self.description:
                self.description = self.product.name
            if self.unit_price is None:
                self.unit_price = self.product.unit_price
            if self.tax_rate is None:
                self.tax_rate = self.product.tax_rate
        if not self.description:
            raise ValidationError({"description": "Name a product or describe the line."})
        if self.unit_price is None:
            raise ValidationError({"unit_price": "A line without a product needs a unit price."})
        if self.tax_rate is None:
            self.tax_rate = 0
        if self.quantity is not None and self.quantity <= 0:
            raise ValidationError({"quantity": QUANTITY_MESSAGE})
        self.compute_amounts()

    def compute_amounts(self) -> None:
        if None in (self.quantity, self.unit_price, self.discount_percent, self.tax_rate):
            return
        self.net_amount = pricing.line_net(
            quantity=self.quantity, unit_price=self.unit_price, discount_percent=self.discount_percent
        )
        self.tax_amount = pricing.line_tax(net=self.net_amount, tax_rate=self.tax_rate)

    @property
    def gross_amount(self):
        return self.net_amount + self.tax_amount

    def copy_values(self) -> dict:
        return {
            "product": self.product,
            "description": self.description,
            "quantity": self.quantity,
            "unit_price": self.unit_price,
            "discount_percent": self.discount_percent,
            "tax_rate": self.tax_rate,
            "position": self.position,
        }


class OpportunityLine(PricedLine):
    opportunity = models.ForeignKey(Opportunity, on_delete=models.CASCADE, related_name="lines")

    class Meta(PricedLine.Meta):
        verbose_name = "line item"
        constraints = PricedLine.line_constraints("sales_opportunityline")
        indexes = [models.Index(fields=["opportunity", "position"], name="sales_oppline_opp_pos")]


class QuoteStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    SENT = "sent", "Sent"
    ACCEPTED = "accepted", "Accepted"
    DECLINED = "declined", "Declined"
    EXPIRED = "expired", "Expired"


class Quote(TimeStampedModel):
    """One version of a quote. Its number (``Q-2026-0001``) is shared by its versions; revising makes
    the next version and freezes this one (``superseded_at``)."""

    opportunity = models.ForeignKey(Opportunity, on_delete=models.PROTECT, related_name="quotes")
    number = models.CharField(max_length=20, editable=False)
    version = models.PositiveIntegerField(default=1, editable=False)
    status = models.CharField(max_length=10, choices=QuoteStatus.choices, default=QuoteStatus.DRAFT)
    currency = currency_field()
    valid_until = models.DateField(null=True, blank=True, help_text="After it the quote expires.")
    payment_terms = models.CharField(max_length=200, blank=True)
    notes = models.TextField(blank=True)
    subtotal = models.DecimalField(max_digits=16, decimal_places=2, default=0, editable=False)
    tax_total = models.DecimalField(max_digits=16, decimal_places=2, default=0, editable=False)
    total = models.DecimalField(max_digits=16, decimal_places=2, default=0, editable=False)
    recipient_email = models.EmailField(blank=True, help_text="Where it was last sent.")
    sent_at = models.DateTimeField(null=True, blank=True)
    answered_at = models.DateTimeField(null=True, blank=True)
    answered_by_name = models.CharField(max_length=200, blank=True)
    answered_from_ip = models.GenericIPAddressField(null=True, blank=True)
    superseded_at = models.DateTimeField(
        null=True, blank=True, help_text="When a newer version replaced it: frozen since."
    )
    pdf = models.FileField(upload_to="quotes/%Y/", blank=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        editable=False,
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["number", "version"], name="sales_quote_number_version"),
            models.UniqueConstraint(
                fields=["number"],
                condition=Q(superseded_at__isnull=True),
                name="sales_quote_one_current_version",
            ),
            models.CheckConstraint(
                condition=~Q(status__in=["accepted", "declined"]) | Q(answered_at__isnull=False),
                name="sales_quote_answer_has_date",
            ),
            models.CheckConstraint(
                condition=Q(status="draft") | Q(sent_at__isnull=False), name="sales_quote_sent_has_date"
            ),
        ]
        indexes = [models.Index(fields=["status", "valid_until"], name="sales_quote_status_valid")]

    def __str__(self) -> str:
        return f"{self.number} v{self.version}"

    @property
    def is_frozen(self) -> bool:
        return self.superseded_at is not None

    @property
    def is_editable(self) -> bool:
        return self.status == QuoteStatus.DRAFT and not self.is_frozen


class QuoteLine(PricedLine):
    quote = models.ForeignKey(Quote, on_delete=models.CASCADE, related_name="lines")

    class Meta(PricedLine.Meta):
        verbose_name = "quote line"
        constraints = PricedLine.line_constraints("sales_quoteline")
        indexes = [models.Index(fields=["quote", "position"], name="sales_quoteline_quote_pos")]


class QuoteCounter(models.Model):
    """The last quote number given in a year: its row is locked while a quote is numbered, so numbers
    are gap-free (a rolled-back creation gives its number back) and never given twice."""

    year = models.PositiveIntegerField(unique=True, validators=[MinValueValidator(2000)])
    last_number = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.year}: {self.last_number}"
