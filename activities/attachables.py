"""The registry of record kinds that files and notes attach to: lead, opportunity, account, contact and
activity today; tickets and quotes register themselves the same way when they come."""

from django.core.exceptions import ValidationError
from django.db.models import Model
from django.urls import NoReverseMatch, reverse

_attachables: dict[str, type[Model]] = {}


def register_attachable(record_type: str, model: type[Model]) -> None:
    """Let files and notes be kept on records of ``model``, named ``record_type`` in the API."""
    _attachables[record_type] = model


def attachables() -> dict[str, type[Model]]:
    return dict(_attachables)


def attachable_model(record_type: str) -> type[Model]:
    model = _attachables.get(record_type)
    if model is None:
        raise ValidationError(
            {"record_type": f"“{record_type}” is not one of {', '.join(sorted(_attachables))}."}
        )
    return model


def record_type_of(record: Model) -> str | None:
    return next((name for name, model in _attachables.items() if isinstance(record, model)), None)


def record_admin_url(record_type: str, record_id: int) -> str:
    model = _attachables.get(record_type)
    if model is None:
        return ""
    opts = model._meta
    try:
        return reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[record_id])
    except NoReverseMatch:
        return ""
