"""Charts drawn on the server as inline SVG: they render offline, print, and need no JavaScript."""

from decimal import Decimal

from django import template
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from crm.money import money_format

register = template.Library()

BAR_HEIGHT = 22
GAP = 8
LABEL_WIDTH = 235
BAR_AREA = 300
VALUE_WIDTH = 130
DEFAULT_COLOR = "#417690"


def _number(value) -> Decimal:
    return Decimal(str(value or 0))


@register.filter
def money(value) -> str:
    """1234.5 → "$1,234.50" by the locale, in the CRM's currency (crm.money)."""
    return money_format(value)


@register.simple_tag
def bar_chart(items, label_key: str, value_key: str, color_key: str = "", title: str = "", money_values=True):
    """A horizontal bar per item, scaled to the largest value, with its label and value."""
    items = list(items or [])
    if not items:
        return format_html('<p class="help">{}</p>', "Nothing to chart yet.")
    largest = max((_number(item.get(value_key)) for item in items), default=Decimal(0)) or Decimal(1)
    height = len(items) * (BAR_HEIGHT + GAP)
    width = LABEL_WIDTH + BAR_AREA + VALUE_WIDTH
    rows = []
    for index, item in enumerate(items):
        value = _number(item.get(value_key))
        y = index * (BAR_HEIGHT + GAP)
        bar = int(BAR_AREA * value / largest)
        label = str(item.get(label_key) or "—")
        shown = money(value) if money_values else f"{value:,.0f}"
        color = (item.get(color_key) if color_key else None) or DEFAULT_COLOR
        rows.append(
            (
                y + 15,
                label[:30],
                LABEL_WIDTH,
                y,
                max(bar, 1),
                BAR_HEIGHT,
                color,
                LABEL_WIDTH + bar + 6,
                y + 15,
                shown,
                label,
                shown,
            )
        )
    body = format_html_join(
        "",
        '<g><text x="0" y="{}">{}</text><rect x="{}" y="{}" width="{}" height="{}" rx="3" fill="{}">'
        '</rect><text x="{}" y="{}">{}</text><title>{}: {}</title></g>',
        rows,
    )
    return format_html(
        '<svg class="crm-chart" role="img" aria-label="{}" viewBox="0 0 {} {}" width="100%" '
        'preserveAspectRatio="xMinYMin meet" xmlns="http://www.w3.org/2000/svg">{}</svg>',
        title or "chart",
        width,
        height,
        SafeString(body),
    )


@register.simple_tag
def grouped_bar_chart(items, label_key: str, series, title: str = "", money_values=True, target_key=""):
    """A group of horizontal bars per item, one per series ``(value_key, label, css_class)``, and, with
    ``target_key``, a dashed target line across the item's bars where its target is (a quota).

    Bars of every series share one scale, so open, weighted and won value compare at a glance; the
    series' colours come from the stylesheet (``css_class``), so dark mode restyles them.
    """
    items = list(items or [])
    series = list(series)
    if not items or not series:
        return format_html('<p class="help">{}</p>', "Nothing to chart yet.")
    keys = [key for key, _label, _css in series] + ([target_key] if target_key else [])
    largest = max((_number(item.get(key)) for item in items for key in keys), default=Decimal(0)) or Decimal(
        1
    )
    bar = 14
    group_height = len(series) * (bar + 2) + GAP * 2
    height = len(items) * group_height
    width = LABEL_WIDTH + BAR_AREA + VALUE_WIDTH
    groups = []
    for index, item in enumerate(items):
        top = index * group_height
        label = str(item.get(label_key) or "—")
        bars = []
        for position, (key, series_label, css) in enumerate(series):
            value = _number(item.get(key))
            y = top + position * (bar + 2)
            length = int(BAR_AREA * value / largest)
            shown = money(value) if money_values else f"{value:,.0f}"
            bars.append(
                (
                    LABEL_WIDTH,
                    y,
                    max(length, 1),
                    bar,
                    css,
                    LABEL_WIDTH + length + 6,
                    y + bar - 3,
                    shown,
                    label,
                    series_label,
                    shown,
                )
            )
        body = format_html_join(
            "",
            '<rect x="{}" y="{}" width="{}" height="{}" rx="2" class="{}"></rect>'
            '<text x="{}" y="{}" class="value">{}</text><title>{} — {}: {}</title>',
            bars,
        )
        target = item.get(target_key) if target_key else None
        if target is not None:
            x = LABEL_WIDTH + int(BAR_AREA * _number(target) / largest)
            body = format_html(
                '{}<line x1="{}" y1="{}" x2="{}" y2="{}" class="target-line">'
                "<title>{} — target: {}</title></line>",
                body,
                x,
                top,
                x,
                top + len(series) * (bar + 2),
                label,
                money(target) if money_values else f"{_number(target):,.0f}",
            )
        groups.append((top + (len(series) * (bar + 2)) // 2 + 4, label[:30], body))
    content = format_html_join("", '<g><text x="0" y="{}">{}</text>{}</g>', groups)
    return format_html(
        '<svg class="crm-chart" role="img" aria-label="{}" viewBox="0 0 {} {}" width="100%" '
        'preserveAspectRatio="xMinYMin meet" xmlns="http://www.w3.org/2000/svg">{}</svg>',
        title or "chart",
        width,
        height,
        content,
    )


@register.simple_tag
def funnel_chart(steps, title: str = "Conversion funnel"):
    """A funnel: the step's name on the left, a centred band as wide as its share of the first step,
    and its count and share on the right."""
    steps = list(steps or [])
    if not steps:
        return format_html('<p class="help">{}</p>', "Nothing to chart yet.")
    label_width, area, figure_width, band, gap = 120, 360, 120, 30, 6
    first = Decimal(steps[0].get("count") or 0) or Decimal(1)
    rows = []
    for index, step in enumerate(steps):
        count = Decimal(step.get("count") or 0)
        # Never thinner than a sliver, so an empty step still reads as a step of the funnel.
        bar = max(int(area * count / first), 4)
        y = index * (band + gap)
        text_y = y + band // 2 + 5
        share = step.get("percent_of_total", 0)
        rows.append(
            (
                index,
                text_y,
                step.get("label", ""),
                label_width + (area - bar) // 2,
                y,
                bar,
                band,
                label_width + area + 10,
                text_y,
                step.get("count", 0),
                f"{share:.0f}%" if index else "",
                step.get("label", ""),
                step.get("count", 0),
            )
        )
    body = format_html_join(
        "",
        '<g class="funnel-step step-{}"><text x="0" y="{}">{}</text>'
        '<rect x="{}" y="{}" width="{}" height="{}" rx="4"></rect>'
        '<text x="{}" y="{}" class="figure">{} <tspan class="share">{}</tspan></text>'
        "<title>{}: {}</title></g>",
        rows,
    )
    return format_html(
        '<svg class="crm-chart crm-funnel" role="img" aria-label="{}" viewBox="0 0 {} {}" width="100%" '
        'preserveAspectRatio="xMinYMin meet" xmlns="http://www.w3.org/2000/svg">{}</svg>',
        title,
        label_width + area + figure_width,
        len(steps) * (band + gap) - gap,
        body,
    )
