"""Line totals in Decimal, half-up to cents per line, and a quote's totals with tax by rate."""

from decimal import Decimal

import pytest

from crm.actors import SYSTEM
from sales import pricing, services_quotes
from tests.sales.quoting import ROUNDING_CASES, SUBTOTAL, TAX_BY_RATE, TAX_TOTAL, TOTAL, deal_with_lines


@pytest.mark.parametrize("quantity,price,discount,rate,net,tax", ROUNDING_CASES)
def test_a_line_rounds_half_up_to_cents(quantity, price, discount, rate, net, tax):
    got_net = pricing.line_net(
        quantity=Decimal(quantity), unit_price=Decimal(price), discount_percent=Decimal(discount)
    )
    assert got_net == Decimal(net)
    assert pricing.line_tax(net=got_net, tax_rate=Decimal(rate)) == Decimal(tax)


def test_a_deals_amount_is_its_lines_net_total(db, owner, stages):
    deal = deal_with_lines(owner=owner, stage=stages["New"])

    assert [(line.net_amount, line.tax_amount) for line in deal.lines.order_by("position")] == [
        (Decimal(net), Decimal(tax)) for *_, net, tax in ROUNDING_CASES
    ]
    assert deal.amount == SUBTOTAL


def test_a_quotes_totals_carry_tax_by_rate(db, owner, stages):
    deal = deal_with_lines(owner=owner, stage=stages["New"])

    quote = services_quotes.quote_create(opportunity=deal, user=SYSTEM)

    assert (quote.subtotal, quote.tax_total, quote.total) == (SUBTOTAL, TAX_TOTAL, TOTAL)
    assert pricing.totals(quote.lines.all()).tax_by_rate == TAX_BY_RATE
