"""Reads of templates and sent emails, with record visibility applied."""

from django.db.models import Q, QuerySet

from crm.actors import Actor
from crm.models import EmailTemplate, OutgoingEmail


def email_template_list(*, user: Actor, filters=None) -> QuerySet[EmailTemplate]:
    return EmailTemplate.objects.order_by("name", "id")


def outgoing_email_list(*, user: Actor, filters=None) -> QuerySet[OutgoingEmail]:
    """Emails to the leads the user sees, and to contacts (every member of staff sees them)."""
    from crm.selectors import lead_visible_to, user_sees_everything

    emails = OutgoingEmail.objects.select_related("lead", "contact", "template").order_by("-id")
    if user_sees_everything(user) or getattr(user, "is_system", False):
        return emails
    return emails.filter(Q(lead__isnull=True) | Q(lead__in=lead_visible_to(user)))
