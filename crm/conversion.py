"""Lead conversion as crm's services and import see it: a lead put into a won stage is converted.

Converting creates an opportunity, so the converter is sales' (``sales.services.lead_convert``),
registered from SalesConfig.ready; crm never imports sales and calls whatever is registered here.
"""

from collections.abc import Callable
from typing import Any

from django.core.exceptions import ImproperlyConfigured

# ``(*, lead, user, **options) -> result with .lead``: the conversion service.
LeadConverter = Callable[..., Any]

_converter: LeadConverter | None = None


def register_lead_converter(converter: LeadConverter) -> None:
    """Make ``converter`` the one conversion service (registering the same one again is harmless)."""
    global _converter
    if _converter is not None and _converter is not converter:
        raise ImproperlyConfigured(
            f"A lead converter is already registered ({_converter.__module__}.{_converter.__qualname__})."
        )
    _converter = converter


def lead_converter() -> LeadConverter:
    """The registered conversion service; ImproperlyConfigured when no installed app registered one."""
    if _converter is None:
        raise ImproperlyConfigured(
            "No lead converter is registered: a lead in a won stage cannot be converted. The sales app "
            "registers it (SalesConfig.ready); is it in INSTALLED_APPS?"
        )
    return _converter
