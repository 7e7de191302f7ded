"""Satisfaction surveys: when a ticket is first resolved its contact is emailed (the messaging outbox,
sent by the background task after commit) a signed link to rate it 1–5 with a comment, once.

The link carries the survey's id, signed and timestamped: a tampered link, an expired one
(CRM_SURVEY_LINK_MAX_AGE_DAYS) and a second answer are refused, each with its own message, and change
nothing."""

import datetime

from django.conf import settings
from django.core import signing
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.urls import reverse
from django.utils import timezone

from activities.service.models import SatisfactionSurvey, Ticket
from activities.service.selectors import ticket_visible_to
from crm.actors import SYSTEM, Actor
from crm.messaging.services import outgoing_email_queue

SALT = "activities.survey.link"
INVALID, EXPIRED, USED = "invalid", "expired", "used"


class SurveyLinkRefused(Exception):
    """A link we did not sign (or for a survey gone), an expired one, or one already used."""

    STATUS = {INVALID: 400, EXPIRED: 410, USED: 409}

    def __init__(self, message: str, code: str):
        super().__init__(message)
        self.message, self.code = message, code

    @property
    def status(self) -> int:
        return self.STATUS[self.code]


def survey_max_age() -> datetime.timedelta:
    return datetime.timedelta(days=settings.CRM_SURVEY_LINK_MAX_AGE_DAYS)


def survey_token(survey: SatisfactionSurvey) -> str:
    return signing.dumps({"s": survey.pk}, salt=SALT)


def survey_public_url(survey: SatisfactionSurvey) -> str:
    return settings.CRM_BASE_URL.rstrip("/") + reverse("survey-public", args=[survey_token(survey)])


def survey_from_token(token: str, *, lock: bool = False) -> SatisfactionSurvey:
    """The survey a link names, or SurveyLinkRefused (tampered, expired, used)."""
    try:
        payload = signing.loads(token, salt=SALT, max_age=survey_max_age())
    except signing.SignatureExpired as exc:
        raise SurveyLinkRefused("This link has expired: it was valid for a limited time.", EXPIRED) from exc
    except signing.BadSignature as exc:
        raise SurveyLinkRefused("This link is not valid. Check that it was copied whole.", INVALID) from exc
    if not isinstance(payload, dict) or not isinstance(payload.get("s"), int):
        raise SurveyLinkRefused("This link is not valid. Check that it was copied whole.", INVALID)
    surveys = SatisfactionSurvey.objects.select_related("ticket")
    if lock:
        surveys = surveys.select_for_update(of=("self",))
    survey = surveys.filter(pk=payload["s"]).first()
    if survey is None:
        raise SurveyLinkRefused("This survey no longer exists.", INVALID)
    if survey.answered_at is not None:
        raise SurveyLinkRefused("You rated this ticket already: thank you. A rating is given once.", USED)
    if survey.expires_at <= timezone.now():
        raise SurveyLinkRefused("This link has expired: it was valid for a limited time.", EXPIRED)
    return survey


def ticket_survey_send(*, ticket: Ticket, user: Actor) -> SatisfactionSurvey | None:
    """Called in the transaction that resolves ``ticket``: the first resolution asks its contact for a
    rating (a ticket reopened and resolved again is not asked twice). None when there is no one to ask:
    no contact (the outbox writes to a contact), no address, or a survey already sent."""
    if ticket.contact_id is None or SatisfactionSurvey.objects.filter(ticket=ticket).exists():
        return None
    contact = ticket.contact
    address = (contact.email or ticket.requester_email or "").strip()
    if not address:
        return None
    now = timezone.now()
    survey = SatisfactionSurvey.objects.create(
        ticket=ticket,
        contact=contact,
        email=address,
        agent_id=ticket.assignee_id,
        team_id=ticket.team_id,
        sent_at=now,
        expires_at=now + survey_max_age(),
    )
    url = survey_public_url(survey)
    body = (
        f"Hello {contact.first_name},\n\n"
        f"Your request {ticket.number} “{ticket.subject}” was resolved. How did we do?\n"
        f"Rate it from 1 to 5, with a comment if you like (one answer; the link works for "
        f"{settings.CRM_SURVEY_LINK_MAX_AGE_DAYS} days):\n\n{url}\n"
    )
    # Written to the outbox by the system (the customer hears from support, whoever resolved it).
    outgoing_email_queue(
        record=contact,
        user=SYSTEM,
        subject=f"[{ticket.number}] How did we do?",
        body_text=body,
        to=address,
    )
    return survey


@transaction.atomic
def survey_answer(*, token: str, rating, comment: str = "") -> SatisfactionSurvey:
    """Record the customer's rating, once (the row is locked: two answers at once make one)."""
    survey = survey_from_token(token, lock=True)
    try:
        rating = int(rating)
    except (TypeError, ValueError):
        rating = None
    if rating is None or not 1 <= rating <= 5:
        raise ValidationError({"rating": "Choose a rating from 1 to 5."})
    comment = (comment or "").strip()
    if len(comment) > 5000:
        raise ValidationError({"comment": "Keep the comment under 5,000 characters."})
    survey.rating, survey.comment, survey.answered_at = rating, comment, timezone.now()
    survey.full_clean()
    survey.save(update_fields=["rating", "comment", "answered_at"])
    return survey


def survey_visible_to(user: Actor) -> QuerySet[SatisfactionSurvey]:
    """The surveys of the tickets ``user`` sees."""
    if not user.is_authenticated or not user.has_perm("activities.view_satisfactionsurvey"):
        return SatisfactionSurvey.objects.none()
    return SatisfactionSurvey.objects.filter(ticket__in=ticket_visible_to(user).values("pk"))
