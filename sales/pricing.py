"""Line and document totals in Decimal, rounded half-up to cents on each line (pure functions, no writes).

A line's net is quantity × unit price less its discount, rounded to cents; its tax is the net × the
tax rate, rounded to cents. A document's subtotal and tax are the sums of its lines' rounded figures,
so the total printed on a quote is always the sum of the lines printed above it.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")
HUNDRED = Decimal("100")


def round_money(value: Decimal) -> Decimal:
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


def line_net(*, quantity: Decimal, unit_price: Decimal, discount_percent: Decimal) -> Decimal:
    """quantity × unit price × (1 − discount / 100), half-up to cents."""
    gross = Decimal(quantity) * Decimal(unit_price)
    return round_money(gross * (HUNDRED - Decimal(discount_percent)) / HUNDRED)


def line_tax(*, net: Decimal, tax_rate: Decimal) -> Decimal:
    return round_money(Decimal(net) * Decimal(tax_rate) / HUNDRED)


@dataclass
class Totals:
    subtotal: Decimal = Decimal("0.00")
    tax_total: Decimal = Decimal("0.00")
    # Tax rate (percent) → (net taxed at it, tax), in rate order.
    tax_by_rate: dict[Decimal, tuple[Decimal, Decimal]] = field(default_factory=dict)

    @property
    def total(self) -> Decimal:
        return self.subtotal + self.tax_total


def totals(lines: Iterable) -> Totals:
    """Totals of lines carrying ``net_amount``, ``tax_amount`` and ``tax_rate`` (already rounded)."""
    result = Totals()
    by_rate: dict[Decimal, tuple[Decimal, Decimal]] = {}
    for line in lines:
        result.subtotal += line.net_amount
        result.tax_total += line.tax_amount
        rate = Decimal(line.tax_rate).quantize(CENT)
        net, tax = by_rate.get(rate, (Decimal("0.00"), Decimal("0.00")))
        by_rate[rate] = (net + line.net_amount, tax + line.tax_amount)
    result.tax_by_rate = dict(sorted(by_rate.items()))
    return result
