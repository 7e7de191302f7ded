"""The customer's signed link: read the quote, accept or decline it; tampered, expired, answered links."""

from datetime import timedelta

import pytest
import time_machine
from django.test import Client
from django.utils import timezone

from crm.actors import SYSTEM
from sales import services_quotes
from sales.models import Opportunity, OpportunityStatus, Quote, QuoteStatus
from sales.quote_links import quote_public_url, quote_token
from tests.sales.quoting import ROUNDING_CASES, deal_with_lines

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent_quote(people, stages, media):
    deal = deal_with_lines(owner=people.users["owner"], stage=stages["Qualified"], cases=ROUNDING_CASES[:2])
    quote = services_quotes.quote_create(opportunity=deal, user=SYSTEM)
    return services_quotes.quote_send(quote=quote, user=SYSTEM)


def link(quote) -> str:
    return f"/q/{quote_token(quote)}/"


def test_the_link_shows_the_quote_and_accepting_wins_the_deal(client, sent_quote):
    assert quote_public_url(sent_quote).startswith("http://127.0.0.1:8000/q/")  # CRM_BASE_URL
    page = client.get(link(sent_quote))
    assert page.status_code == 200
    assert sent_quote.number in page.content.decode()
    assert "Line 1" in page.content.decode()

    answered = client.post(
        link(sent_quote), {"decision": "accept", "name": "Ada Buyer"}, REMOTE_ADDR="203.0.113.9"
    )

    assert answered.status_code == 302
    quote = Quote.objects.get(pk=sent_quote.pk)
    assert (quote.status, quote.answered_by_name, quote.answered_from_ip) == (
        QuoteStatus.ACCEPTED,
        "Ada Buyer",
        "203.0.113.9",
    )
    assert timezone.now() - quote.answered_at < timedelta(minutes=1)
    deal = Opportunity.objects.get(pk=quote.opportunity_id)
    assert (deal.status, deal.stage.is_won, deal.probability) == (OpportunityStatus.WON, True, 100)
    assert "accepted by Ada Buyer" in client.get(link(sent_quote)).content.decode()


def test_acceptance_moves_the_deal_to_the_stage_the_setting_names(client, sent_quote, settings):
    settings.CRM_QUOTE_ACCEPTED_STAGE = "Proposal"

    client.post(link(sent_quote), {"decision": "accept", "name": "Ada"})

    deal = Opportunity.objects.get(pk=sent_quote.opportunity_id)
    assert (deal.stage.name, deal.status) == ("Proposal", OpportunityStatus.OPEN)


def test_declining_records_the_answer_and_leaves_the_deal(client, sent_quote):
    client.post(link(sent_quote), {"decision": "decline", "name": "Bob"})

    assert Quote.objects.get(pk=sent_quote.pk).status == QuoteStatus.DECLINED
    assert Opportunity.objects.get(pk=sent_quote.opportunity_id).status == OpportunityStatus.OPEN


def test_a_tampered_link_is_refused_with_a_page(client, sent_quote):
    token = quote_token(sent_quote)
    tampered = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")

    for response in (
        client.get(f"/q/{tampered}/"),
        client.post(f"/q/{tampered}/", {"decision": "accept", "name": "X"}),
    ):
        assert response.status_code == 400
        assert "not valid" in response.content.decode()
    assert client.get("/q/nonsense/").status_code == 400
    assert Quote.objects.get(pk=sent_quote.pk).status == QuoteStatus.SENT


def test_an_expired_link_is_refused_with_a_page(client, sent_quote, settings):
    token = quote_token(sent_quote)

    with time_machine.travel(timezone.now() + timedelta(seconds=settings.CRM_QUOTE_LINK_MAX_AGE + 60)):
        response = client.post(f"/q/{token}/", {"decision": "accept", "name": "Late"})

    assert response.status_code == 410
    assert "expired" in response.content.decode()
    assert Quote.objects.get(pk=sent_quote.pk).status == QuoteStatus.SENT


def test_an_answered_quote_is_not_answered_again(client, sent_quote):
    client.post(link(sent_quote), {"decision": "decline", "name": "Bob"})

    again = client.post(link(sent_quote), {"decision": "accept", "name": "Eve"})

    assert again.status_code == 409
    assert "already declined" in again.content.decode()
    quote = Quote.objects.get(pk=sent_quote.pk)
    assert (quote.status, quote.answered_by_name) == (QuoteStatus.DECLINED, "Bob")
    assert Opportunity.objects.get(pk=sent_quote.opportunity_id).status == OpportunityStatus.OPEN


def test_an_answer_needs_a_name(client, sent_quote):
    response = client.post(link(sent_quote), {"decision": "accept", "name": "  "})

    assert response.status_code == 400
    assert "Type your name" in response.content.decode()
    assert Quote.objects.get(pk=sent_quote.pk).status == QuoteStatus.SENT


def test_a_revised_quotes_old_link_no_longer_answers(client, sent_quote):
    services_quotes.quote_revise(quote=sent_quote, user=SYSTEM)

    response = client.post(link(sent_quote), {"decision": "accept", "name": "Ada"})

    assert response.status_code == 409
    assert Quote.objects.get(pk=sent_quote.pk).status == QuoteStatus.SENT


def test_the_answer_form_is_csrf_protected(sent_quote):
    client = Client(enforce_csrf_checks=True)

    assert client.post(link(sent_quote), {"decision": "accept", "name": "Ada"}).status_code == 403
    page = client.get(link(sent_quote))
    token = page.cookies["csrftoken"].value
    answered = client.post(
        link(sent_quote), {"decision": "accept", "name": "Ada", "csrfmiddlewaretoken": token}
    )
    assert answered.status_code == 302


def test_the_public_page_is_throttled_per_address(client, sent_quote, settings):
    settings.CRM_QUOTE_PUBLIC_RATE = 3

    statuses = [client.get(link(sent_quote)).status_code for _ in range(4)]

    assert statuses == [200, 200, 200, 429]
