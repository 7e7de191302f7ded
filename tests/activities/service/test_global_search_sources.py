"""Issue 23 item 3: tickets and knowledge-base articles are kinds of the header's global search, read
through the tickets' visibility rule (the queue, the assignee, managers) and the agents' permissions."""

from django.urls import reverse

from activities.models import ArticleStatus
from activities.service.kb import article_create
from crm.search import global_search

URL = reverse("admin:search")


def _found(user, term):
    return {group.key: [hit.title for hit in group.hits] for group in global_search(user=user, term=term)}


def test_tickets_are_found_by_number_subject_and_address_as_far_as_the_reader_sees_them(
    personas, make_ticket
):
    owner, outsider = personas.users["owner"], personas.users["outsider"]
    west, east = personas.teams["West"], personas.teams["East"]
    ticket = make_ticket(
        subject="Invoice PDF is blank", requester_email="ana@blank-invoices.example", team=west
    )
    theirs = make_ticket(subject="East's own invoice question", team=east)

    assert _found(owner, "pdf is BLANK") == {"tickets": [str(ticket)]}
    assert _found(owner, "blank-invoices")["tickets"] == [str(ticket)]
    assert _found(owner, ticket.number)["tickets"] == [str(ticket)]
    # Another team's queue: not found, not counted.
    assert "tickets" not in _found(outsider, "pdf is blank")
    assert _found(outsider, "invoice")["tickets"] == [str(theirs)]


def test_articles_are_found_by_title_and_keywords_from_the_header(admin_as, personas):
    article_create(
        user=personas.users["crm_admin"],
        data={"title": "Resetting a password", "body": "Open the login page.", "keywords": "sso, login"},
    )
    article_create(
        user=personas.users["crm_admin"],
        data={"status": ArticleStatus.PUBLISHED, "title": "Exporting invoices", "body": "From the list."},
    )

    page = admin_as("crm_admin").get(URL, {"q": "sso", "format": "json"}).json()
    assert [(group["key"], [hit["title"] for hit in group["hits"]]) for group in page["groups"]] == [
        ("articles", ["Resetting a password"])
    ]
    assert _found(personas.users["crm_admin"], "exporting") == {"articles": ["Exporting invoices"]}
