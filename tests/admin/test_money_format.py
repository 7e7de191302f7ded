"""Money by locale: the template filters (``money``, ``money_compact``) in English, German and French,
another currency, and what the admin's pages show with them."""

from decimal import Decimal

import pytest
from django.template import Context, Template
from django.utils import translation

from crm.money import money_format

NBSP = "\xa0"


def render(source: str, **context) -> str:
    return Template("{% load crm_money %}" + source).render(Context(context))


@pytest.mark.parametrize(
    ("language", "full", "compact"),
    [
        ("en-us", "$334,000", "$334K"),
        ("en-gb", "$334,000", "$334K"),
        ("de", f"334.000{NBSP}$", f"334{NBSP}Tsd.{NBSP}$"),
        ("fr", f"334{NBSP}000{NBSP}$", f"334{NBSP}k{NBSP}$"),
    ],
)
def test_the_filters_follow_the_active_locale(settings, language, full, compact):
    settings.CRM_CURRENCY = "USD"
    with translation.override(language):
        shown = render("{{ amount|money }}|{{ amount|money_compact }}", amount=Decimal("334000.00"))
    assert shown == f"{full}|{compact}"


@pytest.mark.parametrize(
    ("amount", "english", "german"),
    [
        (Decimal("2100.50"), "$2.1K", f"2,1{NBSP}Tsd.{NBSP}$"),
        (Decimal("950"), "$950", f"950{NBSP}$"),
        (Decimal("999999"), "$1M", f"1{NBSP}Mio.{NBSP}$"),
        (Decimal("1250000"), "$1.3M", f"1,3{NBSP}Mio.{NBSP}$"),
        (Decimal("12400000000"), "$12.4B", f"12,4{NBSP}Mrd.{NBSP}$"),
        (Decimal("-5400"), "-$5.4K", f"-5,4{NBSP}Tsd.{NBSP}$"),
        (Decimal("0"), "$0", f"0{NBSP}$"),
    ],
)
def test_compact_amounts_round_to_a_short_scale(settings, amount, english, german):
    settings.CRM_CURRENCY = "USD"
    assert money_format(amount, compact=True, language="en-us") == english
    assert money_format(amount, compact=True, language="de") == german


def test_lists_show_cents_only_when_there_are_some(settings):
    settings.CRM_CURRENCY = "USD"
    assert money_format(Decimal("2100.50"), language="en-us") == "$2,100.50"
    assert money_format(Decimal("2100.00"), language="en-us") == "$2,100"
    assert money_format(Decimal("2100.5"), language="de") == f"2.100,50{NBSP}$"


def test_the_company_currency_and_others(settings):
    settings.CRM_CURRENCY = "EUR"
    with translation.override("en-us"):
        assert render("{{ amount|money_compact }}", amount=334000) == "€334K"
    with translation.override("de"):
        assert render("{{ amount|money }}", amount=334000) == f"334.000{NBSP}€"
    assert money_format(334000, currency="SEK", language="en-us") == f"SEK{NBSP}334,000"
    assert money_format(334000, compact=True, currency="CHF", language="en-us") == f"CHF{NBSP}334K"


def test_no_amount_is_a_dash():
    assert render("{{ a|money }}{{ b|money_compact }}{{ c|money }}", a=None, b="", c="n/a") == "———"


def test_the_titled_filter_shows_the_full_amount_on_hover(settings):
    settings.CRM_CURRENCY = "USD"
    with translation.override("en-us"):
        assert render("{{ a|money_compact_titled }}", a=334120) == '<span title="$334,120">$334K</span>'


@pytest.mark.parametrize("language", ["en-us", "de", "fr"])
def test_an_amount_read_as_a_decimal_is_written_as_its_text_is(settings, language):
    """A model's Decimal is taken as it is, not through its text again: the same amount either way,
    negative zero, exponents and non-numbers included."""
    settings.CRM_CURRENCY = "EUR"
    amounts = ["0", "-0.00", "1E+3", "12345.675", "-99.995", "0.001", "1234567890.10", "NaN", "Infinity"]
    with translation.override(language):
        for text in amounts:
            for compact in (False, True):
                assert money_format(Decimal(text), compact=compact) == money_format(text, compact=compact), (
                    text
                )
