"""Amounts as people read them, by the active locale and the company currency (``CRM_CURRENCY``).

``money_format(334000)`` reads "$334,000" in English and "334.000 $" in German (cents only when there
are some), for tables and lists; ``money_format(334000, compact=True)`` reads "$334K" / "334 Tsd. $",
for tiles, boards and cards. Separators come from Django's locale formats; the symbol's place and the
short scale's words from the small table below (Babel's CLDR data is not a dependency: these are the
locales the CRM is used in, and any other falls back to English words with its own separators).
"""

import functools
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from django.conf import settings
from django.utils import formats, numberformat, translation

NBSP = "\xa0"

SYMBOLS = {
    "USD": "$",
    "EUR": "€",
    "GBP": "£",
    "JPY": "¥",
    "CNY": "CN¥",
    "INR": "₹",
    "KRW": "₩",
    "BRL": "R$",
    "CAD": "CA$",
    "AUD": "A$",
    "NZD": "NZ$",
    "MXN": "MX$",
    "HKD": "HK$",
    "ILS": "₪",
    "PLN": "zł",
    "TRY": "₺",
}


@dataclass(frozen=True)
class MoneyStyle:
    """Where a locale puts the currency and what it calls thousands, millions and billions."""

    symbol_after: bool
    scale: tuple[str, str, str]
    scale_space: str = ""  # between the number and the scale's word

    def place(self, number: str, symbol: str) -> str:
        if self.symbol_after:
            return f"{number}{NBSP}{symbol}"
        # A code ("SEK") or a letter symbol ("CHF") is spaced from the number; "$" and "€" are not.
        space = NBSP if symbol[-1:].isalpha() else ""
        return f"{symbol}{space}{number}" if not number.startswith("-") else f"-{symbol}{space}{number[1:]}"


ENGLISH = MoneyStyle(symbol_after=False, scale=("K", "M", "B"))
STYLES = {
    "en": ENGLISH,
    "de": MoneyStyle(symbol_after=True, scale=("Tsd.", "Mio.", "Mrd."), scale_space=NBSP),
    "fr": MoneyStyle(symbol_after=True, scale=("k", "M", "Md"), scale_space=NBSP),
    "es": MoneyStyle(symbol_after=True, scale=("mil", "M", "mil M"), scale_space=NBSP),
    "it": MoneyStyle(symbol_after=True, scale=("K", "Mln", "Mrd"), scale_space=NBSP),
    "pt": MoneyStyle(symbol_after=False, scale=("mil", "mi", "bi"), scale_space=NBSP),
    "nl": MoneyStyle(symbol_after=False, scale=("K", "mln.", "mld."), scale_space=NBSP),
}
SCALE = (Decimal(1_000), Decimal(1_000_000), Decimal(1_000_000_000))


@functools.lru_cache(maxsize=64)
def _style(language: str) -> MoneyStyle:
    return STYLES.get(language.split("-")[0].lower(), ENGLISH)


def _number(value: Decimal, decimals: int, language: str) -> str:
    return numberformat.format(
        value,
        formats.get_format("DECIMAL_SEPARATOR", language),
        decimal_pos=decimals,
        grouping=formats.get_format("NUMBER_GROUPING", language),
        thousand_sep=formats.get_format("THOUSAND_SEPARATOR", language),
        force_grouping=True,
    )


def _decimal(value) -> Decimal | None:
    if type(value) is Decimal:  # a model's amount: the same number as Decimal(str(value))
        return value if value.is_finite() else None
    if value is None or value == "":
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def money_format(
    value, *, compact: bool = False, currency: str | None = None, language: str | None = None
) -> str:
    """``value`` in ``currency`` (default CRM_CURRENCY) for the active (or given) language; "—" for
    no amount. Compact: "$334K", "$1.2M", "$950"."""
    number = _decimal(value)
    if number is None:
        return "—"
    language = language or translation.get_language() or settings.LANGUAGE_CODE
    code = (currency or settings.CRM_CURRENCY).upper()
    symbol = SYMBOLS.get(code, code)
    style = _style(language)
    if not compact:
        whole = number == number.to_integral_value()
        rounded = number.quantize(Decimal(1) if whole else Decimal("0.01"), ROUND_HALF_UP)
        return style.place(_number(rounded, 0 if whole else 2, language), symbol)
    magnitude, word = abs(number), ""
    for index in reversed(range(len(SCALE))):
        if magnitude >= SCALE[index]:
            scaled = magnitude / SCALE[index]
            if scaled.quantize(Decimal(1), ROUND_HALF_UP) >= 1000 and index + 1 < len(SCALE):
                index, scaled = index + 1, magnitude / SCALE[index + 1]  # 999,999 → 1M, not 1000K
            magnitude, word = scaled, style.scale_space + style.scale[index]
            break
    decimals = 1 if word and magnitude < 100 else 0
    magnitude = magnitude.quantize(Decimal(1).scaleb(-decimals), ROUND_HALF_UP)
    if magnitude == magnitude.to_integral_value():
        decimals = 0
    text = _number(magnitude.copy_sign(number) if magnitude else magnitude, decimals, language) + word
    return style.place(text, symbol)
