"""``{% crm_result_list cl %}``: Django's ``{% result_list cl %}`` with the rows of
``crm.admin.result_rows`` (the same HTML, worked out once per column rather than once per cell), and
``{% crm_app_list %}``: Django's ``admin/app_list.html`` written by ``crm.admin.app_list``."""

from django import template
from django.contrib.admin.templatetags.base import InclusionAdminNode

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
