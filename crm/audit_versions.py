"""First versions in the audit trail for records written around the model's save (loaddata, the seeder).

django-simple-history records a version from ``post_save``, except for the raw saves of ``loaddata``:
a loaded record then has no first version, and its first change shows every old value as empty. The
handler here gives a raw-saved record the version simple-history skipped: ``+`` dated at its creation
the first time it is loaded, ``~`` when a load overwrites values its latest version does not have.
"""

from django.apps import apps
from django.db.models import Exists, Model, OuterRef
from django.db.models.signals import post_save

LOADED_CHANGE_REASON = "Loaded from a fixture"


def audited_models() -> list[type[Model]]:
    """Every model that keeps an audit trail (django-simple-history)."""
    return [model for model in apps.get_models() if hasattr(model._meta, "simple_history_manager_attribute")]


def _history(model):
    return getattr(model, model._meta.simple_history_manager_attribute)


def _first_version_date(instance):
    return getattr(instance, "created_at", None)


def first_versions_create(model, *, reason: str = LOADED_CHANGE_REASON, batch_size: int = 1000) -> int:
    """A ``+`` version, dated at the record's creation, for each record of ``model`` that has none."""
    history = _history(model)
    versions = history.model.objects.filter(id=OuterRef("pk"))
    missing = model._default_manager.filter(~Exists(versions)).order_by("pk")
    created = 0
    batch = []
    for record in missing.iterator(chunk_size=batch_size):
        record._history_date = _first_version_date(record)
        batch.append(record)
        if len(batch) == batch_size:
            created += len(history.bulk_history_create(batch, default_change_reason=reason))
            batch = []
    if batch:
        created += len(history.bulk_history_create(batch, default_change_reason=reason))
    return created


def _differs(version, instance, fields) -> bool:
    return any(getattr(version, f.attname) != getattr(instance, f.attname) for f in fields)


def loaded_record_version(sender, instance, created, raw=False, **kwargs) -> None:
    """``post_save`` of a raw save (loaddata): the version simple-history does not write for it."""
    if not raw or not hasattr(sender._meta, "simple_history_manager_attribute"):
        return
    history = _history(sender)
    latest = history.model.objects.filter(id=instance.pk).order_by("-history_date", "-history_id").first()
    if latest is None:
        instance._history_date = _first_version_date(instance)
        history.bulk_history_create([instance], default_change_reason=LOADED_CHANGE_REASON)
        del instance._history_date
        return
    # Loading the same data twice changes nothing, in the trail too; a load over a user's change says so.
    compared = [f for f in history.model.tracked_fields if f.attname not in ("updated_at",)]
    if _differs(latest, instance, compared):
        history.bulk_history_create([instance], update=True, default_change_reason=LOADED_CHANGE_REASON)


def connect() -> None:
    post_save.connect(loaded_record_version, dispatch_uid="crm.audit_versions.loaded_record_version")
