"""Issue 20 item 6: when a ticket is resolved its contact gets a signed link (through the messaging
outbox and its send task) to rate it 1–5 with a comment, once; a link used twice, tampered or expired
is refused with a clear page and changes nothing."""

import re
from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.utils import timezone

from activities.models import SatisfactionSurvey, TicketStatus
from activities.service import services
from activities.service.satisfaction import survey_from_token, survey_public_url, survey_token
from crm.models import OutgoingEmail, OutgoingEmailStatus
from tests.factories import ContactFactory


@pytest.fixture
def contact(db):
    return ContactFactory(first_name="Ada", email="ada@example.com")


def resolve(ticket, user):
    return services.ticket_set_status(ticket=ticket, user=user, status=TicketStatus.RESOLVED)


def path_of(survey) -> str:
    return "/" + survey_public_url(survey).split("/", 3)[3]


@pytest.mark.django_db
def test_resolving_a_ticket_emails_its_contact_a_rating_link_through_the_outbox(
    make_ticket, contact, owner, personas, django_capture_on_commit_callbacks
):
    """The embedded backbone (no broker) runs the outbox's send task in process after the commit."""
    west = personas.teams["West"]
    ticket = make_ticket(contact=contact, assignee=owner, team=west)

    with django_capture_on_commit_callbacks(execute=True):
        resolve(ticket, owner)

    survey = SatisfactionSurvey.objects.get(ticket=ticket)
    assert (survey.email, survey.agent, survey.team, survey.rating) == ("ada@example.com", owner, west, None)
    sent = OutgoingEmail.objects.get(contact=contact)
    assert sent.status == OutgoingEmailStatus.SENT
    [message] = mail.outbox
    assert message.to == ["ada@example.com"] and ticket.number in message.subject
    # The link is signed now: its timestamp is the sending's, its survey this one.
    [link] = re.findall(r"http://\S+/support/survey/\S+/", message.body)
    assert survey_from_token(link.rstrip("/").rsplit("/", 1)[1]) == survey


@pytest.mark.django_db
def test_a_ticket_resolved_again_is_not_surveyed_twice(make_ticket, contact, owner):
    ticket = make_ticket(contact=contact, assignee=owner)
    resolve(ticket, owner)
    services.ticket_set_status(ticket=ticket, user=owner, status=TicketStatus.OPEN)
    resolve(ticket, owner)

    assert SatisfactionSurvey.objects.filter(ticket=ticket).count() == 1
    assert OutgoingEmail.objects.filter(contact=contact).count() == 1


@pytest.mark.django_db
def test_no_survey_without_a_contact_to_ask(make_ticket, owner):
    ticket = make_ticket(requester_email="someone@example.com", assignee=owner)

    resolve(ticket, owner)

    assert not SatisfactionSurvey.objects.exists() and not OutgoingEmail.objects.exists()


@pytest.fixture
def survey(make_ticket, contact, owner):
    ticket = make_ticket(contact=contact, assignee=owner)
    resolve(ticket, owner)
    return SatisfactionSurvey.objects.get(ticket=ticket)


@pytest.mark.django_db
def test_the_link_opens_a_page_without_login_and_records_the_rating_once(client, survey):
    url = path_of(survey)

    page = client.get(url, {"rating": "4"})
    answered = client.post(url, {"rating": "4", "comment": "Quick and kind."})
    again = client.post(url, {"rating": "1", "comment": "Changed my mind."})

    assert page.status_code == 200 and survey.ticket.number in page.content.decode()
    assert answered.status_code == 200 and "recorded" in answered.content.decode()
    assert again.status_code == 409 and "already" in again.content.decode()
    survey.refresh_from_db()
    assert (survey.rating, survey.comment) == (4, "Quick and kind.")
    assert survey.answered_at is not None
    assert client.get(url).status_code == 409


@pytest.mark.django_db
def test_a_tampered_link_is_refused_and_changes_nothing(client, survey):
    token = survey_token(survey)
    forged = token.replace(token.split(":")[0], "eyJzIjo5OTl9")  # another survey id, same signature

    for bad in (forged, token[:-2] + "xx", "nonsense"):
        response = client.post(f"/support/survey/{bad}/", {"rating": "5"})
        assert response.status_code == 400, bad
        assert "not valid" in response.content.decode()
    survey.refresh_from_db()
    assert survey.rating is None and survey.answered_at is None


@pytest.mark.django_db
def test_an_expired_link_is_refused_and_changes_nothing(client, survey, settings):
    url = path_of(survey)
    later = timezone.now() + timedelta(days=settings.CRM_SURVEY_LINK_MAX_AGE_DAYS, minutes=1)

    with time_machine.travel(later):
        response = client.post(url, {"rating": "5"})

    assert response.status_code == 410 and "expired" in response.content.decode()
    survey.refresh_from_db()
    assert survey.rating is None


@pytest.mark.django_db
def test_a_rating_out_of_range_is_a_400_and_changes_nothing(client, survey):
    url = path_of(survey)

    for rating in ("0", "6", "five", ""):
        assert client.post(url, {"rating": rating}).status_code == 400
    survey.refresh_from_db()
    assert survey.answered_at is None
    assert client.post(url, {"rating": "2"}).status_code == 200  # the link still works


@pytest.mark.django_db
def test_surveys_are_read_in_the_admin_by_who_sees_the_ticket_and_never_changed(
    survey, client, owner, outsider
):
    client.force_login(owner)
    listed = client.get("/admin/activities/satisfactionsurvey/")
    change = client.post(f"/admin/activities/satisfactionsurvey/{survey.pk}/change/", {"rating": "5"})
    client.force_login(outsider)
    hidden = client.get("/admin/activities/satisfactionsurvey/")

    assert survey.ticket.number in listed.content.decode()
    assert change.status_code == 403
    assert survey.ticket.number not in hidden.content.decode()
