"""The report builder's record types that crm owns: leads and accounts."""

from crm.filters import AccountFilter, LeadFilter
from crm.models import AccountType, Industry, LeadSource, LeadStatus, Priority, Rating
from crm.selectors import account_visible_to, lead_visible_to

from . import INTEGER, MONEY
from .builder import (
    BOOLEAN,
    CHOICE,
    DATETIME,
    FOREIGN_KEY,
    BuilderField,
    ReportSource,
    register_report_source,
)

OWNER = BuilderField("owner", "Owner", FOREIGN_KEY, path="owner_id", label_path="owner__username")
CREATED = BuilderField("created_at", "Created", DATETIME)


def register_sources() -> None:
    register_report_source(
        ReportSource(
            key="leads",
            label="Leads",
            permission="crm.view_lead",
            visible_to=lead_visible_to,
            filterset=LeadFilter,
            fields=(
                BuilderField("status", "Status", CHOICE, choices=tuple(LeadStatus.choices)),
                BuilderField("source", "Source", CHOICE, choices=tuple(LeadSource.choices)),
                BuilderField("priority", "Priority", CHOICE, choices=tuple(Priority.choices)),
                BuilderField("rating", "Rating", CHOICE, choices=tuple(Rating.choices)),
                BuilderField(
                    "pipeline", "Pipeline", FOREIGN_KEY, path="pipeline_id", label_path="pipeline__name"
                ),
                BuilderField("stage", "Stage", FOREIGN_KEY, path="stage_id", label_path="stage__name"),
                OWNER,
                BuilderField("company_name", "Company"),
                BuilderField("job_title", "Job title"),
                CREATED,
                BuilderField("converted_at", "Converted", DATETIME),
                BuilderField("expected_revenue", "Expected revenue", MONEY),
                BuilderField("probability", "Probability", INTEGER),
                BuilderField("score", "Score", INTEGER),
            ),
        )
    )
    register_report_source(
        ReportSource(
            key="accounts",
            label="Accounts",
            permission="crm.view_account",
            visible_to=account_visible_to,
            filterset=AccountFilter,
            fields=(
                BuilderField("account_type", "Type", CHOICE, choices=tuple(AccountType.choices)),
                BuilderField("industry", "Industry", CHOICE, choices=tuple(Industry.choices)),
                BuilderField("rating", "Rating", CHOICE, choices=tuple(Rating.choices)),
                BuilderField("billing_country", "Country"),
                BuilderField("billing_city", "City"),
                BuilderField("is_active", "Active", BOOLEAN),
                BuilderField(
                    "parent", "Parent account", FOREIGN_KEY, path="parent_id", label_path="parent__name"
                ),
                OWNER,
                CREATED,
                BuilderField("employees", "Employees", INTEGER),
                BuilderField("annual_revenue", "Annual revenue", MONEY),
            ),
        )
    )
