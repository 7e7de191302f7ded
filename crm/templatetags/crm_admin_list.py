"""``{% crm_result_list cl %}``: Django's ``{% result_list cl %}`` with the rows of
``crm.admin.result_rows`` (the same HTML, worked out once per column rather than once per cell)."""

from django import template
from django.contrib.admin.templatetags.base import InclusionAdminNode

from crm.admin.result_rows import result_list

register = template.Library()


@register.tag(name="crm_result_list")
def crm_result_list_tag(parser, token):
    return InclusionAdminNode(
        parser, token, func=result_list, template_name="change_list_results.html", takes_context=False
    )
