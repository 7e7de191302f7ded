"""``{% crm_result_list cl %}``: Django's ``{% result_list cl %}`` with the rows of
``crm.admin.result_rows`` (the same HTML, worked out once per column rather than once per cell), and
``{% crm_app_list %}``: Django's ``admin/app_list.html`` written by ``crm.admin.app_list``, and
``row|cells``: a row's cells joined as ``row|join:""`` joins them."""

from django import template
from django.contrib.admin.templatetags.base import InclusionAdminNode
from django.utils.html import conditional_escape
from django.utils.safestring import SafeString, mark_safe

from crm.admin.app_list import app_list_html
from crm.admin.result_rows import result_list

register = template.Library()


@register.tag(name="crm_result_list")
def crm_result_list_tag(parser, token):
    return InclusionAdminNode(
        parser, token, func=result_list, template_name="change_list_results.html", takes_context=False
    )


@register.simple_tag(takes_context=True)
def crm_app_list(context):
    """Django's ``admin/app_list.html`` for the ``app_list`` and ``show_changelinks`` in the context,
    written by ``crm.admin.app_list`` (the same HTML, a fraction of the cost)."""
    request = context.get("request")
    return app_list_html(
        context.get("app_list"),
        show_changelinks=bool(context.get("show_changelinks")),
        path=request.path if request is not None else "",
    )


@register.filter(is_safe=True, needs_autoescape=True)
def cells(row, autoescape=True):
    """``row|join:""`` for a changelist row: each cell escaped unless it is safe (the cells
    ``crm.admin.result_rows`` writes are, and are passed on without the 1,700 calls of a page's
    ``conditional_escape``)."""
    if not autoescape:
        return mark_safe("".join(row))
    return mark_safe("".join(cell if type(cell) is SafeString else conditional_escape(cell) for cell in row))
