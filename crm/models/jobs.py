"""Background jobs: a long import or export that a worker runs while the person who asked watches."""

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import Q


class JobKind(models.TextChoices):
    IMPORT = "import", "Import"
    EXPORT = "export", "Export"


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class Job(models.Model):
    """One import or export run by a worker (or, without a broker, in the web process after commit).

    ``params`` holds what the run needs (file name, format, dry run...); ``input_file`` is the stored
    upload (imports) or query (exports), removed once the job ends; ``result`` is the import's report
    (counts and every bad row) or the export's file facts, and ``result_file`` the stored export.
    Progress is written from the worker in short transactions of their own, so it shows while the
    import's own transaction is still open.
    """

    kind = models.CharField(max_length=16, choices=JobKind.choices)
    resource = models.CharField(max_length=32, help_text="What is imported or exported: leads, contacts...")
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED)
    phase = models.CharField(max_length=32, blank=True, help_text="What the job is doing: validating...")
    progress_done = models.PositiveBigIntegerField(default=0)
    progress_total = models.PositiveBigIntegerField(default=0)
    params = models.JSONField(default=dict, encoder=DjangoJSONEncoder)
    input_file = models.CharField(max_length=300, blank=True)
    result = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    result_file = models.CharField(max_length=300, blank=True)
    errors = models.JSONField(default=list, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # The running worker's lease: it writes heartbeat_at every CRM_JOB_HEARTBEAT seconds; a job whose
    # heartbeat is older than CRM_JOB_LEASE seconds lost its worker (killed) and is run again, up to
    # CRM_JOB_MAX_ATTEMPTS runs. ``attempts`` counts the runs, so a late run cannot overwrite a newer one.
    heartbeat_at = models.DateTimeField(null=True, blank=True, editable=False)
    attempts = models.PositiveSmallIntegerField(default=0, editable=False)

    class Meta:
        ordering = ("-id",)
        verbose_name = "job"
        indexes = [
            models.Index(fields=["created_by", "-id"], name="crm_job_created_by_idx"),
            # The sweep looks for jobs still queued (a broker that was down when they were started).
            models.Index(fields=["created_at"], condition=Q(status="queued"), name="crm_job_queued_idx"),
            # ... and for running jobs whose worker stopped beating, and finished jobs past retention.
            models.Index(fields=["heartbeat_at"], condition=Q(status="running"), name="crm_job_running_idx"),
            models.Index(
                fields=["finished_at"],
                condition=Q(status__in=["succeeded", "failed"]),
                name="crm_job_finished_idx",
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(progress_done__lte=models.F("progress_total")) | Q(progress_total=0),
                name="crm_job_progress_within_total",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} of {self.resource} #{self.pk}"

    @property
    def finished(self) -> bool:
        return self.status in (JobStatus.SUCCEEDED, JobStatus.FAILED)

    @property
    def percent(self) -> int:
        if self.status == JobStatus.SUCCEEDED:
            return 100
        if not self.progress_total:
            return 0
        return min(100, self.progress_done * 100 // self.progress_total)
