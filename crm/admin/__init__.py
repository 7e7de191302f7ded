"""The crm admin: one module per model admin, the shared base and the custom pages.

Importing the package registers every crm model admin; the building blocks other apps use live in
``base`` (the service-routing ModelAdmin, inlines, visibility), ``record`` (a record's page, its
buttons and timeline), ``transitions`` (convert, mark won/lost, reopen), ``kanban``, ``bulk``,
``duplicates``, ``import_export``, ``scale`` (changelists of big tables) and ``access``.
"""

from crm.admin import (  # noqa: F401  (each module registers its admin)
    accounts,
    api_keys,
    contacts,
    leads,
    lost_reasons,
    pipelines,
    scoring,
    stages,
    tags,
    teams,
    users,
)
