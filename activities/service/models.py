"""Tickets, their thread of replies and internal notes, and the counter that numbers them."""

import datetime
import zoneinfo

from django.conf import settings
from django.contrib.postgres.search import SearchVectorField
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower

from crm.models import Account, AccountTier, Contact, Priority, SalesTeam, Tag, TimeStampedModel
from crm.models.base import ValidatedModel, audit_history
from sales.models import Opportunity


class TicketChannel(models.TextChoices):
    EMAIL = "email", "Email"
    PHONE = "phone", "Phone"
    WEB = "web", "Web"
    CHAT = "chat", "Chat"


class TicketType(models.TextChoices):
    QUESTION = "question", "Question"
    PROBLEM = "problem", "Problem"
    INCIDENT = "incident", "Incident"
    FEATURE_REQUEST = "feature_request", "Feature request"


class TicketStatus(models.TextChoices):
    NEW = "new", "New"
    OPEN = "open", "Open"
    PENDING_CUSTOMER = "pending_customer", "Pending customer"
    ON_HOLD = "on_hold", "On hold"
    RESOLVED = "resolved", "Resolved"
    CLOSED = "closed", "Closed"


# A ticket in these states is done with: no SLA clock runs, it is not in the backlog.
DONE_STATUSES = (TicketStatus.RESOLVED, TicketStatus.CLOSED)
OPEN_STATUSES = tuple(status for status in TicketStatus.values if status not in DONE_STATUSES)
# The condition the queues write (activities.service.queues), and their partial indexes' predicate:
# PostgreSQL uses a partial index only for a query that says the same.
OPEN_TICKET = ~Q(status__in=DONE_STATUSES)


def time_zone_validator(value: str) -> None:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationError(f"“{value}” is not a time zone (write one like Europe/Paris).") from exc


class WorkingCalendar(TimeStampedModel):
    """When the support team works: a time zone, hours on working days, holidays. SLA targets count
    only this time (a ticket that arrives on Friday evening is not late on Saturday)."""

    name = models.CharField(max_length=100, unique=True)
    time_zone = models.CharField(max_length=64, default="UTC", validators=[time_zone_validator])

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Weekday(models.IntegerChoices):
    MONDAY = 0, "Monday"
    TUESDAY = 1, "Tuesday"
    WEDNESDAY = 2, "Wednesday"
    THURSDAY = 3, "Thursday"
    FRIDAY = 4, "Friday"
    SATURDAY = 5, "Saturday"
    SUNDAY = 6, "Sunday"


class WorkingHours(ValidatedModel):
    """One span of working time on a weekday, in the calendar's time zone. An end of 00:00 means
    midnight at the end of the day. Spans of one day may not overlap (the services check it)."""

    calendar = models.ForeignKey(WorkingCalendar, on_delete=models.CASCADE, related_name="hours")
    weekday = models.PositiveSmallIntegerField(choices=Weekday.choices)
    start = models.TimeField()
    end = models.TimeField(help_text="00:00: until midnight.")

    class Meta:
        ordering = ["calendar", "weekday", "start"]
        verbose_name_plural = "working hours"

    def __str__(self) -> str:
        return f"{self.get_weekday_display()} {self.start:%H:%M}–{self.end:%H:%M}"

    def clean(self):
        super().clean()
        spans = self.start is not None and self.end is not None and self.end != datetime.time(0)
        if spans and self.end <= self.start:
            raise ValidationError({"end": "The span must end after it starts (00:00: at midnight)."})


class Holiday(ValidatedModel):
    """A day off in a calendar's time zone: no SLA time counts on it."""

    calendar = models.ForeignKey(WorkingCalendar, on_delete=models.CASCADE, related_name="holidays")
    date = models.DateField()
    name = models.CharField(max_length=100, blank=True)

    class Meta:
        ordering = ["calendar", "date"]
        constraints = [
            models.UniqueConstraint(fields=["calendar", "date"], name="activities_holiday_calendar_date"),
        ]

    def __str__(self) -> str:
        return f"{self.date} {self.name}".strip()


class SlaPolicy(TimeStampedModel):
    """Targets for a ticket's first response and resolution, in business minutes of a calendar.

    A ticket gets the most specific active policy for its priority and its account's tier: both
    matching, then the priority alone (any tier), then the tier alone, then a policy for any."""

    name = models.CharField(max_length=100, unique=True)
    priority = models.CharField(max_length=10, choices=Priority.choices, blank=True, help_text="Empty: any.")
    account_tier = models.CharField(
        max_length=12, choices=AccountTier.choices, blank=True, help_text="Empty: any tier."
    )
    calendar = models.ForeignKey(
        WorkingCalendar,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="policies",
        help_text="Empty: around the clock.",
    )
    first_response_minutes = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(525_600)]
    )
    resolution_minutes = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(525_600)]
    )
    warn_before_minutes = models.PositiveIntegerField(
        default=60,
        validators=[MaxValueValidator(525_600)],
        help_text="The assignee is warned when this much business time is left.",
    )
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "SLA policy"
        verbose_name_plural = "SLA policies"
        constraints = [
            models.UniqueConstraint(
                fields=["priority", "account_tier"],
                condition=Q(is_active=True),
                name="activities_slapolicy_one_active_per_scope",
                violation_error_message="An active policy already covers this priority and tier.",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self):
        super().clean()
        if self.first_response_minutes is None and self.resolution_minutes is None:
            raise ValidationError("Give a first-response target, a resolution target or both.")


class SlaState(models.TextChoices):
    NONE = "none", "No SLA"
    ON_TRACK = "on_track", "On track"
    AT_RISK = "at_risk", "At risk"
    BREACHED = "breached", "Breached"
    PAUSED = "paused", "Paused"
    MET = "met", "Met"


class TicketCounter(models.Model):
    """The last ticket number given. Its one row is locked while a ticket is numbered, in the ticket's
    own transaction: a rolled-back ticket gives its number back, so the numbers have no gaps."""

    last_number = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return f"T-{self.last_number:06d}"


class Ticket(TimeStampedModel):
    number = models.CharField(max_length=20, unique=True, editable=False)
    subject = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    account = models.ForeignKey(
        Account, on_delete=models.PROTECT, null=True, blank=True, related_name="tickets"
    )
    contact = models.ForeignKey(
        Contact, on_delete=models.SET_NULL, null=True, blank=True, related_name="tickets"
    )
    requester_email = models.EmailField(
        blank=True, help_text="Who asked, when not (yet) a contact: the web form's or the email's sender."
    )
    channel = models.CharField(max_length=10, choices=TicketChannel.choices, default=TicketChannel.EMAIL)
    ticket_type = models.CharField(max_length=20, choices=TicketType.choices, default=TicketType.QUESTION)
    priority = models.CharField(max_length=10, choices=Priority.choices, default=Priority.MEDIUM)
    status = models.CharField(max_length=20, choices=TicketStatus.choices, default=TicketStatus.NEW)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="assigned_tickets",
    )
    team = models.ForeignKey(
        SalesTeam,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="tickets",
        help_text="The queue: the team whose members work it and whose manager answers for it.",
    )
    tags = models.ManyToManyField(Tag, blank=True, related_name="tickets")
    opportunity = models.ForeignKey(
        Opportunity, on_delete=models.SET_NULL, null=True, blank=True, related_name="tickets"
    )
    first_response_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="When an agent first replied to the customer."
    )
    resolved_at = models.DateTimeField(null=True, blank=True, editable=False)
    closed_at = models.DateTimeField(null=True, blank=True, editable=False)

    merged_into = models.ForeignKey(
        "self",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        editable=False,
        related_name="merged_tickets",
        help_text="The ticket this duplicate was merged into (its thread moved there; it is closed).",
    )

    # The SLA clock (activities.service.sla): derived by the services, never written by hand.
    sla_policy = models.ForeignKey(
        SlaPolicy, on_delete=models.SET_NULL, null=True, blank=True, editable=False, related_name="tickets"
    )
    first_response_due = models.DateTimeField(null=True, blank=True, editable=False)
    resolution_due = models.DateTimeField(null=True, blank=True, editable=False)
    sla_paused_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="Since when the clock stands (pending customer)."
    )
    sla_paused_seconds = models.PositiveBigIntegerField(
        default=0, editable=False, help_text="Business seconds the clock stood, added to the targets."
    )
    sla_due_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="The next deadline while the clock runs."
    )
    sla_warn_at = models.DateTimeField(null=True, blank=True, editable=False)
    sla_warned_at = models.DateTimeField(null=True, blank=True, editable=False)
    sla_breached_at = models.DateTimeField(null=True, blank=True, editable=False)
    first_response_met = models.BooleanField(null=True, editable=False)
    resolution_met = models.BooleanField(null=True, editable=False)

    # Who changed what and when. The running clock is left out: the SLA scan and every pause move it,
    # and it follows from the status changes the trail keeps (its deadlines and results are kept).
    history = audit_history(
        derived_fields=(
            "sla_paused_at",
            "sla_paused_seconds",
            "sla_due_at",
            "sla_warn_at",
            "sla_warned_at",
            "sla_breached_at",
        )
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # The SLA scan reads only the clocks that still have a warning or a breach to tell.
            models.Index(
                fields=["sla_warn_at"], condition=Q(sla_warned_at__isnull=True), name="ticket_sla_warn"
            ),
            models.Index(
                fields=["sla_due_at"], condition=Q(sla_breached_at__isnull=True), name="ticket_sla_due"
            ),
            models.Index(fields=["assignee", "status"], name="ticket_assignee_status"),
            models.Index(fields=["team", "status"], name="ticket_team_status"),
            models.Index(fields=["status", "created_at"], name="ticket_status_created"),
            # The work queues read open tickets only (a fifth of them or less), newest first, and count
            # them: partial indexes of the open tickets, covering what the visibility rule reads
            # (assignee, team) so that a count is an index-only scan.
            models.Index(
                fields=["assignee", "-created_at"],
                include=["team"],
                condition=OPEN_TICKET,
                name="ticket_open_assignee",
            ),
            models.Index(
                fields=["-created_at"],
                include=["team", "assignee"],
                condition=OPEN_TICKET & Q(assignee__isnull=True),
                name="ticket_open_unassigned",
            ),
            models.Index(
                fields=["sla_due_at"],
                include=["assignee", "team"],
                condition=OPEN_TICKET,
                name="ticket_open_due",
            ),
            # The board: its open columns by deadline, its done ones by when they were done.
            models.Index(
                fields=["status", "sla_due_at", "created_at"],
                include=["assignee", "team"],
                condition=OPEN_TICKET,
                name="ticket_board_open",
            ),
            models.Index(
                fields=["status", "-resolved_at"],
                include=["assignee", "team"],
                condition=Q(status__in=DONE_STATUSES),
                name="ticket_board_done",
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=~Q(status__in=DONE_STATUSES) | Q(resolved_at__isnull=False),
                name="activities_ticket_done_has_resolved_at",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.number} {self.subject}"

    @property
    def is_open(self) -> bool:
        return self.status not in DONE_STATUSES


class TicketMessageKind(models.TextChoices):
    REPLY = "reply", "Public reply"
    NOTE = "note", "Internal note"


class TicketMessage(ValidatedModel):
    """One entry of a ticket's thread: a public reply (to or from the customer) or an internal note
    (agents only). Files are kept on it through the files registry (record type ``ticket_message``)."""

    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="messages")
    kind = models.CharField(max_length=10, choices=TicketMessageKind.choices, default=TicketMessageKind.REPLY)
    body = models.TextField()
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    from_customer = models.BooleanField(default=False, help_text="Written by the customer (email, web form).")
    sender_email = models.EmailField(blank=True)
    message_id = models.CharField(
        max_length=255, blank=True, db_index=True, help_text="The RFC 5322 Message-ID, to thread replies."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["ticket", "created_at"], name="ticket_message_thread")]
        constraints = [
            models.CheckConstraint(
                condition=Q(from_customer=False) | Q(kind=TicketMessageKind.REPLY),
                name="activities_ticketmessage_customer_writes_replies",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} on {self.ticket_id}"


# --- knowledge base ------------------------------------------------------------------------------------


class ArticleCategory(TimeStampedModel):
    """A shelf of the knowledge base (Billing, Installation...)."""

    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "article categories"
        constraints = [
            models.UniqueConstraint(
                Lower("name"),
                name="activities_articlecategory_name_ci",
                violation_error_message="A category of this name exists already.",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class ArticleStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    PUBLISHED = "published", "Published"
    ARCHIVED = "archived", "Archived"


class Article(TimeStampedModel):
    """A knowledge-base article. Agents read drafts and write them; everyone else (and customers, by its
    public link) reads it once published. Every published text is kept as an ArticleVersion."""

    title = models.CharField(max_length=200)
    body = models.TextField()
    keywords = models.CharField(
        max_length=255, blank=True, help_text="Other words customers use for it; searched like the title."
    )
    category = models.ForeignKey(
        ArticleCategory, on_delete=models.PROTECT, null=True, blank=True, related_name="articles"
    )
    status = models.CharField(max_length=10, choices=ArticleStatus.choices, default=ArticleStatus.DRAFT)
    version = models.PositiveIntegerField(
        default=0, editable=False, help_text="The number of the published version (0: never published)."
    )
    published_at = models.DateTimeField(null=True, blank=True, editable=False)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        editable=False,
        related_name="+",
    )
    # The words of the title and keywords (weight A) and the body (B), for the full-text search. Kept
    # by a trigger on PostgreSQL (every insert and update, bulk ones too; migration 0021), with its GIN
    # index; a plain column, always empty, elsewhere (the search scans instead): activities.service.kb.
    search_vector = SearchVectorField(null=True, editable=False)

    class Meta:
        ordering = ["title", "id"]
        indexes = [models.Index(fields=["status", "category"], name="article_status_category")]
        constraints = [
            models.CheckConstraint(
                condition=~Q(status=ArticleStatus.PUBLISHED) | Q(version__gte=1, published_at__isnull=False),
                name="activities_article_published_has_version",
            ),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def is_published(self) -> bool:
        return self.status == ArticleStatus.PUBLISHED


class ArticleVersion(ValidatedModel):
    """The text of an article as it was published: one row per publication and per edit of a published
    article, numbered 1, 2, 3... Never changed afterwards."""

    article = models.ForeignKey(Article, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    title = models.CharField(max_length=200)
    body = models.TextField()
    keywords = models.CharField(max_length=255, blank=True)
    category_name = models.CharField(max_length=100, blank=True)
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    published_at = models.DateTimeField()

    class Meta:
        ordering = ["article", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["article", "number"], name="activities_articleversion_number"),
        ]

    def __str__(self) -> str:
        return f"{self.title} (v{self.number})"


# --- satisfaction ----------------------------------------------------------------------------------------


class SatisfactionSurvey(ValidatedModel):
    """The rating asked of a ticket's contact when it is first resolved: one per ticket, answered once
    through its signed link. Who worked it (agent, team) is kept as it was at resolution."""

    ticket = models.OneToOneField(Ticket, on_delete=models.CASCADE, related_name="survey")
    contact = models.ForeignKey(Contact, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    email = models.EmailField(help_text="Where the link was sent.")
    agent = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    team = models.ForeignKey(SalesTeam, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    sent_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    rating = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(5)]
    )
    comment = models.TextField(blank=True)
    answered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-sent_at", "-id"]
        indexes = [models.Index(fields=["answered_at"], name="survey_answered")]
        constraints = [
            models.CheckConstraint(
                condition=Q(rating__isnull=True, answered_at__isnull=True)
                | Q(rating__gte=1, rating__lte=5, answered_at__isnull=False),
                name="activities_survey_rating_1_to_5_when_answered",
            ),
        ]

    def __str__(self) -> str:
        return f"Survey of {self.ticket_id}"
