"""Writes for a deal's line items and for quotes: numbering, editing, revising, sending, answering.

A deal with lines is worth their net total (sales.pricing); a deal without lines keeps a manual amount.
A quote is numbered ``Q-<year>-<nnnn>`` from a counter row per year locked in the creating transaction
(gap-free: a rolled-back creation gives its number back), edited only while a draft, and revised into
a new version once sent: the old version is frozen.
"""

from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from crm.actors import Actor, person
from crm.models import Stage
from crm.services import (
    CLOSED,
    pipeline_record_save,
    record_ensure_changeable,
    record_ensure_open,
    record_lock,
    record_save,
)
from sales import pricing
from sales.models import Opportunity, OpportunityLine, Quote, QuoteCounter, QuoteLine, QuoteStatus

AMOUNT_FROM_LINES = "This deal's amount is the total of its line items: change the lines instead."
NOT_EDITABLE = "not_editable"
ANSWERED = "answered"
LINE_FIELDS = ("product", "description", "quantity", "unit_price", "discount_percent", "tax_rate", "position")


# --- a deal's line items --------------------------------------------------------------------------


def opportunity_amount_ensure_manual(*, opportunity: Opportunity, data: Mapping[str, Any]) -> None:
    """Refuse (a 400 on amount) a change of the amount of a deal that has lines."""
    if "amount" not in data or data["amount"] is None:
        return
    if data["amount"] != opportunity.amount and opportunity.lines.exists():
        raise ValidationError({"amount": AMOUNT_FROM_LINES})


def _opportunity_amount_refresh(*, opportunity: Opportunity, user: Actor) -> Opportunity:
    total = opportunity.lines.aggregate(total=Sum("net_amount"))["total"]
    if total is None:
        return opportunity  # no lines left: the amount stays as it was, manual again
    total = pricing.round_money(total)  # SQLite sums decimals as floats
    if total == opportunity.amount:
        return opportunity
    return pipeline_record_save(instance=opportunity, data={"amount": total}, user=user)


def _line_data(data: Mapping[str, Any]) -> dict[str, Any]:
    return {name: data[name] for name in LINE_FIELDS if name in data}


def _opportunity_ensure_lines_editable(*, opportunity: Opportunity, user: Actor) -> Opportunity:
    opportunity = record_lock(opportunity)
    record_ensure_changeable(user=user, record=opportunity)
    record_ensure_open(opportunity)
    return opportunity


@transaction.atomic
def opportunity_line_create(
    *, opportunity: Opportunity, user: Actor, data: Mapping[str, Any]
) -> OpportunityLine:
    """Add a line to an open deal; the deal's amount becomes its lines' net total."""
    opportunity = _opportunity_ensure_lines_editable(opportunity=opportunity, user=user)
    line_data = _line_data(data)
    if "position" not in line_data:
        line_data["position"] = opportunity.lines.count() + 1
    line = record_save(instance=OpportunityLine(opportunity=opportunity), data=line_data, user=user)
    _opportunity_amount_refresh(opportunity=opportunity, user=user)
    return line


@transaction.atomic
def opportunity_line_update(
    *, line: OpportunityLine, user: Actor, data: Mapping[str, Any]
) -> OpportunityLine:
    opportunity = _opportunity_ensure_lines_editable(opportunity=line.opportunity, user=user)
    line = record_save(instance=record_lock(line), data=_line_data(data), user=user)
    _opportunity_amount_refresh(opportunity=opportunity, user=user)
    return line


@transaction.atomic
def opportunity_line_delete(*, line: OpportunityLine, user: Actor) -> None:
    opportunity = _opportunity_ensure_lines_editable(opportunity=line.opportunity, user=user)
    line.delete()
    _opportunity_amount_refresh(opportunity=opportunity, user=user)


# --- quotes ---------------------------------------------------------------------------------------


def quote_number_next(*, year: int) -> str:
    """The next number of ``year``, from its counter row locked until the caller's transaction ends."""
    QuoteCounter.objects.bulk_create([QuoteCounter(year=year)], ignore_conflicts=True)
    counter = QuoteCounter.objects.select_for_update().get(year=year)
    counter.last_number += 1
    counter.save(update_fields=["last_number"])
    return f"Q-{year}-{counter.last_number:04d}"


def _lines_replace(*, quote: Quote, lines: Iterable[Mapping[str, Any]]) -> None:
    quote.lines.all().delete()
    for index, values in enumerate(lines):
        line_data = _line_data(values)
        line_data.setdefault("position", index + 1)
        try:
            record_save(instance=QuoteLine(quote=quote), data=line_data, publish=False)
        except ValidationError as exc:
            raise ValidationError(
                {
                    "lines": [
                        f"Line {index + 1}, {key}: {' '.join(errors)}"
                        for key, errors in exc.message_dict.items()
                    ]
                }
            ) from exc


def _quote_totals_refresh(quote: Quote) -> Quote:
    figures = pricing.totals(quote.lines.all())
    quote.subtotal, quote.tax_total, quote.total = figures.subtotal, figures.tax_total, figures.total
    quote.save(update_fields=["subtotal", "tax_total", "total", "updated_at"])
    return quote


QUOTE_FIELDS = ("currency", "valid_until", "payment_terms", "notes")


@transaction.atomic
def quote_create(
    *,
    opportunity: Opportunity,
    user: Actor,
    data: Mapping[str, Any] | None = None,
    lines: Iterable[Mapping[str, Any]] | None = None,
) -> Quote:
    """A draft quote of ``opportunity`` numbered for this year, with the deal's lines copied (or
    ``lines``), valid CRM_QUOTE_VALIDITY_DAYS by default."""
    record_ensure_changeable(user=user, record=opportunity)
    data = {name: value for name, value in (data or {}).items() if name in QUOTE_FIELDS}
    data.setdefault("valid_until", timezone.localdate() + timedelta(days=settings.CRM_QUOTE_VALIDITY_DAYS))
    if lines is None:
        lines = [line.copy_values() for line in opportunity.lines.select_related("product")]
    quote = Quote(
        opportunity=opportunity,
        number=quote_number_next(year=timezone.localdate().year),
        created_by=person(user),
    )
    quote = record_save(instance=quote, data=data, user=user)
    _lines_replace(quote=quote, lines=lines)
    return _quote_totals_refresh(quote)


def quote_ensure_editable(quote: Quote) -> None:
    if quote.is_frozen:
        raise ValidationError(
            f"Quote {quote} was replaced by a newer version: it is frozen.", code=NOT_EDITABLE
        )
    if quote.status != QuoteStatus.DRAFT:
        raise ValidationError(
            f"Quote {quote} was {quote.get_status_display().lower()}: revise it to change it.",
            code=NOT_EDITABLE,
        )


@transaction.atomic
def quote_update(
    *,
    quote: Quote,
    user: Actor,
    data: Mapping[str, Any],
    lines: Iterable[Mapping[str, Any]] | None = None,
) -> Quote:
    """Change a draft quote (its terms; ``lines`` replaces its lines). A sent one is refused: revise it."""
    quote = record_lock(quote)
    record_ensure_changeable(user=user, record=quote.opportunity)
    data = {name: value for name, value in data.items() if name in QUOTE_FIELDS}
    try:
        quote_ensure_editable(quote)
    except ValidationError as exc:
        # A 400 on each field the request would change: nothing is written.
        fields = [*data, *(["lines"] if lines is not None else [])] or ["status"]
        raise ValidationError(dict.fromkeys(fields, exc.messages)) from exc
    quote = record_save(instance=quote, data=data, user=user)
    if lines is not None:
        _lines_replace(quote=quote, lines=lines)
    return _quote_totals_refresh(quote)


@transaction.atomic
def quote_lines_save(*, quote: Quote, user: Actor) -> Quote:
    """After lines were written one by one (the admin's inline): recompute the totals."""
    quote = record_lock(quote)
    return _quote_totals_refresh(quote)


@transaction.atomic
def quote_line_write(
    *,
    quote: Quote,
    user: Actor,
    line: QuoteLine | None = None,
    data: Mapping[str, Any] | None = None,
    delete: bool = False,
) -> QuoteLine | None:
    """Add, change or (``delete``) remove one line of a draft quote (the admin's inline rows)."""
    quote = record_lock(quote)
    record_ensure_changeable(user=user, record=quote.opportunity)
    quote_ensure_editable(quote)
    if delete:
        line.delete()
        return None
    instance = record_lock(line) if line is not None else QuoteLine(quote=quote)
    return record_save(instance=instance, data=_line_data(data or {}), publish=False)


@transaction.atomic
def quote_revise(*, quote: Quote, user: Actor) -> Quote:
    """A new draft version of a sent, declined or expired quote, its lines copied; the old one is frozen."""
    quote = record_lock(quote)
    record_ensure_changeable(user=user, record=quote.opportunity)
    if quote.is_frozen:
        raise ValidationError(
            f"Quote {quote} was already revised: revise its latest version.", code=NOT_EDITABLE
        )
    if quote.status == QuoteStatus.ACCEPTED:
        raise ValidationError(f"Quote {quote} was accepted: it cannot be revised.", code=ANSWERED)
    lines = [line.copy_values() for line in quote.lines.select_related("product")]
    quote.superseded_at = timezone.now()
    quote.save(update_fields=["superseded_at", "updated_at"])
    new = Quote(
        opportunity=quote.opportunity,
        number=quote.number,
        version=quote.version + 1,
        created_by=person(user),
    )
    data = {name: getattr(quote, name) for name in QUOTE_FIELDS}
    if data["valid_until"] is None or data["valid_until"] < timezone.localdate():
        data["valid_until"] = timezone.localdate() + timedelta(days=settings.CRM_QUOTE_VALIDITY_DAYS)
    new = record_save(instance=new, data=data, user=user)
    _lines_replace(quote=new, lines=lines)
    return _quote_totals_refresh(new)


@transaction.atomic
def quote_pdf_store(*, quote: Quote, user: Actor) -> Quote:
    """Render the quote's PDF and keep it with the quote (replacing an earlier one)."""
    from sales.quote_pdf import quote_pdf_bytes

    quote = record_lock(quote)
    content = quote_pdf_bytes(quote)
    if quote.pdf:
        quote.pdf.delete(save=False)
    quote.pdf.save(f"{quote.number}-v{quote.version}.pdf", ContentFile(content), save=False)
    quote.save(update_fields=["pdf", "updated_at"])
    return quote


@transaction.atomic
def quote_send(*, quote: Quote, user: Actor, to: str = "") -> Quote:
    """Send a draft (or send again a sent) quote by email with its PDF: the PDF is stored now, the email
    leaves after the commit (a task: a worker with a broker, else this process)."""
    from crm.events import dispatch
    from sales import tasks

    quote = record_lock(quote)
    record_ensure_changeable(user=user, record=quote.opportunity)
    if quote.is_frozen or quote.status not in (QuoteStatus.DRAFT, QuoteStatus.SENT):
        raise ValidationError(
            f"Quote {quote} is {quote.get_status_display().lower()}: only a draft or sent quote is sent.",
            code=NOT_EDITABLE,
        )
    if not quote.lines.exists():
        raise ValidationError({"lines": "A quote without lines cannot be sent."})
    recipient = to or (quote.opportunity.contact.email if quote.opportunity.contact_id else "")
    if not recipient:
        raise ValidationError({"to": "The deal has no contact with an email: give the address to send to."})
    quote = record_save(
        instance=quote,
        data={"status": QuoteStatus.SENT, "sent_at": timezone.now(), "recipient_email": recipient},
        user=user,
    )
    quote = quote_pdf_store(quote=quote, user=user)
    dispatch.send_after_commit(tasks.quote_email_send, quote.pk)
    return quote


def quote_accepted_stage(opportunity: Opportunity) -> Stage | None:
    """The stage an accepted quote moves its deal to (CRM_QUOTE_ACCEPTED_STAGE): None for "won"."""
    name = settings.CRM_QUOTE_ACCEPTED_STAGE
    if name.lower() == "won":
        return None
    return opportunity.pipeline.stages.filter(name__iexact=name).first()


@transaction.atomic
def quote_answer(*, quote: Quote, user: Actor, accept: bool, name: str, address: str | None) -> Quote:
    """The customer accepts or declines a sent quote (the public link): who, when, from where. An
    acceptance moves the deal as CRM_QUOTE_ACCEPTED_STAGE says, through the opportunity services."""
    from sales import services

    quote = record_lock(quote)
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": "Type your name to answer."})
    if quote.status in (QuoteStatus.ACCEPTED, QuoteStatus.DECLINED):
        raise ValidationError(f"This quote was already {quote.status}.", code=ANSWERED)
    if quote.is_frozen or quote.status != QuoteStatus.SENT:
        raise ValidationError(
            f"This quote is {quote.get_status_display().lower()}: it cannot be answered.", code=CLOSED
        )
    if quote.valid_until is not None and quote.valid_until < timezone.localdate():
        raise ValidationError("This quote is no longer valid.", code=CLOSED)
    quote = record_save(
        instance=quote,
        data={
            "status": QuoteStatus.ACCEPTED if accept else QuoteStatus.DECLINED,
            "answered_at": timezone.now(),
            "answered_by_name": name[:200],
            "answered_from_ip": address,
        },
        user=user,
    )
    opportunity = quote.opportunity
    if accept and not opportunity.is_closed:
        stage = quote_accepted_stage(opportunity)
        if stage is None:
            services.opportunity_mark_won(opportunity=opportunity, user=user)
        else:
            services.opportunity_move_stage(opportunity=opportunity, stage=stage, user=user)
    return quote


@transaction.atomic
def quotes_expire(*, user: Actor) -> int:
    """Expire every sent quote whose validity date has passed (the beat job); returns how many."""
    today = timezone.localdate()
    due = Quote.objects.select_for_update(skip_locked=True).filter(
        status=QuoteStatus.SENT, superseded_at__isnull=True, valid_until__lt=today
    )
    count = 0
    for quote in due:
        record_save(instance=quote, data={"status": QuoteStatus.EXPIRED}, user=user)
        count += 1
    return count
