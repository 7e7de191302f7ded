"""Reads of exchange rates: the rate in force on a day, and the SQL that converts a deal's amount into
the company currency at the rate in force on its close date.

A rate applies from its date until the currency's next rate: the rate in force on a day is the latest
one on or before it. A deal in the company currency is taken as it is (no rate is looked up for it);
an open deal without a close date is converted at today's rate.
"""

import bisect
import calendar
import datetime
from collections import defaultdict
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


# A month's rate, for figures kept by close month (the opportunities' rollup): when a currency's rate
# does not change inside a month, every deal closing in it converts at one rate, so the month's summed
# amount converts at once. A month in which a rate comes into force after its first day is "mixed":
# its deals must be converted one by one.
MIXED = "mixed"


def month_bounds(month: int) -> tuple[datetime.date, datetime.date]:
    """First and last day of a rollup month (year × 100 + month)."""
    year, number = divmod(month, 100)
    return datetime.date(year, number, 1), datetime.date(year, number, calendar.monthrange(year, number)[1])


def monthly_rates(pairs) -> dict[tuple[str, int], Decimal | str | None]:
    """For each (currency, month) of ``pairs`` (month as year × 100 + month; 0: no close date, converted
    at today's rate), the one rate every deal closing in that month converts at, None when no rate is in
    force all month, or ``MIXED`` when a rate comes into force after the month's first day. One query."""
    pairs = set(pairs)
    by_currency: dict[str, tuple[list[datetime.date], list[Decimal]]] = defaultdict(lambda: ([], []))
    rates = ExchangeRate.objects.filter(currency__in={currency for currency, _ in pairs}).order_by(
        "currency", "date"
    )
    for currency, date, rate in rates.values_list("currency", "date", "rate"):
        dates, values = by_currency[currency]
        dates.append(date)
        values.append(rate)

    def in_force(currency: str, day: datetime.date) -> Decimal | None:
        dates, values = by_currency[currency]
        index = bisect.bisect_right(dates, day)
        return values[index - 1] if index else None

    result: dict[tuple[str, int], Decimal | str | None] = {}
    for currency, month in pairs:
        if not month:
            result[currency, month] = in_force(currency, timezone.localdate())
            continue
        first, last = month_bounds(month)
        dates = by_currency[currency][0]
        changes = bisect.bisect_right(dates, last) - bisect.bisect_right(dates, first)
        result[currency, month] = MIXED if changes else in_force(currency, first)
    return result
