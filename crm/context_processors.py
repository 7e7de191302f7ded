"""Template context shared by every CRM page."""

from django.conf import settings


def crm_settings(request):
    return {"CRM_CURRENCY": settings.CRM_CURRENCY}
