"""Workflow automation rules and their run log: a trigger, conditions and actions on a kind of record.

The trigger, the conditions and the actions are JSON checked against the registered models and
actions when a rule is saved (``crm.automation.services``), so a rule never names a field that does
not exist; the engine (``crm.automation.engine``) runs them.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q

from .base import TimeStampedModel


class TriggerKind(models.TextChoices):
    EVENT = "event", "A record event (created, updated, stage changed, won...)"
    TIME = "time", "A time condition (N days before/after a date, N days without activity)"
    SCHEDULE = "schedule", "A schedule (cron)"
    WEBHOOK = "webhook", "An inbound webhook (a secret URL of the rule)"
    MANUAL = "manual", "Manual (run on chosen records)"


class OnError(models.TextChoices):
    CONTINUE = "continue", "Continue with the next actions"
    STOP = "stop", "Stop the remaining actions"


class AutomationRule(TimeStampedModel):
    """When ``trigger`` happens to a record of ``model`` and ``conditions`` hold, run ``actions``."""

    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    model = models.CharField(max_length=64, help_text="The kind of record: crm.Lead, sales.Opportunity...")
    trigger_kind = models.CharField(max_length=16, choices=TriggerKind.choices, default=TriggerKind.EVENT)
    trigger = models.JSONField(default=dict, blank=True)
    conditions = models.JSONField(default=dict, blank=True)
    actions = models.JSONField(default=list, blank=True)
    on_error = models.CharField(max_length=10, choices=OnError.choices, default=OnError.CONTINUE)
    order = models.PositiveIntegerField(default=100, help_text="Rules run in this order (smallest first).")
    is_active = models.BooleanField(default=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Actions act as this user (their rights apply). Empty: the system.",
    )
    webhook_token = models.CharField(max_length=64, blank=True, editable=False)
    # Time and schedule rules: the end of the last scan (thresholds crossed since then fire).
    last_scanned_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Round-robin positions per team, kept on the rule (locked with it while assigning).
    state = models.JSONField(default=dict, blank=True, editable=False)

    class Meta:
        ordering = ("order", "id")
        verbose_name = "automation rule"
        indexes = [
            models.Index(
                fields=["model", "trigger_kind"], condition=Q(is_active=True), name="crm_autorule_active"
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["webhook_token"], condition=~Q(webhook_token=""), name="crm_autorule_token_unique"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    RETRYING = "retrying", "Failed, will retry"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    STOPPED = "stopped", "Stopped (loop protection)"


class AutomationRun(models.Model):
    """One execution of a rule on one record: the trigger, each action's outcome, timing, errors."""

    rule = models.ForeignKey(AutomationRule, on_delete=models.CASCADE, related_name="runs")
    model = models.CharField(max_length=64)
    record_id = models.BigIntegerField(null=True, blank=True)
    trigger = models.CharField(max_length=120, help_text="lead.updated, time, schedule, webhook, manual")
    # One run per rule and cause (an event, a threshold crossing, a schedule slot): at least once in,
    # exactly once out.
    dedup_key = models.CharField(max_length=200)
    event_id = models.UUIDField(null=True, blank=True)
    chain = models.JSONField(default=list, blank=True, help_text="Rules whose actions led here, in order.")
    record = models.JSONField(default=dict, blank=True, help_text="The record as the trigger saw it.")
    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.QUEUED)
    outcomes = models.JSONField(default=list, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ("-id",)
        verbose_name = "automation run"
        constraints = [
            models.UniqueConstraint(fields=["rule", "dedup_key"], name="crm_autorun_once"),
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(status__in=["queued", "running", "retrying"]),
                name="crm_autorun_due_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.rule} on {self.model} #{self.record_id}"
