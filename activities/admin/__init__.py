"""The activities admin: activities, their calendar, and what they add to other records' pages."""

from activities.admin import (
    activities,  # noqa: F401  (registers the admin and the inlines)
    mail,  # noqa: F401  (mailboxes, emails, send email from a record)
    records,  # noqa: F401  (files, notes, templates)
)
from activities.service import admin as service_admin  # noqa: F401  (tickets)
from activities.service import admin_kb  # noqa: F401  (knowledge base, surveys)
