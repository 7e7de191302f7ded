"""Nurturing sequences: ordered steps (email, task, wait, branch) that enrolled leads and contacts go
through, one step at a time, each enrollment with its state and its history."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower

from .account import Contact
from .base import TimeStampedModel, ValidatedModel
from .lead import Lead
from .messaging import EmailTemplate


class Sequence(TimeStampedModel):
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    is_active = models.BooleanField(default=True, help_text="An inactive sequence enrolls no one new.")
    consent_purpose = models.ForeignKey(
        "crm.ConsentPurpose",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="sequences",
        help_text="What its emails are for: a purpose that requires consent emails only those who gave "
        "it (the other steps still run).",
    )

    class Meta:
        ordering = ("name", "id")
        verbose_name = "sequence"
        constraints = [
            models.UniqueConstraint(
                Lower("name"),
                name="crm_sequence_name_ci_unique",
                violation_error_message="A sequence of this name exists already.",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class StepKind(models.TextChoices):
    EMAIL = "email", "Send an email template"
    TASK = "task", "Create a task (or a call)"
    WAIT = "wait", "Wait"
    BRANCH = "branch", "Branch on a condition"


class TaskType(models.TextChoices):
    TASK = "task", "Task"
    CALL = "call", "Call"


class ConditionOperator(models.TextChoices):
    EQUALS = "equals", "is"
    NOT_EQUALS = "not_equals", "is not"
    IS_EMPTY = "is_empty", "is empty"
    IS_NOT_EMPTY = "is_not_empty", "is not empty"
    GREATER_THAN = "greater_than", "is greater than"
    LESS_THAN = "less_than", "is less than"


class SequenceStep(ValidatedModel):
    """One step. A branch goes to the step at ``branch_to`` (a later position; none there: the end)
    when its condition holds, and to the next step otherwise."""

    sequence = models.ForeignKey(Sequence, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveSmallIntegerField(help_text="Steps run in this order.")
    kind = models.CharField(max_length=10, choices=StepKind.choices)
    email_template = models.ForeignKey(
        EmailTemplate, null=True, blank=True, on_delete=models.PROTECT, related_name="sequence_steps"
    )
    task_subject = models.CharField(max_length=200, blank=True)
    task_type = models.CharField(max_length=10, choices=TaskType.choices, default=TaskType.TASK, blank=True)
    task_due_days = models.PositiveSmallIntegerField(
        default=0, validators=[MaxValueValidator(365)], help_text="The task is due this many days later."
    )
    wait_days = models.PositiveSmallIntegerField(default=0, validators=[MaxValueValidator(365)])
    business_days = models.BooleanField(default=False, help_text="Count Monday to Friday only.")
    condition_field = models.CharField(max_length=40, blank=True)
    condition_operator = models.CharField(
        max_length=16, choices=ConditionOperator.choices, default=ConditionOperator.EQUALS, blank=True
    )
    condition_value = models.CharField(max_length=200, blank=True)
    branch_to = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="When the condition holds, go on at the step of this position (empty: end).",
    )

    class Meta:
        ordering = ("sequence", "position")
        verbose_name = "step"
        constraints = [
            models.UniqueConstraint(
                fields=["sequence", "position"],
                name="crm_sequencestep_position_unique",
                violation_error_message="Two steps of a sequence cannot share a position.",
            ),
            models.CheckConstraint(
                condition=~Q(kind="email") | Q(email_template__isnull=False),
                name="crm_sequencestep_email_has_template",
                violation_error_message="An email step needs an email template.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.position}. {self.describe()}"

    def describe(self) -> str:
        if self.kind == StepKind.EMAIL:
            return f"Email “{self.email_template}”" if self.email_template_id else "Email"
        if self.kind == StepKind.TASK:
            return f"{self.get_task_type_display()} “{self.task_subject}”"
        if self.kind == StepKind.WAIT:
            return f"Wait {self.wait_days} {'business ' if self.business_days else ''}day(s)"
        target = f"step {self.branch_to}" if self.branch_to else "the end"
        value = (
            "" if self.condition_operator in ("is_empty", "is_not_empty") else f" “{self.condition_value}”"
        )
        return f"If {self.condition_field} {self.get_condition_operator_display()}{value}, go to {target}"

    def clean(self):
        errors = {}
        if self.kind == StepKind.EMAIL and not self.email_template_id:
            errors["email_template"] = "An email step needs an email template."
        if self.kind == StepKind.TASK and not self.task_subject.strip():
            errors["task_subject"] = "A task step needs a subject."
        if self.kind == StepKind.WAIT and not self.wait_days:
            errors["wait_days"] = "A wait step waits at least one day."
        if self.kind == StepKind.BRANCH:
            from crm.sequences.conditions import CONDITION_FIELDS

            if self.condition_field not in CONDITION_FIELDS:
                errors["condition_field"] = (
                    f"Choose one of: {', '.join(sorted(CONDITION_FIELDS))}."
                    if self.condition_field
                    else "A branch needs a field to test."
                )
            if self.branch_to is not None and self.position is not None and self.branch_to <= self.position:
                errors["branch_to"] = "A branch goes forward: name a later position (or leave it empty)."
        if errors:
            raise ValidationError(errors)


class EnrollmentStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    COMPLETED = "completed", "Completed"
    STOPPED = "stopped", "Stopped"
    FAILED = "failed", "Failed"


class SequenceEnrollment(models.Model):
    """A lead or a contact going through a sequence. ``position`` is the next step to run and
    ``next_run_at`` when (empty once the enrollment ended)."""

    sequence = models.ForeignKey(Sequence, on_delete=models.CASCADE, related_name="enrollments")
    lead = models.ForeignKey(
        Lead, null=True, blank=True, on_delete=models.CASCADE, related_name="sequence_enrollments"
    )
    contact = models.ForeignKey(
        Contact, null=True, blank=True, on_delete=models.CASCADE, related_name="sequence_enrollments"
    )
    status = models.CharField(
        max_length=10, choices=EnrollmentStatus.choices, default=EnrollmentStatus.ACTIVE
    )
    position = models.PositiveSmallIntegerField(default=0, help_text="The next step to run.")
    next_run_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Failed tries of the current step.")
    last_error = models.TextField(blank=True)
    stop_reason = models.CharField(max_length=200, blank=True)
    enrolled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-id",)
        verbose_name = "sequence enrollment"
        indexes = [
            models.Index(fields=["next_run_at"], condition=Q(status="active"), name="crm_enrollment_due_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(lead__isnull=True, contact__isnull=False)
                | Q(lead__isnull=False, contact__isnull=True),
                name="crm_enrollment_one_record",
                violation_error_message="Enroll a lead or a contact.",
            ),
            models.UniqueConstraint(
                fields=["sequence", "lead"],
                condition=Q(status="active", lead__isnull=False),
                name="crm_enrollment_active_lead_unique",
                violation_error_message="This lead is in this sequence already.",
            ),
            models.UniqueConstraint(
                fields=["sequence", "contact"],
                condition=Q(status="active", contact__isnull=False),
                name="crm_enrollment_active_contact_unique",
                violation_error_message="This contact is in this sequence already.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.record} in {self.sequence}"

    @property
    def record(self):
        return self.lead if self.lead_id else self.contact


class EnrollmentEvent(models.Model):
    """The history of an enrollment: enrolled, each step run (or skipped, or failed), the end."""

    enrollment = models.ForeignKey(SequenceEnrollment, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField()
    position = models.PositiveSmallIntegerField(null=True, blank=True)
    kind = models.CharField(max_length=20)
    detail = models.TextField(blank=True)

    class Meta:
        ordering = ("enrollment", "id")
        verbose_name = "enrollment history entry"
        verbose_name_plural = "enrollment history"

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.kind} {self.detail}"
