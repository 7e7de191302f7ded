"""The sales admin: opportunities (with the forecast and the sales teams) and lead conversion."""

from sales.admin import (  # noqa: F401  (each module registers its admin)
    catalog,
    commissions,
    convert,
    operations,
    opportunities,
    quotes,
    territories,
)
