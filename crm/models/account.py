"""Accounts (companies) and the contacts (people) who work for them."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.db.models.functions import Coalesce, Lower, Upper

from .base import (
    Rating,
    TimeStampedModel,
    audit_history,
    email_domain_expression,
    non_negative_constraint,
    phone_digits_expression,
)
from .tag import Tag


class AccountType(models.TextChoices):
    PROSPECT = "prospect", "Prospect"
    CUSTOMER = "customer", "Customer"
    PARTNER = "partner", "Partner"
    VENDOR = "vendor", "Vendor"
    COMPETITOR = "competitor", "Competitor"


class Industry(models.TextChoices):
    TECHNOLOGY = "technology", "Technology"
    FINANCE = "finance", "Finance"
    HEALTHCARE = "healthcare", "Healthcare"
    EDUCATION = "education", "Education"
    MANUFACTURING = "manufacturing", "Manufacturing"
    RETAIL = "retail", "Retail"
    REAL_ESTATE = "real_estate", "Real estate"
    CONSULTING = "consulting", "Consulting"
    MEDIA = "media", "Media"
    GOVERNMENT = "government", "Government"
    NONPROFIT = "nonprofit", "Nonprofit"
    OTHER = "other", "Other"


class AccountTier(models.TextChoices):
    """The service level a customer bought: SLA policies are chosen by it and a ticket's priority."""

    STANDARD = "standard", "Standard"
    PREMIUM = "premium", "Premium"
    ENTERPRISE = "enterprise", "Enterprise"


class Account(TimeStampedModel):
    name = models.CharField(max_length=200)
    website = models.URLField(blank=True)
    phone = models.CharField(max_length=40, blank=True)
    account_type = models.CharField(
        max_length=20, choices=AccountType.choices, default=AccountType.PROSPECT, db_index=True
    )
    industry = models.CharField(max_length=20, choices=Industry.choices, blank=True, db_index=True)
    rating = models.CharField(max_length=10, choices=Rating.choices, blank=True, db_index=True)
    tier = models.CharField(
        max_length=12,
        choices=AccountTier.choices,
        default=AccountTier.STANDARD,
        help_text="The service level: its tickets' SLA policy depends on it.",
    )
    employees = models.PositiveIntegerField(null=True, blank=True)
    annual_revenue = models.DecimalField(max_digits=16, decimal_places=2, null=True, blank=True)
    billing_street = models.CharField(max_length=255, blank=True)
    billing_city = models.CharField(max_length=120, blank=True)
    billing_state = models.CharField(max_length=120, blank=True)
    billing_zip = models.CharField(max_length=20, blank=True)
    billing_country = models.CharField(max_length=120, blank=True)
    parent = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="children",
        help_text="The parent company in an account hierarchy.",
    )
    is_active = models.BooleanField(default=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="owned_accounts",
    )
    tags = models.ManyToManyField(Tag, blank=True, related_name="accounts")
    # When the newest activity logged on the account was created: derived, kept by the activity
    # services (single and bulk), read by the automation's "N days without activity".
    last_activity_at = models.DateTimeField(null=True, blank=True, editable=False)

    # Who changed what and when, through every entry point (the import engine writes its rows in bulk).
    history = audit_history(derived_fields=("last_activity_at",))

    class Meta:
        ordering = ["name", "id"]
        indexes = [
            models.Index(fields=["name"], name="crm_account_name"),
            models.Index(Upper("name"), name="crm_account_name_upper"),
            models.Index(phone_digits_expression("phone"), name="crm_account_phone_digits"),
            # "Quiet since": the automation's time scan finds the accounts crossing N days through it.
            models.Index(Coalesce("last_activity_at", "created_at"), name="crm_account_quiet_since"),
        ]
        constraints = [
            non_negative_constraint("crm_account", "annual_revenue"),
            models.CheckConstraint(
                condition=Q(parent__isnull=True) | ~Q(parent=models.F("id")),
                name="crm_account_not_own_parent",
                violation_error_code="account_own_parent",
                violation_error_message="An account cannot be its own parent.",
            ),
        ]

    constraint_error_fields = {
        **TimeStampedModel.constraint_error_fields,
        "account_own_parent": "parent",
    }

    def __str__(self) -> str:
        return self.name

    def clean(self):
        super().clean()
        if self.pk and self.parent_id == self.pk:
            raise ValidationError({"parent": "An account cannot be its own parent."})
        if self.pk and self.parent_id:
            # Walk up the hierarchy: making an account its own ancestor would loop forever.
            seen = {self.pk}
            ancestor_id = self.parent_id
            while ancestor_id is not None:
                if ancestor_id in seen:
                    raise ValidationError(
                        {"parent": "This parent would make the account hierarchy circular."}
                    )
                seen.add(ancestor_id)
                ancestor_id = (
                    Account.objects.filter(pk=ancestor_id).values_list("parent_id", flat=True).first()
                )


class Contact(TimeStampedModel):
    first_name = models.CharField(max_length=100)
    last_name = models.CharField(max_length=100, blank=True)
    email = models.EmailField(blank=True)
    phone = models.CharField(max_length=40, blank=True)
    mobile = models.CharField(max_length=40, blank=True)
    job_title = models.CharField(max_length=120, blank=True)
    department = models.CharField(max_length=120, blank=True)
    account = models.ForeignKey(
        Account, on_delete=models.PROTECT, null=True, blank=True, related_name="contacts"
    )
    is_primary = models.BooleanField(
        default=False, help_text="The account's main contact. An account has at most one."
    )
    do_not_call = models.BooleanField(default=False)
    email_opt_out = models.BooleanField(default=False)
    is_active = models.BooleanField(default=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="owned_contacts",
    )
    tags = models.ManyToManyField(Tag, blank=True, related_name="contacts")
    # As Account.last_activity_at: the newest activity's creation, kept by the activity services.
    last_activity_at = models.DateTimeField(null=True, blank=True, editable=False)

    constraint_error_fields = {
        **TimeStampedModel.constraint_error_fields,
        "contact_primary_taken": "is_primary",
        "contact_primary_needs_account": "is_primary",
    }

    # Who changed what and when, through every entry point (the import engine writes its rows in bulk).
    history = audit_history(derived_fields=("last_activity_at",))

    class Meta:
        ordering = ["last_name", "first_name", "id"]
        indexes = [
            models.Index(fields=["last_name", "first_name"], name="crm_contact_name"),
            models.Index(Lower("email"), name="crm_contact_email_lower"),
            models.Index(email_domain_expression(), name="crm_contact_email_domain"),
            models.Index(phone_digits_expression("phone"), name="crm_contact_phone_digits"),
            models.Index(phone_digits_expression("mobile"), name="crm_contact_mobile_digits"),
            models.Index(Coalesce("last_activity_at", "created_at"), name="crm_contact_quiet_since"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["account"],
                condition=Q(is_primary=True),
                name="crm_contact_one_primary_per_account",
                violation_error_code="contact_primary_taken",
                violation_error_message="This account already has a primary contact.",
            ),
            models.CheckConstraint(
                condition=Q(is_primary=False) | Q(account__isnull=False),
                name="crm_contact_primary_has_account",
                violation_error_code="contact_primary_needs_account",
                violation_error_message="Only a contact linked to an account can be its primary contact.",
            ),
        ]

    def __str__(self) -> str:
        return self.full_name

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()
