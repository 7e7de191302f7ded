"""Consent and communication preferences of a person (a lead or a contact): what they agreed to, on
which lawful basis, and by which channels they may be reached."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Lower
from django.utils import timezone

from .account import Contact
from .base import TimeStampedModel, audit_history
from .lead import Lead


class LawfulBasis(models.TextChoices):
    """The six lawful bases of processing (GDPR article 6(1))."""

    CONSENT = "consent", "Consent"
    CONTRACT = "contract", "Contract"
    LEGAL_OBLIGATION = "legal_obligation", "Legal obligation"
    VITAL_INTERESTS = "vital_interests", "Vital interests"
    PUBLIC_TASK = "public_task", "Public task"
    LEGITIMATE_INTERESTS = "legitimate_interests", "Legitimate interests"


class ConsentSource(models.TextChoices):
    WEB_FORM = "web_form", "Web form"
    EMAIL = "email", "Email"
    PHONE = "phone", "Phone call"
    IN_PERSON = "in_person", "In person"
    PAPER = "paper", "Paper form"
    IMPORT = "import", "Import"
    PREFERENCE_CENTRE = "preference_centre", "Preference centre link"
    OTHER = "other", "Other"


class Channel(models.TextChoices):
    EMAIL = "email", "Email"
    PHONE = "phone", "Phone"
    SMS = "sms", "SMS"
    POST = "post", "Post"


def _one_person(prefix: str) -> models.CheckConstraint:
    return models.CheckConstraint(
        condition=(Q(lead__isnull=False) & Q(contact__isnull=True))
        | (Q(lead__isnull=True) & Q(contact__isnull=False)),
        name=f"{prefix}_one_person",
        violation_error_code="one_person",
        violation_error_message="It belongs to a lead or to a contact (exactly one of them).",
    )


class ConsentPurpose(TimeStampedModel):
    """What personal data is used for ("Newsletter", "Event invitations"). A purpose that
    ``requires_consent`` reaches a person only with their consent on record (lawful basis: consent)."""

    name = models.CharField(max_length=120)
    description = models.TextField(blank=True, help_text="Shown to the person on the preference page.")
    requires_consent = models.BooleanField(
        default=True,
        help_text="Only people who consented (and have not withdrawn) are reached for this purpose.",
    )
    is_active = models.BooleanField(default=True, help_text="Inactive purposes are not offered any more.")

    history = audit_history()
    constraint_error_fields = {"name_taken": "name"}

    class Meta:
        ordering = ("name", "id")
        constraints = [
            models.UniqueConstraint(
                Lower("name"),
                name="crm_consentpurpose_name_ci_unique",
                violation_error_code="name_taken",
                violation_error_message="A purpose of this name exists already.",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class ConsentRecord(TimeStampedModel):
    """One consent (or other lawful basis) of a person for a purpose: when it was given, where, on what
    evidence, by whom it was recorded, and when it was withdrawn. A withdrawn record stays: it is the
    evidence of what was allowed when. At most one record per person and purpose is in force."""

    purpose = models.ForeignKey(ConsentPurpose, on_delete=models.PROTECT, related_name="records")
    lead = models.ForeignKey(Lead, null=True, blank=True, on_delete=models.CASCADE, related_name="consents")
    contact = models.ForeignKey(
        Contact, null=True, blank=True, on_delete=models.CASCADE, related_name="consents"
    )
    lawful_basis = models.CharField(max_length=20, choices=LawfulBasis.choices, default=LawfulBasis.CONSENT)
    source = models.CharField(max_length=20, choices=ConsentSource.choices, default=ConsentSource.OTHER)
    granted_at = models.DateTimeField(default=timezone.now)
    withdrawn_at = models.DateTimeField(null=True, blank=True)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    evidence = models.TextField(
        blank=True, help_text="How it was given: the form's text and version, the call's note, the document."
    )

    history = audit_history()
    constraint_error_fields = {
        "one_person": "lead",
        "withdrawn_before_granted": "withdrawn_at",
        "lead_in_force": "purpose",
        "contact_in_force": "purpose",
    }

    class Meta:
        ordering = ("-granted_at", "-id")
        indexes = [
            models.Index(fields=["purpose", "lead"], name="crm_consent_purpose_lead"),
            models.Index(fields=["purpose", "contact"], name="crm_consent_purpose_contact"),
        ]
        constraints = [
            _one_person("crm_consentrecord"),
            models.CheckConstraint(
                condition=Q(withdrawn_at__isnull=True) | Q(withdrawn_at__gte=F("granted_at")),
                name="crm_consentrecord_withdrawn_after_granted",
                violation_error_code="withdrawn_before_granted",
                violation_error_message="A consent cannot be withdrawn before it was given.",
            ),
            models.UniqueConstraint(
                fields=["lead", "purpose"],
                condition=Q(lead__isnull=False, withdrawn_at__isnull=True),
                name="crm_consentrecord_lead_in_force",
                violation_error_code="lead_in_force",
                violation_error_message="This lead has a consent in force for this purpose already.",
            ),
            models.UniqueConstraint(
                fields=["contact", "purpose"],
                condition=Q(contact__isnull=False, withdrawn_at__isnull=True),
                name="crm_consentrecord_contact_in_force",
                violation_error_code="contact_in_force",
                violation_error_message="This contact has a consent in force for this purpose already.",
            ),
        ]

    def __str__(self) -> str:
        state = "withdrawn" if self.withdrawn_at else "in force"
        return f"{self.purpose} ({self.get_lawful_basis_display()}, {state})"

    @property
    def person(self):
        return self.lead if self.lead_id else self.contact

    @property
    def in_force(self) -> bool:
        return self.withdrawn_at is None

    def clean(self):
        super().clean()
        if self.withdrawn_at and self.granted_at and self.withdrawn_at < self.granted_at:
            raise ValidationError({"withdrawn_at": "A consent cannot be withdrawn before it was given."})
        purpose = self.purpose if self.purpose_id else None
        if purpose is not None and purpose.requires_consent and self.lawful_basis != LawfulBasis.CONSENT:
            raise ValidationError(
                {"lawful_basis": f"“{purpose}” requires the person's consent: the lawful basis is consent."}
            )


class ChannelPreference(TimeStampedModel):
    """Whether a person may be reached by a channel (email, phone, SMS, post). No row: nothing said,
    the channel is allowed (a contact's own ``email_opt_out`` and ``do_not_call`` still apply)."""

    lead = models.ForeignKey(
        Lead, null=True, blank=True, on_delete=models.CASCADE, related_name="channel_preferences"
    )
    contact = models.ForeignKey(
        Contact, null=True, blank=True, on_delete=models.CASCADE, related_name="channel_preferences"
    )
    channel = models.CharField(max_length=5, choices=Channel.choices)
    allowed = models.BooleanField(default=True)
    source = models.CharField(max_length=20, choices=ConsentSource.choices, default=ConsentSource.OTHER)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    history = audit_history()
    constraint_error_fields = {
        "one_person": "lead",
        "lead_channel_once": "channel",
        "contact_channel_once": "channel",
    }

    class Meta:
        ordering = ("channel", "id")
        constraints = [
            _one_person("crm_channelpreference"),
            models.UniqueConstraint(
                fields=["lead", "channel"],
                condition=Q(lead__isnull=False),
                name="crm_channelpreference_lead_once",
                violation_error_code="lead_channel_once",
                violation_error_message="This lead has a preference for this channel already.",
            ),
            models.UniqueConstraint(
                fields=["contact", "channel"],
                condition=Q(contact__isnull=False),
                name="crm_channelpreference_contact_once",
                violation_error_code="contact_channel_once",
                violation_error_message="This contact has a preference for this channel already.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_channel_display()}: {'allowed' if self.allowed else 'not allowed'}"
