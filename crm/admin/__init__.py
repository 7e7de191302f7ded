"""The crm admin: the model admins, the shared base and the custom pages."""

from crm.admin import leads, users  # noqa: F401  (each module registers its admins)
