"""Running a job: claim it, run the import or export through the engine, record progress and outcome.

The import holds one transaction from its first read to its commit (all or nothing), so progress is
written on a connection of its own, in short transactions, for the admin and the API to see meanwhile.
On SQLite a writer locks the whole file: progress is then best effort (a write that would wait is
skipped) and the final counts are written when the job ends.
"""

import copy
import datetime
import logging
import pickle
import time

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.db.models import QuerySet
from django.db.utils import load_backend
from django.utils import timezone

from crm.actors import SYSTEM
from crm.importing import export_queryset, import_file
from crm.models import Job, JobKind, JobStatus

from .services import job_file_name

logger = logging.getLogger("crm.jobs")


class ProgressWriter:
    """``progress(phase, done, total)`` for the engine: writes the job's progress at most every
    CRM_JOB_PROGRESS_INTERVAL seconds, on its own autocommit connection."""

    def __init__(self, job: Job):
        self.pk = job.pk
        self.last = 0.0
        self.connection = None

    def __call__(self, phase: str, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self.last < settings.CRM_JOB_PROGRESS_INTERVAL and done < total:
            return
        self.last = now
        try:
            with self._connection().cursor() as cursor:
                cursor.execute(
                    f"UPDATE {Job._meta.db_table} SET phase = %s, progress_done = %s, progress_total = %s "
                    "WHERE id = %s AND status = %s",
                    [phase[:32], done, max(done, total), self.pk, JobStatus.RUNNING],
                )
        except DatabaseError as exc:
            logger.debug("Progress of job %s not written now (%s)", self.pk, exc)

    def _connection(self):
        if self.connection is None:
            settings_dict = copy.deepcopy(connections[DEFAULT_DB_ALIAS].settings_dict)
            if settings_dict["ENGINE"].endswith("sqlite3"):
                settings_dict.setdefault("OPTIONS", {})["timeout"] = 0.05  # never hold the job up
            backend = load_backend(settings_dict["ENGINE"])
            self.connection = backend.DatabaseWrapper(settings_dict, DEFAULT_DB_ALIAS)
        return self.connection

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()


def job_claim(pk: int) -> Job | None:
    """queued → running, once: a task delivered twice (at least once) runs the job once."""
    claimed = Job.objects.filter(pk=pk, status=JobStatus.QUEUED).update(
        status=JobStatus.RUNNING, started_at=timezone.now()
    )
    return Job.objects.select_related("created_by").get(pk=pk) if claimed else None


def job_run(pk: int) -> str:
    """Run job ``pk`` if it is still queued; returns its final status (``skipped`` if not queued)."""
    job = job_claim(pk)
    if job is None:
        return "skipped"
    progress = ProgressWriter(job)
    outcome = {"result": {}, "errors": [], "result_file": ""}
    try:
        actor = _actor(job)
        if job.kind == JobKind.IMPORT:
            status = _run_import(job, actor, progress, outcome)
        else:
            status = _run_export(job, actor, progress, outcome)
    except _Refused as exc:
        status, outcome["errors"] = JobStatus.FAILED, [str(exc)]
    except Exception as exc:
        logger.exception("Job %s (%s of %s) failed", job.pk, job.kind, job.resource)
        status, outcome["errors"] = JobStatus.FAILED, [f"The job failed: {exc.__class__.__name__}: {exc}"]
    finally:
        progress.close()
    if job.input_file:
        default_storage.delete(job.input_file)
    done, total = outcome.pop("progress", (None, None))
    fields = {"status": status, "finished_at": timezone.now(), "input_file": "", **outcome}
    if done is not None:
        fields.update(phase="done", progress_done=done, progress_total=max(done, total))
    Job.objects.filter(pk=job.pk).update(**fields)
    return status


class _Refused(Exception):
    pass


def _actor(job: Job):
    if job.params.get("system"):
        return SYSTEM
    user = job.created_by
    if user is None or not user.is_active:
        raise _Refused("The person who started this job no longer has an active account.")
    return user


def _run_import(job: Job, actor, progress: ProgressWriter, outcome: dict) -> str:
    params = job.params
    with default_storage.open(job.input_file, "rb") as handle:
        result = import_file(
            kind=job.resource,
            file=handle,
            filename=params.get("filename", ""),
            dry_run=params.get("dry_run", False),
            clear_empty=params.get("clear_empty", False),
            default_owner=None if actor is SYSTEM else actor,
            user=actor,
            progress=progress,
        )
    outcome["result"] = {"detail": result.summary(), **result.as_dict()}
    outcome["errors"] = list(result.file_errors)
    if not result.ok:
        if not result.file_errors:
            outcome["errors"] = [result.summary()]
        return JobStatus.FAILED
    outcome["progress"] = (result.rows, result.rows)
    return JobStatus.SUCCEEDED


def _run_export(job: Job, actor, progress: ProgressWriter, outcome: dict) -> str:
    with default_storage.open(job.input_file, "rb") as handle:
        query = pickle.loads(handle.read())  # written by job_export_start only, never by a client
    queryset = QuerySet(model=query.model, query=query)
    total = job.progress_total
    exported = export_queryset(
        kind=job.resource,
        queryset=queryset,
        fmt=job.params["format"],
        progress=lambda done: progress("exporting", done, total),
        user=actor,
    )
    outcome["result_file"] = default_storage.save(
        job_file_name(job, exported.filename), ContentFile(exported.content)
    )
    outcome["result"] = {
        "detail": f"{exported.rows} records exported.",
        "rows": exported.rows,
        "filename": exported.filename,
        "content_type": exported.content_type,
        "size": len(exported.content),
    }
    outcome["progress"] = (exported.rows, exported.rows)
    return JobStatus.SUCCEEDED


def jobs_requeue() -> list[int]:
    """Jobs still queued CRM_JOB_REQUEUE_AFTER seconds after they were started: the broker did not
    take their task (it was down). Queued again; a job that already runs is not run twice."""
    cutoff = timezone.now() - datetime.timedelta(seconds=settings.CRM_JOB_REQUEUE_AFTER)
    return list(
        Job.objects.filter(status=JobStatus.QUEUED, created_at__lt=cutoff).values_list("pk", flat=True)[:100]
    )
