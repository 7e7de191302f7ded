"""Actions that reach out to a lead or a contact: send a templated email, enroll in a sequence.

They go through the same services as the admin and the API (``email_template_send``,
``sequence_enroll``), so an opted-out address, a person who turned email off in their preferences
or who gave no consent for the email's purpose (``purpose_id``, optional) gets nothing, and an
enrollment is refused for the reasons a person would be told (a converted or lost lead, an inactive
sequence, an opt-out)."""

from django.core.exceptions import ValidationError

from crm.automation.actions import _one_id
from crm.automation.engine import ActionContext
from crm.automation.registry import AutomatableModel, register_action
from crm.models import ConsentPurpose, EmailTemplate, ExclusionReason, Sequence

RECIPIENTS = ("record", "owner")
OUTREACH_MODELS = ("crm.Lead", "crm.Contact")


def send_email_validate(params: dict, entry: AutomatableModel) -> dict:
    template_id = _one_id(params.get("template_id"), "template_id", EmailTemplate)
    to = params.get("to", "record")
    if to not in RECIPIENTS:
        raise ValidationError("to: “record” (the lead's or contact's address) or “owner” (its owner's).")
    cleaned = {"template_id": template_id, "to": to}
    if params.get("purpose_id") not in (None, ""):
        cleaned["purpose_id"] = _one_id(params["purpose_id"], "purpose_id", ConsentPurpose)
    return cleaned


def _purpose(ctx: ActionContext) -> ConsentPurpose | None:
    """What the email is for: a purpose that requires consent reaches only those who gave it."""
    purpose_id = ctx.params.get("purpose_id")
    return ConsentPurpose.objects.filter(pk=purpose_id).first() if purpose_id else None


def _address(ctx: ActionContext) -> str | None:
    """None: the record's own address (the service reads it and checks its opt-out)."""
    if ctx.params.get("to", "record") == "record":
        return None
    owner = ctx.require_instance().owner
    if owner is None or not owner.email:
        raise ValidationError(f"The {ctx.entry.noun} has no owner with an email address.")
    return owner.email


def send_email_execute(ctx: ActionContext) -> str:
    from crm.messaging.services import email_template_send

    template = EmailTemplate.objects.get(pk=ctx.params["template_id"])
    email = email_template_send(
        template=template,
        record=ctx.require_instance(),
        user=ctx.user,
        to=_address(ctx),
        purpose=_purpose(ctx),
    )
    if email.status == "suppressed":
        return f"Not sent to {email.to}: {email.error or 'the address opted out of email'}"
    return f"“{email.subject}” queued to {email.to}"


def send_email_preview(ctx: ActionContext) -> str:
    from crm.consent.services import email_refusal
    from crm.messaging.services import (
        email_addresses_opted_out,
        email_template_render,
        record_email_opted_out,
    )

    record = ctx.require_instance()
    template = EmailTemplate.objects.get(pk=ctx.params["template_id"])
    address = _address(ctx) or (record.email or "")
    if not address:
        return f"Would fail: the {ctx.entry.noun} has no email address"
    if record_email_opted_out(record) or email_addresses_opted_out([address]):
        return f"Would send nothing: {address} opted out of email"
    refused = email_refusal(record, purpose=_purpose(ctx)) if _address(ctx) is None else None
    if refused:
        return f"Would send nothing to {address}: {ExclusionReason(refused).label}"
    rendered = email_template_render(template=template, record=record, user=ctx.user)
    return f"Would email {address}: “{rendered.subject}”"


def enroll_validate(params: dict, entry: AutomatableModel) -> dict:
    return {"sequence_id": _one_id(params.get("sequence_id"), "sequence_id", Sequence)}


def enroll_execute(ctx: ActionContext) -> str:
    from crm.sequences.services import sequence_enroll

    sequence = Sequence.objects.get(pk=ctx.params["sequence_id"])
    enrollment = sequence_enroll(sequence=sequence, record=ctx.require_instance(), user=ctx.user)
    return f"Enrolled in “{sequence}” (enrollment #{enrollment.pk})"


def enroll_preview(ctx: ActionContext) -> str:
    from crm.sequences.services import enrollment_refusal

    sequence = Sequence.objects.get(pk=ctx.params["sequence_id"])
    refusal = enrollment_refusal(sequence=sequence, record=ctx.require_instance())
    return f"Would fail: {refusal}" if refusal else f"Would enroll in “{sequence}”"


def register() -> None:
    register_action(
        "send_email",
        label="Send a templated email (to the record or its owner)",
        validate=send_email_validate,
        execute=send_email_execute,
        preview=send_email_preview,
        models=OUTREACH_MODELS,
        example={"template_id": 1, "to": "record"},
        params={"template_id": 1, "to": "record", "purpose_id": 1},
    )
    register_action(
        "enroll_sequence",
        label="Enroll in a sequence",
        validate=enroll_validate,
        execute=enroll_execute,
        preview=enroll_preview,
        models=OUTREACH_MODELS,
        example={"sequence_id": 1},
    )
