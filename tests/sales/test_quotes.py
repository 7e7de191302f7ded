"""Quotes: created from a deal, edited while a draft, revised, their PDF, sending, expiry, access."""

import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from pypdf import PdfReader

from crm.actors import SYSTEM
from crm_project.celery import app as celery_app
from sales import services_quotes, tasks
from sales.models import Quote, QuoteLine, QuoteStatus
from sales.quote_pdf import quote_pdf_bytes
from tests.api.conftest import url
from tests.sales.quoting import ROUNDING_CASES, deal_with_lines

pytestmark = pytest.mark.django_db


@pytest.fixture
def deal(people, stages):
    return deal_with_lines(owner=people.users["owner"], stage=stages["New"])


def pdf_text(content: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)


def test_a_quote_is_created_from_a_deal_with_its_lines(api_as, deal):
    response = api_as("owner").post(
        url("quotes/"), {"opportunity_id": deal.pk, "payment_terms": "30 days"}, format="json"
    )

    assert response.status_code == 201, response.json()
    body = response.json()
    year = timezone.localdate().year
    assert (body["number"], body["version"], body["status"]) == (f"Q-{year}-0001", 1, "draft")
    assert [line["description"] for line in body["lines"]] == [f"Line {n}" for n in range(1, 6)]
    assert (body["subtotal"], body["tax_total"], body["total"]) == ("169.40", "20.49", "189.89")
    assert body["tax_by_rate"] == [
        {"rate": "5.00", "net": "0.50", "tax": "0.03"},
        {"rate": "5.50", "net": "91.81", "tax": "5.05"},
        {"rate": "10.00", "net": "0.03", "tax": "0.00"},
        {"rate": "20.00", "net": "77.06", "tax": "15.41"},
    ]
    assert body["acceptance_url"] is None  # a draft has no public link


def test_a_draft_is_edited_and_its_lines_replaced(api_as, deal):
    client = api_as("owner")
    quote = client.post(url("quotes/"), {"opportunity_id": deal.pk}, format="json").json()

    response = client.patch(
        url(f"quotes/{quote['id']}/"),
        {
            "notes": "Thanks",
            "lines": [{"description": "Only line", "quantity": "2", "unit_price": "10", "tax_rate": "10"}],
        },
        format="json",
    )

    assert response.status_code == 200, response.json()
    assert (response.json()["notes"], response.json()["total"]) == ("Thanks", "22.00")
    # The deal's own lines are its own: the quote's copy changed, not them.
    assert deal.lines.count() == 5


@pytest.mark.parametrize(
    "line,field",
    [
        ({"description": "x", "quantity": "-1", "unit_price": "1"}, "quantity"),
        ({"description": "x", "quantity": "1", "unit_price": "-1"}, "unit_price"),
        (
            {"description": "x", "quantity": "1", "unit_price": "1", "discount_percent": "101"},
            "discount_percent",
        ),
    ],
)
def test_bad_quote_lines_are_a_400_naming_the_field(api_as, deal, line, field):
    client = api_as("owner")
    quote = client.post(url("quotes/"), {"opportunity_id": deal.pk}, format="json").json()

    response = client.patch(url(f"quotes/{quote['id']}/"), {"lines": [line]}, format="json")

    assert response.status_code == 400
    assert field in str(response.json()["lines"])
    assert QuoteLine.objects.filter(quote_id=quote["id"]).count() == 5


def test_a_sent_quote_is_not_edited_but_revised(
    api_as, deal, media, smtp_server, django_capture_on_commit_callbacks
):
    client = api_as("owner")
    quote = client.post(url("quotes/"), {"opportunity_id": deal.pk}, format="json").json()
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(url(f"quotes/{quote['id']}/send/"), {}, format="json").status_code == 200

    refused = client.patch(url(f"quotes/{quote['id']}/"), {"notes": "Sneaky"}, format="json")
    assert refused.status_code == 400
    assert "revise" in refused.json()["notes"][0]
    assert Quote.objects.get(pk=quote["id"]).notes == ""

    revised = client.post(url(f"quotes/{quote['id']}/revise/"), format="json")
    assert revised.status_code == 201, revised.json()
    new = revised.json()
    assert (new["number"], new["version"], new["status"], new["is_current"]) == (
        quote["number"],
        2,
        "draft",
        True,
    )
    assert len(new["lines"]) == 5
    old = client.get(url(f"quotes/{quote['id']}/")).json()
    assert (old["is_current"], old["status"]) == (False, "sent")
    assert client.post(url(f"quotes/{quote['id']}/revise/"), format="json").status_code == 400  # frozen
    assert client.patch(url(f"quotes/{new['id']}/"), {"notes": "Better"}, format="json").status_code == 200


def test_the_pdf_holds_every_line_the_totals_and_the_number(deal, settings):
    settings.CRM_COMPANY_NAME = "Quoting Company Ltd"
    settings.CRM_COMPANY_ADDRESS = "1 Main Street | 12345 Springfield"
    quote = services_quotes.quote_create(opportunity=deal, user=SYSTEM)

    text = pdf_text(quote_pdf_bytes(quote))

    for n in range(1, 6):
        assert f"Line {n}" in text
    for *_, net, _tax in ROUNDING_CASES:
        assert net in text
    assert quote.number in text
    for figure in ("169.40", "20.49", "189.89", "15.41", "5.05"):
        assert figure in text
    assert "Quoting Company Ltd" in text and "12345 Springfield" in text


def test_sending_emails_the_pdf_to_a_real_smtp_server(
    api_as, deal, media, smtp_server, django_capture_on_commit_callbacks
):
    client = api_as("owner")
    quote = client.post(url("quotes/"), {"opportunity_id": deal.pk}, format="json").json()

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url(f"quotes/{quote['id']}/send/"), {}, format="json")

    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "sent"
    assert response.json()["acceptance_url"].startswith("http")
    (message,) = smtp_server.wait_for(1)
    assert message["To"] == "buyer@customer.example"
    assert quote["number"] in message["Subject"]
    parts = {part.get_content_type(): part for part in message.walk()}
    body = parts["text/plain"].get_payload(decode=True).decode()
    assert "/q/" in body
    attached = parts["application/pdf"].get_payload(decode=True)
    assert quote["number"] in pdf_text(attached)
    downloaded = client.get(url(f"quotes/{quote['id']}/pdf/"))
    assert downloaded.status_code == 200
    assert downloaded["Content-Type"] == "application/pdf"
    assert b"".join([downloaded.content]) == attached


def test_sending_needs_an_address(api_as, people, stages):
    from tests.factories import OpportunityFactory

    deal = OpportunityFactory(stage=stages["New"], owner=people.users["owner"])
    services_quotes.opportunity_line_create(
        opportunity=deal, user=SYSTEM, data={"description": "x", "unit_price": 1}
    )
    quote = services_quotes.quote_create(opportunity=deal, user=SYSTEM)

    response = api_as("owner").post(url(f"quotes/{quote.pk}/send/"), {}, format="json")

    assert response.status_code == 400
    assert "to" in response.json()
    assert Quote.objects.get(pk=quote.pk).status == QuoteStatus.DRAFT


def test_past_valid_sent_quotes_expire_by_the_beat_job(deal, media):
    quote = services_quotes.quote_create(opportunity=deal, user=SYSTEM)
    quote = services_quotes.quote_send(quote=quote, user=SYSTEM)
    Quote.objects.filter(pk=quote.pk).update(valid_until=timezone.localdate() - timedelta(days=1))
    fresh = services_quotes.quote_send(
        quote=services_quotes.quote_create(opportunity=deal, user=SYSTEM), user=SYSTEM
    )

    assert tasks.quotes_expire() == 1

    assert Quote.objects.get(pk=quote.pk).status == QuoteStatus.EXPIRED
    assert Quote.objects.get(pk=fresh.pk).status == QuoteStatus.SENT
    schedule = celery_app.conf.beat_schedule["quotes-expire"]
    assert schedule["task"] == tasks.quotes_expire.name


def test_a_rep_cannot_see_or_download_another_teams_quote(api_as, admin_as, people, stages, media):
    theirs = deal_with_lines(owner=people.users["outsider"], stage=stages["New"], cases=ROUNDING_CASES[:1])
    quote = services_quotes.quote_create(opportunity=theirs, user=SYSTEM)
    rep = api_as("owner")

    assert rep.get(url(f"quotes/{quote.pk}/")).status_code == 404
    assert rep.get(url(f"quotes/{quote.pk}/pdf/")).status_code == 404
    assert quote.number not in rep.get(url("quotes/")).content.decode()
    assert rep.post(url("quotes/"), {"opportunity_id": theirs.pk}, format="json").status_code == 400
    assert api_as("outsider").get(url(f"quotes/{quote.pk}/pdf/")).status_code == 200
    admin = admin_as("owner")
    assert admin.get(f"/admin/sales/quote/{quote.pk}/pdf/").status_code == 404
    assert quote.number not in admin.get("/admin/sales/quote/").content.decode()


def test_the_admin_creates_sends_and_revises_a_quote(
    admin_as, deal, media, smtp_server, django_capture_on_commit_callbacks
):
    client = admin_as("owner")

    created = client.post(
        "/admin/sales/quote/add/",
        {
            "opportunity": deal.pk,
            "currency": "USD",
            "valid_until": "",
            "payment_terms": "Net 30",
            "notes": "",
        },
    )
    assert created.status_code == 302, created.content.decode()[:2000]
    quote = Quote.objects.get()
    assert quote.lines.count() == 5 and quote.total == Decimal("189.89")
    assert client.get(f"/admin/sales/quote/{quote.pk}/change/").status_code == 200
    pdf = client.get(f"/admin/sales/quote/{quote.pk}/pdf/")
    assert pdf.status_code == 200 and pdf["Content-Type"] == "application/pdf"

    with django_capture_on_commit_callbacks(execute=True):
        sent = client.post(f"/admin/sales/quote/{quote.pk}/send/", {"to": "other@customer.example"})
    assert sent.status_code == 302
    assert smtp_server.wait_for(1)[0]["To"] == "other@customer.example"

    revised = client.post(f"/admin/sales/quote/{quote.pk}/revise/")
    assert revised.status_code == 302
    assert Quote.objects.get(number=quote.number, version=2).status == QuoteStatus.DRAFT
    assert Quote.objects.get(pk=quote.pk).is_frozen
