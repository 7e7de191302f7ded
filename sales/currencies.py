"""Reads of exchange rates: the rate in force on a day, and the SQL that converts a deal's amount into
the company currency at the rate in force on its close date.

A rate applies from its date until the currency's next rate: the rate in force on a day is the latest
one on or before it. A deal in the company currency is taken as it is (no rate is looked up for it);
an open deal without a close date is converted at today's rate.
"""

import datetime
from decimal import Decimal

from django.db.models import (
    Case,
    DecimalField,
    ExpressionWrapper,
    F,
    OuterRef,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Coalesce
from django.utils import timezone

from crm.filters import filter_queryset
from sales.filters import ExchangeRateFilter
from sales.models import ExchangeRate, company_currency

RATE = DecimalField(max_digits=20, decimal_places=8)
CONVERTED = DecimalField(max_digits=30, decimal_places=8)


def conversion_note() -> str:
    """What the pages and the API say about the figures they show."""
    return (
        f"Amounts in {company_currency()}; a deal in another currency is converted at the rate in force "
        f"on its close date (the latest rate on or before it; today's for a deal without a close date)."
    )


def exchange_rate_on(currency: str, day: datetime.date) -> Decimal | None:
    """The rate of ``currency`` in force on ``day`` (1 for the company currency), None without one."""
    if currency == company_currency():
        return Decimal(1)
    return (
        ExchangeRate.objects.filter(currency=currency, date__lte=day)
        .order_by("-date")
        .values_list("rate", flat=True)
        .first()
    )


def exchange_rate_list(*, user, filters=None) -> QuerySet[ExchangeRate]:
    """Rates are reference data every member of staff reads (the API checks view_exchangerate)."""
    return filter_queryset(ExchangeRateFilter, ExchangeRate.objects.all(), filters)


def _rate_in_force(currency_field: str, date_field: str) -> Subquery:
    day = Coalesce(OuterRef(date_field), Value(timezone.localdate()))
    return Subquery(
        ExchangeRate.objects.filter(currency=OuterRef(currency_field), date__lte=day)
        .order_by("-date")
        .values("rate")[:1],
        output_field=RATE,
    )


def converted(
    amount: str = "amount", *, currency_field: str = "currency", date_field: str = "close_date"
) -> Case:
    """``amount`` in the company currency, as SQL. The rate is looked up only for rows in another
    currency (a CASE branch), so a table of company-currency deals costs no lookup at all. A row in a
    currency without a rate in force is NULL: sums leave it out (the services refuse to write one)."""
    return Case(
        When(**{currency_field: company_currency()}, then=F(amount)),
        default=ExpressionWrapper(
            F(amount) * _rate_in_force(currency_field, date_field), output_field=CONVERTED
        ),
        output_field=CONVERTED,
    )
