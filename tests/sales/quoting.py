"""Fixtures and helpers for the tests of products, line items and quotes."""

from decimal import Decimal

from crm.actors import SYSTEM
from sales import services_quotes
from tests.factories import ContactFactory, OpportunityFactory

# Hand-computed (half-up to cents on each line): quantity, unit price, discount %, tax %, net, tax.
ROUNDING_CASES = [
    ("3", "19.99", "0", "20", "59.97", "11.99"),  # tax 11.994 → 11.99
    ("0.5", "0.05", "0", "10", "0.03", "0.00"),  # net 0.025 → 0.03 (half-even would give 0.02)
    ("7", "14.99", "12.5", "5.5", "91.81", "5.05"),  # net 91.81375 → 91.81; tax 5.04955 → 5.05
    ("2", "10.05", "15", "20", "17.09", "3.42"),  # net 17.085 → 17.09 (half-even 17.08); tax 3.418
    ("1", "0.50", "0", "5", "0.50", "0.03"),  # tax 0.025 → 0.03
]
# Their sums: net 169.40; tax 20 % on 77.06 = 15.41, 10 % on 0.03 = 0.00, 5.5 % on 91.81 = 5.05,
# 5 % on 0.50 = 0.03; tax 20.49; total 189.89.
SUBTOTAL, TAX_TOTAL, TOTAL = Decimal("169.40"), Decimal("20.49"), Decimal("189.89")
TAX_BY_RATE = {
    Decimal("5.00"): (Decimal("0.50"), Decimal("0.03")),
    Decimal("5.50"): (Decimal("91.81"), Decimal("5.05")),
    Decimal("10.00"): (Decimal("0.03"), Decimal("0.00")),
    Decimal("20.00"): (Decimal("77.06"), Decimal("15.41")),
}


def line_data(quantity, unit_price, discount, tax_rate, description="Service"):
    return {
        "description": description,
        "quantity": Decimal(quantity),
        "unit_price": Decimal(unit_price),
        "discount_percent": Decimal(discount),
        "tax_rate": Decimal(tax_rate),
    }


def deal_with_lines(*, owner, stage, cases=ROUNDING_CASES, **fields):
    """A deal owned by ``owner`` with a contact and the given lines (written through the services)."""
    contact = ContactFactory(email="buyer@customer.example", owner=owner)
    deal = OpportunityFactory(name="Big deal", stage=stage, owner=owner, contact=contact, **fields)
    for n, (quantity, price, discount, rate, _net, _tax) in enumerate(cases, start=1):
        services_quotes.opportunity_line_create(
            opportunity=deal,
            user=SYSTEM,
            data=line_data(quantity, price, discount, rate, description=f"Line {n}"),
        )
    deal.refresh_from_db()
    return deal
