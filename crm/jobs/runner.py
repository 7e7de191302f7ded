"""Running a job: claim it, run the import or export through the engine, record progress and outcome.

The import holds one transaction from its first read to its commit (all or nothing), so progress is
written on a connection of its own, in short transactions, for the admin and the API to see meanwhile.
On SQLite a writer locks the whole file: progress is then best effort (a write that would wait is
skipped) and the final counts are written when the job ends.
"""

import contextlib
import copy
import datetime
import logging
import os
import pickle
import threading
import time

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.db.models import F, Q, QuerySet
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
            self.connection = _own_connection()
        return self.connection

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()


def _own_connection():
    """A connection of its own, in autocommit, beside the job's (which holds the import's transaction)."""
    settings_dict = copy.deepcopy(connections[DEFAULT_DB_ALIAS].settings_dict)
    if settings_dict["ENGINE"].endswith("sqlite3"):
        settings_dict.setdefault("OPTIONS", {})["timeout"] = 0.05  # never hold the job up
    backend = load_backend(settings_dict["ENGINE"])
    return backend.DatabaseWrapper(settings_dict, DEFAULT_DB_ALIAS)


def _leases() -> bool:
    """Leases need a heartbeat written beside the job's own transaction. SQLite locks the whole file
    for the import's writer, so there a running job keeps its worker until it ends (or is failed by
    hand); the embedded mode runs jobs in the web process anyway."""
    return connections[DEFAULT_DB_ALIAS].vendor != "sqlite"


class Heartbeat:
    """While a job runs, a thread writes its ``heartbeat_at`` every CRM_JOB_HEARTBEAT seconds on a
    connection of its own. The thread lives as long as the worker process: a killed worker stops
    beating, and the sweep runs the job again once CRM_JOB_LEASE seconds have passed."""

    def __init__(self, job: Job):
        self.pk, self.attempt = job.pk, job.attempts
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._beat, name=f"job-{job.pk}-heartbeat", daemon=True)

    def __enter__(self) -> "Heartbeat":
        if _leases():
            self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stopped.set()
        if self.thread.is_alive():
            self.thread.join(10)

    def _beat(self) -> None:
        connection = _own_connection()
        try:
            while not self.stopped.wait(settings.CRM_JOB_HEARTBEAT):
                try:
                    with connection.cursor() as cursor:
                        cursor.execute(
                            f"UPDATE {Job._meta.db_table} SET heartbeat_at = %s "
                            "WHERE id = %s AND status = %s AND attempts = %s",
                            [timezone.now(), self.pk, JobStatus.RUNNING, self.attempt],
                        )
                except DatabaseError as exc:
                    logger.warning("Heartbeat of job %s not written (%s)", self.pk, exc)
        finally:
            connection.close()


def job_claim(pk: int) -> Job | None:
    """queued → running, once: a task delivered twice (at least once) runs the job once."""
    now = timezone.now()
    claimed = Job.objects.filter(pk=pk, status=JobStatus.QUEUED).update(
        status=JobStatus.RUNNING, started_at=now, heartbeat_at=now, attempts=F("attempts") + 1
    )
    return Job.objects.select_related("created_by").get(pk=pk) if claimed else None


def job_run(pk: int) -> str:
    """Run job ``pk`` if it is still queued; returns its final status (``skipped`` if not queued)."""
    job = job_claim(pk)
    if job is None:
        return "skipped"
    progress = ProgressWriter(job)
    outcome = {"result": {}, "errors": [], "result_file": ""}
    with Heartbeat(job):
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
    done, total = outcome.pop("progress", (None, None))
    fields = {"status": status, "finished_at": timezone.now(), "input_file": "", **outcome}
    if done is not None:
        fields.update(phase="done", progress_done=done, progress_total=max(done, total))
    # Only the run that holds the lease ends the job: one that lost it (its heartbeat stalled past
    # the lease) leaves the job, and its input, to the run that took over.
    if not Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING, attempts=job.attempts).update(**fields):
        logger.warning("Job %s: run %s lost its lease; its outcome is dropped", job.pk, job.attempts)
        if outcome["result_file"]:
            default_storage.delete(outcome["result_file"])
        return "superseded"
    if job.input_file:
        default_storage.delete(job.input_file)
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


def jobs_reclaim() -> list[int]:
    """Running jobs whose worker stopped beating for CRM_JOB_LEASE seconds (killed, out of memory, its
    machine gone): queued again, or failed once they have been started CRM_JOB_MAX_ATTEMPTS times.
    A run rolled back with its worker (an import is one transaction), so running it again is safe."""
    if not _leases():
        return []
    now = timezone.now()
    cutoff = now - datetime.timedelta(seconds=settings.CRM_JOB_LEASE)
    stale = Job.objects.filter(
        Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, started_at__lt=cutoff),
        status=JobStatus.RUNNING,
    ).values_list("pk", "attempts", "input_file")[:100]
    requeued = []
    for pk, attempts, input_file in stale:
        lost = Job.objects.filter(pk=pk, status=JobStatus.RUNNING, attempts=attempts)
        if attempts >= settings.CRM_JOB_MAX_ATTEMPTS:
            failed = lost.update(
                status=JobStatus.FAILED,
                finished_at=now,
                input_file="",
                errors=[
                    f"The worker running this job stopped {attempts} times before it finished; "
                    "it was not run again. Try a smaller file, or ask an administrator to check the workers."
                ],
            )
            if failed and input_file:
                default_storage.delete(input_file)
            logger.error("Job %s failed: its worker stopped %s times", pk, attempts)
        elif lost.update(status=JobStatus.QUEUED, phase="", progress_done=0):
            logger.warning("Job %s lost its worker (run %s); queued again", pk, attempts)
            requeued.append(pk)
    return requeued


def jobs_clean_up() -> int:
    """Finished jobs older than CRM_JOB_RETENTION_DAYS days go, with their files; returns how many."""
    cutoff = timezone.now() - datetime.timedelta(days=settings.CRM_JOB_RETENTION_DAYS)
    old = Job.objects.filter(status__in=(JobStatus.SUCCEEDED, JobStatus.FAILED), finished_at__lt=cutoff)
    removed = 0
    while batch := list(old.values_list("pk", "input_file", "result_file")[:500]):
        for pk, *names in batch:
            for name in filter(None, names):
                default_storage.delete(name)
            _remove_folder(job_file_name(Job(pk=pk), ""))
        removed += Job.objects.filter(pk__in=[pk for pk, *_ in batch]).delete()[0]
    return removed


def _remove_folder(name: str) -> None:
    """The job's folder, when the storage has folders and it is empty."""
    try:
        path = default_storage.path(name)
    except NotImplementedError:
        return
    with contextlib.suppress(OSError):
        os.rmdir(path)


def jobs_requeue() -> list[int]:
    """Jobs still queued CRM_JOB_REQUEUE_AFTER seconds after they were started: the broker did not
    take their task (it was down). Queued again; a job that already runs is not run twice."""
    cutoff = timezone.now() - datetime.timedelta(seconds=settings.CRM_JOB_REQUEUE_AFTER)
    return list(
        Job.objects.filter(status=JobStatus.QUEUED, created_at__lt=cutoff).values_list("pk", flat=True)[:100]
    )
