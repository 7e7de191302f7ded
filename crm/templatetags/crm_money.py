"""Money in templates, by the active locale and CRM_CURRENCY: ``{{ amount|money }}`` ("$334,000") in
tables and lists, ``{{ amount|money_compact }}`` ("$334K") on tiles, boards and cards."""

from django import template
from django.utils.html import format_html

from crm.money import money_format

register = template.Library()


@register.filter
def money(value) -> str:
    return money_format(value)


@register.filter
def money_compact(value) -> str:
    return money_format(value, compact=True)


@register.filter
def money_compact_titled(value) -> str:
    """The compact amount, with the full one as its tooltip: ``<span title="$334,120">$334K</span>``."""
    return format_html('<span title="{}">{}</span>', money_format(value), money_format(value, compact=True))
