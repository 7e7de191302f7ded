"""The next best actions on a lead's or deal's page (a record panel) and on the dashboard."""

from django.template.loader import render_to_string

from crm.admin.record import register_record_panel
from crm.next_actions import next_actions_of


def next_actions_panel(*, request, obj) -> str:
    """The record's ranked actions, each a link that does it; nothing for a closed record."""
    if obj.is_closed:
        return ""
    actions = next_actions_of(user=request.user, record=obj)
    return render_to_string(
        "admin/crm/next_actions.html", {"actions": actions, "record": obj}, request=request
    )


def register_next_actions_panel(model_label: str) -> None:
    register_record_panel(model_label, next_actions_panel, first=True)
