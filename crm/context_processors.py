"""Template context shared by every CRM page."""

from functools import cache, partial

from django.conf import settings


def crm_settings(request):
    return {"CRM_CURRENCY": settings.CRM_CURRENCY}


def notifications(request):
    """The bell's unread count: a callable, so only a page that shows the bell pays its one query, and
    cached, so a template that names it twice still pays one."""
    from crm.notifications.selectors import notification_unread_count

    user = getattr(request, "user", None)
    return {"notifications_unread": cache(partial(notification_unread_count, user=user))}
