"""Marketing: segments (saved filters or hand-picked lists of records) and campaigns with their members."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower

from .account import Account, Contact
from .base import TimeStampedModel, ValidatedModel, non_negative_constraint
from .consent import ConsentPurpose
from .lead import Lead
from .messaging import EmailTemplate


class SegmentEntity(models.TextChoices):
    LEAD = "lead", "Leads"
    CONTACT = "contact", "Contacts"
    ACCOUNT = "account", "Accounts"


class SegmentKind(models.TextChoices):
    DYNAMIC = "dynamic", "Dynamic (a saved filter)"
    STATIC = "static", "Static (members added by hand)"


class Segment(TimeStampedModel):
    """A set of leads, contacts or accounts: either the records a filter matches now (``definition``
    holds the list's query parameters, e.g. ``{"priority": "high", "tag": "3"}``) or a static list."""

    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    entity = models.CharField(max_length=10, choices=SegmentEntity.choices, default=SegmentEntity.LEAD)
    kind = models.CharField(max_length=10, choices=SegmentKind.choices, default=SegmentKind.DYNAMIC)
    definition = models.JSONField(
        default=dict,
        blank=True,
        help_text='The list filters, as the API list takes them: {"priority": "high", "source": "website", '
        '"tag": "3", "search": "acme"}. Dynamic segments only.',
    )
    leads = models.ManyToManyField(Lead, blank=True, related_name="static_segments")
    contacts = models.ManyToManyField(Contact, blank=True, related_name="static_segments")
    accounts = models.ManyToManyField(Account, blank=True, related_name="static_segments")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    constraint_error_fields = {"name_taken": "name"}

    class Meta:
        ordering = ("name", "id")
        constraints = [
            models.UniqueConstraint(
                Lower("name"),
                name="crm_segment_name_ci_unique",
                violation_error_code="name_taken",
                violation_error_message="A segment of this name exists already.",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class CampaignType(models.TextChoices):
    EMAIL = "email", "Email"
    EVENT = "event", "Event"
    WEBINAR = "webinar", "Webinar"
    ADVERTISING = "advertising", "Advertising"
    OTHER = "other", "Other"


class CampaignStatus(models.TextChoices):
    PLANNED = "planned", "Planned"
    ACTIVE = "active", "Active"
    COMPLETED = "completed", "Completed"
    CANCELLED = "cancelled", "Cancelled"


class Campaign(TimeStampedModel):
    name = models.CharField(max_length=200)
    campaign_type = models.CharField(max_length=12, choices=CampaignType.choices, default=CampaignType.EMAIL)
    status = models.CharField(max_length=10, choices=CampaignStatus.choices, default=CampaignStatus.PLANNED)
    start_date = models.DateField(null=True, blank=True)
    end_date = models.DateField(null=True, blank=True)
    budget = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    actual_cost = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    expected_revenue = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    description = models.TextField(blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The email it sends (an email campaign): the template, and the audience besides its members.
    email_template = models.ForeignKey(
        EmailTemplate, null=True, blank=True, on_delete=models.PROTECT, related_name="campaigns"
    )
    segment = models.ForeignKey(
        Segment,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="campaigns",
        help_text="Sending adds the leads or contacts this segment holds then to the members.",
    )
    consent_purpose = models.ForeignKey(
        ConsentPurpose,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="campaigns",
        help_text="What the email is for: when the purpose requires consent, only members who gave it "
        "(and have not withdrawn it) receive the email.",
    )
    track_opens = models.BooleanField(default=False, help_text="Count opens (a signed image link).")
    track_clicks = models.BooleanField(
        default=False, help_text="Count clicks (links go through a signed URL)."
    )
    send_started_at = models.DateTimeField(null=True, blank=True, editable=False)

    constraint_error_fields = {
        "name_taken": "name",
        "budget_negative": "budget",
        "actual_cost_negative": "actual_cost",
        "expected_revenue_negative": "expected_revenue",
    }

    class Meta:
        ordering = ("-start_date", "name", "id")
        constraints = [
            models.UniqueConstraint(
                Lower("name"),
                name="crm_campaign_name_ci_unique",
                violation_error_code="name_taken",
                violation_error_message="A campaign of this name exists already.",
            ),
            non_negative_constraint("crm_campaign", "budget"),
            non_negative_constraint("crm_campaign", "actual_cost"),
            non_negative_constraint("crm_campaign", "expected_revenue"),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self):
        super().clean()
        if self.start_date and self.end_date and self.end_date < self.start_date:
            raise ValidationError({"end_date": "The campaign cannot end before it starts."})


class CampaignMemberStatus(models.TextChoices):
    PLANNED = "planned", "Planned"
    SENT = "sent", "Sent"
    OPENED = "opened", "Opened"
    CLICKED = "clicked", "Clicked"
    RESPONDED = "responded", "Responded"
    UNSUBSCRIBED = "unsubscribed", "Unsubscribed"
    BOUNCED = "bounced", "Bounced"


class SendStatus(models.TextChoices):
    NOT_SENT = "", "Not sent"
    PENDING = "pending", "Waiting to be sent"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"
    EXCLUDED = "excluded", "Excluded"


class ExclusionReason(models.TextChoices):
    NO_EMAIL = "no_email", "No email address"
    OPTED_OUT = "opted_out", "Opted out of email"
    UNSUBSCRIBED = "unsubscribed", "Unsubscribed"
    EMAIL_OFF = "email_off", "Email turned off in their preferences"
    NO_CONSENT = "no_consent", "No consent for the campaign's purpose"
    DUPLICATE = "duplicate", "Address already emailed by this campaign"


class CampaignMember(TimeStampedModel):
    """A lead or a contact a campaign reaches, with how far it got, and its line of the send log."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="members")
    lead = models.ForeignKey(
        Lead, null=True, blank=True, on_delete=models.CASCADE, related_name="campaign_memberships"
    )
    contact = models.ForeignKey(
        Contact, null=True, blank=True, on_delete=models.CASCADE, related_name="campaign_memberships"
    )
    status = models.CharField(
        max_length=12, choices=CampaignMemberStatus.choices, default=CampaignMemberStatus.PLANNED
    )
    # The send log: where and when the campaign's email went, or why it did not.
    send_status = models.CharField(max_length=10, choices=SendStatus.choices, blank=True, default="")
    excluded_reason = models.CharField(max_length=14, choices=ExclusionReason.choices, blank=True)
    email = models.EmailField(blank=True, help_text="The address the campaign's email went to.")
    sent_at = models.DateTimeField(null=True, blank=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    clicked_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ("id",)
        indexes = [
            models.Index(
                fields=["campaign", "id"], condition=Q(send_status="pending"), name="crm_cmember_pending_idx"
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=(Q(lead__isnull=False) & Q(contact__isnull=True))
                | (Q(lead__isnull=True) & Q(contact__isnull=False)),
                name="crm_campaignmember_one_record",
                violation_error_message="A member is a lead or a contact (one of them).",
            ),
            models.UniqueConstraint(
                fields=["campaign", "lead"],
                condition=Q(lead__isnull=False),
                name="crm_campaignmember_lead_once",
                violation_error_message="This lead is a member of the campaign already.",
            ),
            models.UniqueConstraint(
                fields=["campaign", "contact"],
                condition=Q(contact__isnull=False),
                name="crm_campaignmember_contact_once",
                violation_error_message="This contact is a member of the campaign already.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.campaign}: {self.lead or self.contact}"


class EmailUnsubscribe(ValidatedModel):
    """An address that asked for no more marketing email (the campaign link or a mail client's
    one-click button): never sent a campaign again, and treated as opted out by every sender."""

    email = models.EmailField(unique=True, help_text="Lowercased.")
    campaign = models.ForeignKey(Campaign, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    one_click = models.BooleanField(default=False, help_text="From the mail client's button (RFC 8058).")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("-id",)
        verbose_name = "unsubscribed address"

    def __str__(self) -> str:
        return self.email
