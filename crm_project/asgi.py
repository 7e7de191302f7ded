"""ASGI entry point for the CRM."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crm_project.settings")
application = get_asgi_application()

from crm_project.runtime import settle_after_startup  # noqa: E402

settle_after_startup()
