"""Starting jobs: what runs as one (by size), storing its input, queueing it once the transaction commits.

An import above CRM_IMPORT_SYNC_MAX_ROWS rows and an export above CRM_EXPORT_SYNC_MAX_ROWS records run
as jobs; the callers (admin, API) keep answering smaller ones at once, as before.
"""

import importlib
import io
import logging
import pickle
import types

from django.apps import apps
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import models, transaction
from django.db.models import QuerySet

from crm.actors import Actor, actor_ensure_given, is_system, person
from crm.events import dispatch
from crm.importing import EXPORT_FORMATS, ImportFileError, export_kinds, import_kinds, open_table
from crm.models import Job, JobKind

logger = logging.getLogger("crm.jobs")


def import_rows_estimate(*, data: bytes, filename: str) -> int | None:
    """About how many rows the file holds (None: the file cannot be read; the import says why)."""
    try:
        return open_table(data, filename).row_estimate
    except ImportFileError:
        return None


def import_runs_as_job(*, rows: int | None) -> bool:
    return rows is not None and rows > settings.CRM_IMPORT_SYNC_MAX_ROWS


def export_runs_as_job(*, rows: int) -> bool:
    return rows > settings.CRM_EXPORT_SYNC_MAX_ROWS


def job_file_name(job: Job, name: str) -> str:
    return f"{settings.CRM_JOB_FILES_DIR}/{job.pk}/{name}"


def _create(*, user: Actor, kind: str, resource: str, params: dict, total: int) -> Job:
    actor_ensure_given(user)
    return Job.objects.create(
        kind=kind,
        resource=resource,
        params={**params, "system": is_system(user)},
        progress_total=max(total, 0),
        created_by=person(user),
    )


def _enqueue(job: Job) -> None:
    from crm.jobs.tasks import job_run

    dispatch.send_after_commit(job_run, job.pk)


def model_by_label(label: str) -> type[models.Model]:
    return apps.get_model(label)


class _QueryPickler(pickle.Pickler):
    """Pickles model classes by their label: a query may name auto-created ones (the user-groups
    through table of the visibility rule), which pickle cannot find by their module path."""

    def reducer_override(self, obj):
        if isinstance(obj, type) and issubclass(obj, models.Model):
            return model_by_label, (obj._meta.label,)
        if isinstance(obj, types.ModuleType):
            return importlib.import_module, (obj.__name__,)
        return NotImplemented


def query_dumps(queryset: QuerySet) -> bytes:
    buffer = io.BytesIO()
    _QueryPickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(queryset.query)
    return buffer.getvalue()


@transaction.atomic
def job_import_start(
    *,
    user: Actor,
    resource: str,
    data: bytes,
    filename: str,
    dry_run: bool = False,
    clear_empty: bool = False,
    rows: int = 0,
) -> Job:
    """Queue the import of ``data`` (the uploaded file's bytes) as ``user``; it runs after commit."""
    if resource not in import_kinds():
        raise ValidationError({"resource": f"Nothing to import as {resource!r}."})
    params = {"filename": filename, "dry_run": dry_run, "clear_empty": clear_empty}
    job = _create(user=user, kind=JobKind.IMPORT, resource=resource, params=params, total=rows)
    # The uploaded name is kept in params only: stored names are ours, never the client's.
    job.input_file = default_storage.save(job_file_name(job, "upload"), ContentFile(data))
    job.save(update_fields=["input_file"])
    _enqueue(job)
    return job


def job_export_if_large(*, user: Actor, resource: str, queryset: QuerySet, fmt: str) -> Job | None:
    """Queue the export of ``queryset`` when it holds more than CRM_EXPORT_SYNC_MAX_ROWS records;
    None: the caller exports it at once, as before."""
    rows = queryset.count()
    if not export_runs_as_job(rows=rows):
        return None
    try:
        query = query_dumps(queryset)
    except (pickle.PicklingError, TypeError, AttributeError):
        logger.warning("The export of %s could not be queued; exported at once", resource, exc_info=True)
        return None
    return job_export_start(user=user, resource=resource, query=query, fmt=fmt, rows=rows)


@transaction.atomic
def job_export_start(*, user: Actor, resource: str, query: bytes, fmt: str, rows: int) -> Job:
    """Queue the export of the stored ``query`` (query_dumps of a queryset the caller filtered and
    limited to what ``user`` sees).

    The query is pickled, as Django documents for recreating a queryset later: the worker exports
    exactly the records, order and columns the request asked for. Web processes and workers run the
    same code (deploy them together); a query that no longer unpickles fails the job.
    """
    if resource not in export_kinds():
        raise ValidationError({"resource": f"Nothing to export as {resource!r}."})
    if fmt not in EXPORT_FORMATS:
        raise ValidationError({"format": f"Choose one of: {', '.join(EXPORT_FORMATS)}."})
    job = _create(user=user, kind=JobKind.EXPORT, resource=resource, params={"format": fmt}, total=rows)
    job.input_file = default_storage.save(job_file_name(job, "query.pickle"), ContentFile(query))
    job.save(update_fields=["input_file"])
    _enqueue(job)
    return job
