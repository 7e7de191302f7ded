"""How a report's cell reads on its page: money with the currency, percents with a sign, empty as —."""

from django import template

from crm.reports import DATE, MONEY, NUMBER, PERCENT
from crm.templatetags.crm_charts import money

register = template.Library()


@register.simple_tag
def report_cell(kind: str, value) -> str:
    if value is None or value == "":
        return "—"
    if kind == MONEY:
        return money(value)
    if kind == PERCENT:
        return f"{value:,.2f}%"
    if kind == NUMBER:
        return f"{value:,}"
    if kind == DATE:
        return f"{value:%Y-%m-%d}" if hasattr(value, "strftime") else str(value)
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)
