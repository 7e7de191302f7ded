"""Writes for the sales app: opportunities and their transitions, and converting a lead into one.

The conventions (``data`` dicts of model fields, ValidationError codes, row locks) are crm.services'.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from crm import rules
from crm.actors import Actor
from crm.models import Account, Contact, Lead, LeadStatus, LostReason, Pipeline, Stage
from crm.selectors import conversion_account_match, conversion_contact_match
from crm.services import (
    NO_WON_STAGE,
    NOT_REOPENABLE,
    account_create,
    contact_create,
    contact_update,
    name_lock,
    owner_ensure_allowed,
    pipeline_record_prepare_update,
    pipeline_record_save,
    record_assign,
    record_delete,
    record_ensure_changeable,
    record_ensure_open,
    record_ensure_stage_in_pipeline,
    record_lock,
    record_lost_data,
    record_reopen_stage,
    record_save,
    rekey_errors,
    related_ensure_changeable,
    related_ensure_visible,
    with_default_owner,
)
from sales.currencies import exchange_rate_on
from sales.models import ExchangeRate, Opportunity, OpportunityStatus, Quota, company_currency
from sales.quotas import quota_editable_by
from sales.services_quotes import opportunity_amount_ensure_manual


def _opportunity_enter_closed_stage(*, opportunity: Opportunity, stage: Stage, user: Actor) -> Opportunity:
    if rules.stage_effect(is_won=stage.is_won, is_lost=stage.is_lost, noun="opportunity") == rules.WIN:
        return opportunity_mark_won(opportunity=opportunity, user=user)
    return opportunity_mark_lost(
        opportunity=opportunity,
        user=user,
        lost_reason=opportunity.lost_reason,
        lost_note=opportunity.lost_note,
    )


@transaction.atomic
def opportunity_create(*, user: Actor, data: Mapping[str, Any]) -> Opportunity:
    """Create an opportunity; without pipeline or stage it starts in the default pipeline's first stage.

    Created directly in a won or lost stage (a deal already closed elsewhere), it is won or lost.
    """
    related_ensure_visible(user=user, record=data.get("lead"), field="lead")
    opportunity_ensure_rate(
        currency=data.get("currency") or company_currency(), close_date=data.get("close_date")
    )
    opportunity = pipeline_record_save(instance=Opportunity(), data=with_default_owner(data, user), user=user)
    if opportunity.stage.is_closed:
        opportunity = _opportunity_enter_closed_stage(
            opportunity=opportunity, stage=opportunity.stage, user=user
        )
    return opportunity


@transaction.atomic
def opportunity_update(*, opportunity: Opportunity, user: Actor, data: Mapping[str, Any]) -> Opportunity:
    """Update an opportunity's fields. A change of pipeline or stage follows the move-stage rules."""
    opportunity = record_lock(opportunity)
    record_ensure_changeable(user=user, record=opportunity)
    owner_ensure_allowed(user=user, record=opportunity, data=data)
    # A deal with line items is worth their total: its amount is not typed in.
    opportunity_amount_ensure_manual(opportunity=opportunity, data=data)
    if data.get("lead") is not None and data["lead"].pk != opportunity.lead_id:
        related_ensure_visible(user=user, record=data["lead"], field="lead")
    data = dict(data)
    if "currency" in data or "close_date" in data:
        opportunity_ensure_rate(
            currency=data.get("currency", opportunity.currency),
            close_date=data.get("close_date", opportunity.close_date),
        )
    closing_stage = pipeline_record_prepare_update(record=opportunity, data=data)
    opportunity = pipeline_record_save(instance=opportunity, data=data, user=user)
    if closing_stage is not None:
        opportunity = _opportunity_enter_closed_stage(opportunity=opportunity, stage=closing_stage, user=user)
    return opportunity


@transaction.atomic
def opportunity_move_stage(*, opportunity: Opportunity, stage: Stage, user: Actor) -> Opportunity:
    """Move an open opportunity to a stage of its pipeline, taking the stage's probability.

    The pipeline's won stage wins it (opportunity_mark_won), its lost stage loses it without a reason.
    """
    opportunity = record_lock(opportunity)
    record_ensure_open(opportunity)
    record_ensure_stage_in_pipeline(opportunity, stage)
    if stage.is_closed:
        return _opportunity_enter_closed_stage(opportunity=opportunity, stage=stage, user=user)
    return pipeline_record_save(
        instance=opportunity, data={"stage": stage, "probability": stage.probability}, user=user
    )


def _closing_data(opportunity: Opportunity) -> dict[str, Any]:
    # A deal that closes without an expected close date closed today: the forecast files it there.
    data: dict[str, Any] = {"closed_at": timezone.now()}
    if opportunity.close_date is None:
        data["close_date"] = timezone.localdate()
        opportunity_ensure_rate(currency=opportunity.currency, close_date=data["close_date"])
    return data


def opportunity_ensure_rate(*, currency: str, close_date: date | None) -> None:
    """Refuse a deal in a foreign currency that no rate in force on its close date (today without
    one) converts: every figure in the company currency would leave it out."""
    if not currency or currency == company_currency() or len(currency) != 3:
        return  # the model's validators judge a malformed code
    day = close_date or timezone.localdate()
    if exchange_rate_on(currency, day) is None:
        raise ValidationError(
            {
                "currency": f"No exchange rate of {currency} to {company_currency()} is in force on "
                f"{day.isoformat()}: add a rate dated on or before it first (Exchange rates)."
            }
        )


@transaction.atomic
def opportunity_mark_won(*, opportunity: Opportunity, user: Actor) -> Opportunity:
    """Win an open opportunity: its pipeline's won stage, probability 100, closed now."""
    opportunity = record_lock(opportunity)
    record_ensure_open(opportunity)
    won_stage = opportunity.pipeline.won_stage
    if won_stage is None:
        raise ValidationError(
            f"The pipeline “{opportunity.pipeline}” has no won stage: add a stage marked won to it "
            f"before winning its opportunities.",
            code=NO_WON_STAGE,
        )
    data = {
        **_closing_data(opportunity),
        "status": OpportunityStatus.WON,
        "stage": won_stage,
        "probability": 100,
    }
    return pipeline_record_save(instance=opportunity, data=data, user=user)


@transaction.atomic
def opportunity_mark_lost(
    *,
    opportunity: Opportunity,
    user: Actor,
    lost_reason: LostReason | None = None,
    lost_note: str = "",
) -> Opportunity:
    """Lose an open opportunity: its pipeline's lost stage if it has one, probability 0, closed now.

    A pipeline with ``lost_reason_required`` refuses it without ``lost_reason``.
    """
    opportunity = record_lock(opportunity)
    data = {
        **_closing_data(opportunity),
        **record_lost_data(opportunity, lost_reason=lost_reason, lost_note=lost_note),
    }
    return pipeline_record_save(instance=opportunity, data=data, user=user)


@transaction.atomic
def opportunity_reopen(*, opportunity: Opportunity, user: Actor, stage: Stage | None = None) -> Opportunity:
    """Reopen a won or lost opportunity: open again, in ``stage`` or where it last was
    (``record_reopen_stage``), with the stage's probability, no closing date and no lost reason."""
    opportunity = record_lock(opportunity)
    if not opportunity.is_closed:
        raise ValidationError(
            "Only a won or lost opportunity can be reopened; this one is open.", code=NOT_REOPENABLE
        )
    stage = record_reopen_stage(opportunity, stage)
    data = {
        "status": OpportunityStatus.OPEN,
        "stage": stage,
        "probability": stage.probability,
        "closed_at": None,
        "lost_reason": None,
        "lost_note": "",
    }
    return pipeline_record_save(instance=opportunity, data=data, user=user)


# --- converting a lead ----------------------------------------------------------------------------


@dataclass(frozen=True)
class LeadConversion:
    lead: Lead
    account: Account | None
    contact: Contact | None
    opportunity: Opportunity | None


def _split_name(full_name: str) -> tuple[str, str]:
    first, _, last = full_name.strip().partition(" ")
    return first, last.strip()


def _conversion_account(
    *, lead: Lead, user: Actor, account: Account | None, create_account: bool | None
) -> Account | None:
    if account is not None:
        if create_account:
            raise ValidationError(
                {"create_account": "Give either an existing account or create_account, not both."}
            )
        # Linking an account is a change to it (its deals, its contacts): the owner's team's to make.
        related_ensure_changeable(user=user, record=account, field="account")
        return account
    if create_account is None:
        create_account = bool(lead.company_name.strip())
    if not create_account:
        return None
    name = lead.company_name.strip()
    if not name:
        raise ValidationError({"create_account": "The lead has no company name to name a new account after."})
    name_lock("account", name)
    existing = conversion_account_match(lead)
    if existing is not None:
        return existing
    return account_create(user=user, data={"name": name, "owner": lead.owner})


def _conversion_contact(
    *,
    lead: Lead,
    user: Actor,
    account: Account | None,
    contact: Contact | None,
    create_contact: bool | None,
) -> Contact | None:
    if contact is not None:
        if create_contact:
            raise ValidationError(
                {"create_contact": "Give either an existing contact or create_contact, not both."}
            )
        related_ensure_changeable(user=user, record=contact, field="contact")
    else:
        if create_contact is None:
            create_contact = bool(lead.contact_name.strip() or lead.email.strip())
        if not create_contact:
            return None
        if not (lead.contact_name.strip() or lead.email.strip()):
            raise ValidationError(
                {"create_contact": "The lead has no contact name or email to create a contact from."}
            )
        email = lead.email.strip()
        if email:
            name_lock("contact", email)
            contact = conversion_contact_match(lead)
        if contact is None:
            first_name, last_name = (
                _split_name(lead.contact_name) if lead.contact_name.strip() else (email, "")
            )
            return contact_create(
                user=user,
                data={
                    "first_name": first_name,
                    "last_name": last_name,
                    "email": email,
                    "phone": lead.phone,
                    "job_title": lead.job_title,
                    "account": account,
                    "owner": lead.owner,
                },
            )
    if account is not None and contact.account_id not in (None, account.pk):
        raise ValidationError(
            {
                "contact": f"The contact “{contact}” ({contact.email or 'no email'}) works for "
                f"“{contact.account}”, not for “{account}”: pick another contact or account."
            }
        )
    if account is not None and contact.account_id is None:
        # The contact reused for the lead's email joins the account: only if the user may change it.
        related_ensure_changeable(user=user, record=contact, field="create_contact")
        contact = contact_update(contact=contact, user=user, data={"account": account})
    return contact


@transaction.atomic
def lead_convert(
    *,
    lead: Lead,
    user: Actor,
    account: Account | None = None,
    create_account: bool | None = None,
    contact: Contact | None = None,
    create_contact: bool | None = None,
    create_opportunity: bool = True,
    opportunity_name: str | None = None,
    amount: Decimal | None = None,
    close_date: date | None = None,
    pipeline: Pipeline | None = None,
    stage: Stage | None = None,
) -> LeadConversion:
    """Convert an open lead into an opportunity and, as asked, an account and a contact.

    Account: ``account`` links an existing one; ``create_account`` (the default when the lead has a
    company name) reuses an account of that name, case-insensitively, or creates it. Contact:
    ``contact`` links an existing one; ``create_contact`` (the default when the lead has a contact
    name or email) reuses a contact with the lead's email, case-insensitively, or creates one; the
    contact joins the account if it has none. Opportunity (unless ``create_opportunity`` is false):
    named ``opportunity_name`` or the lead's name, worth ``amount`` or the expected revenue, in
    ``pipeline`` (default: the stage's pipeline, else the lead's) at ``stage`` (default: the lead's own
    stage when that is an open stage of this pipeline, so a lead worked up to Negotiation does not
    start again at the first stage; else the pipeline's first stage), with the lead's owner, priority,
    description and tags. The lead becomes converted, in its pipeline's won stage if there is one, and
    keeps links to what it produced.
    """
    lead = record_lock(lead)
    record_ensure_changeable(user=user, record=lead)
    record_ensure_open(lead)
    opportunity_options = {"opportunity_name": opportunity_name, "amount": amount, "close_date": close_date}
    opportunity_options |= {"pipeline": pipeline, "stage": stage}
    if not create_opportunity:
        given = [name for name, value in opportunity_options.items() if value is not None]
        if given:
            raise ValidationError(
                {"create_opportunity": f"{', '.join(given)} only apply when an opportunity is created."}
            )

    account = _conversion_account(lead=lead, user=user, account=account, create_account=create_account)
    contact = _conversion_contact(
        lead=lead, user=user, account=account, contact=contact, create_contact=create_contact
    )

    opportunity = None
    if create_opportunity:
        if pipeline is None:
            pipeline = stage.pipeline if stage is not None else lead.pipeline
        if stage is None and pipeline.pk == lead.pipeline_id and not lead.stage.is_closed:
            stage = lead.stage
        data = {
            "name": opportunity_name or lead.name,
            "account": account,
            "contact": contact,
            "pipeline": pipeline,
            "stage": stage,
            "amount": amount if amount is not None else (lead.expected_revenue or Decimal("0")),
            "close_date": close_date,
            "priority": lead.priority,
            "description": lead.description,
            "owner": lead.owner,
            "lead": lead,
            "campaign": lead.campaign,
            "tags": list(lead.tags.all()),
        }
        try:
            opportunity = opportunity_create(user=user, data=data)
        except ValidationError as exc:
            raise rekey_errors(exc, {"name": "opportunity_name"}) from exc

    data = {
        "status": LeadStatus.CONVERTED,
        "converted_at": timezone.now(),
        "converted_account": account,
        "converted_contact": contact,
        "probability": 100,
    }
    won_stage = lead.pipeline.won_stage
    if won_stage is not None:
        data["stage"] = won_stage
    lead = pipeline_record_save(instance=lead, data=data, user=user)
    return LeadConversion(lead=lead, account=account, contact=contact, opportunity=opportunity)


# --- exchange rates -------------------------------------------------------------------------------


@transaction.atomic
def exchange_rate_create(*, user: Actor, data: Mapping[str, Any]) -> ExchangeRate:
    return record_save(instance=ExchangeRate(), data=_upper_currency(data), user=user)


@transaction.atomic
def exchange_rate_update(
    *, exchange_rate: ExchangeRate, user: Actor, data: Mapping[str, Any]
) -> ExchangeRate:
    return record_save(instance=record_lock(exchange_rate), data=_upper_currency(data), user=user)


def _upper_currency(data: Mapping[str, Any]) -> dict[str, Any]:
    data = dict(data)
    if isinstance(data.get("currency"), str):
        data["currency"] = data["currency"].strip().upper()
    return data


@dataclass(frozen=True)
class RateImport:
    created: int
    updated: int


@transaction.atomic
def exchange_rate_import(*, user: Actor, rows: list[Mapping[str, Any]]) -> RateImport:
    """Create or update (by currency and date) the rates of ``rows`` (``currency``, ``date``, ``rate``):
    all or nothing; the errors of every bad row, by row number (the header is row 1)."""
    errors: dict[str, list[str]] = {}
    created = updated = 0
    for number, row in enumerate(rows, start=2):
        data = _upper_currency(row)
        try:
            existing = (
                ExchangeRate.objects.select_for_update()
                .filter(currency=data.get("currency"), date=data.get("date"))
                .first()
            )
            with transaction.atomic():
                record_save(instance=existing or ExchangeRate(), data=data, user=user)
        except (ValidationError, ValueError, TypeError) as exc:
            messages = exc.message_dict if hasattr(exc, "error_dict") else {"row": [str(exc)]}
            errors[f"row {number}"] = [f"{field}: {' '.join(texts)}" for field, texts in messages.items()]
            continue
        if existing is None:
            created += 1
        else:
            updated += 1
    if errors:
        raise ValidationError(errors)
    return RateImport(created=created, updated=updated)


# --- quotas ---------------------------------------------------------------------------------------


def _quota_ensure_editable(*, user: Actor, quota: Quota) -> None:
    holders = quota_editable_by(user)
    if quota.user_id is not None and not holders["users"].filter(pk=quota.user_id).exists():
        raise ValidationError({"user": "You may set quotas only for the members of the teams you manage."})
    if quota.team_id is not None and not holders["teams"].filter(pk=quota.team_id).exists():
        raise ValidationError({"team": "You may set quotas only for the teams you manage."})


@transaction.atomic
def quota_create(*, user: Actor, data: Mapping[str, Any]) -> Quota:
    quota = Quota()
    record_assign(instance=quota, data=data)
    _quota_ensure_editable(user=user, quota=quota)
    return record_save(instance=quota, user=user)


@transaction.atomic
def quota_update(*, quota: Quota, user: Actor, data: Mapping[str, Any]) -> Quota:
    quota = record_lock(quota)
    _quota_ensure_editable(user=user, quota=quota)
    record_assign(instance=quota, data=data)
    _quota_ensure_editable(user=user, quota=quota)
    return record_save(instance=quota, user=user)


@transaction.atomic
def quota_delete(*, quota: Quota, user: Actor) -> None:
    _quota_ensure_editable(user=user, quota=quota)
    record_delete(instance=quota, user=user)
