"""WSGI entry point for the CRM (gunicorn crm_project.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crm_project.settings")
application = get_wsgi_application()

# Without a broker (make run) this process also runs beat's schedule: reminders, digests, sweeps.
from crm_project.scheduler import start_if_embedded  # noqa: E402

start_if_embedded()

# Last: whatever startup made is frozen out of the garbage collector's walks (see the function).
from crm_project.runtime import settle_after_startup  # noqa: E402

settle_after_startup()
