"""The sales admin: opportunities (with the forecast and the sales teams) and lead conversion."""

from sales.admin import catalog, convert, operations, opportunities, quotes  # noqa: F401  (each module registers its admin)
