"""The CRM project: settings, URLs and the Celery app (loaded with Django so tasks can be sent)."""

from crm_project.celery import app as celery_app

__all__ = ("celery_app",)
