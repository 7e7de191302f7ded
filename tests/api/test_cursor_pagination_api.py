"""Paging the resource lists by cursor: keyset pages newest first, next/previous links, no COUNT(*),
the filters and visibility of the list, and 400s for what it cannot do."""

import base64
import datetime
import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from activities.models import Activity
from crm.models import Account, Contact, Lead
from sales.models import Opportunity
from tests.api.conftest import grant, url
from tests.factories import (
    AccountFactory,
    ActivityFactory,
    ContactFactory,
    LeadFactory,
    OpportunityFactory,
    UserFactory,
)

RESOURCES = {
    "leads/": (Lead, LeadFactory),
    "opportunities/": (Opportunity, OpportunityFactory),
    "activities/": (Activity, ActivityFactory),
    "contacts/": (Contact, ContactFactory),
    "accounts/": (Account, AccountFactory),
}


def make(model, factory, n: int, **kwargs) -> list[int]:
    """``n`` records, two of them sharing a created_at (the id breaks the tie); ids newest first."""
    records = factory.create_batch(n, **kwargs)
    base = timezone.now() - datetime.timedelta(days=1)
    for index, record in enumerate(records):
        created = base + datetime.timedelta(minutes=min(index, n - 2))
        model.objects.filter(pk=record.pk).update(created_at=created)
    return [record.pk for record in reversed(records)]


def walk(client, first: str, direction: str = "next") -> list[list[int]]:
    pages, link = [], first
    while link:
        response = client.get(link)
        assert response.status_code == 200, response.json()
        body = response.json()
        assert "count" not in body
        pages.append([record["id"] for record in body["results"]])
        link = body[direction]
    return pages


@pytest.mark.django_db
@pytest.mark.parametrize("path", RESOURCES)
def test_cursor_pages_walk_forward_and_back_over_every_record_once(api, stages, path):
    model, factory = RESOURCES[path]
    links = {"lead": LeadFactory()} if model is Activity else {}
    ids = make(model, factory, 7, **links)
    expected = list(model.objects.order_by("-created_at", "-pk").values_list("pk", flat=True))
    assert set(ids) <= set(expected)

    forward = walk(api, url(f"{path}?cursor=&page_size=3"))
    assert [pk for page in forward for pk in page] == expected
    assert all(len(page) == 3 for page in forward[:-1])

    last = api.get(url(f"{path}?cursor=&page_size=3")).json()
    while last["next"]:
        last = api.get(last["next"]).json()
    backward = walk(api, last["previous"], "previous")
    assert [pk for page in reversed(backward) for pk in page] == expected[: len(expected) - len(forward[-1])]


@pytest.mark.django_db
def test_oldest_first_and_filters_apply(api, stages):
    hot = make(Lead, LeadFactory, 5, rating="hot")
    make(Lead, LeadFactory, 3, rating="cold")

    pages = walk(api, url("leads/?cursor=&page_size=2&ordering=created_at&rating=hot"))

    assert [pk for page in pages for pk in page] == list(reversed(hot))


@pytest.mark.django_db
def test_first_page_has_no_previous_and_the_last_no_next(api, stages):
    make(Lead, LeadFactory, 2)
    body = api.get(url("leads/?cursor=&page_size=5")).json()
    assert body["previous"] is None and body["next"] is None and len(body["results"]) == 2


@pytest.mark.django_db
def test_cursor_pages_make_no_count_query(api, stages):
    make(Lead, LeadFactory, 4)
    first = api.get(url("leads/?cursor=&page_size=2")).json()
    with CaptureQueriesContext(connection) as queries:
        response = api.get(first["next"])
    assert response.status_code == 200
    assert not [q["sql"] for q in queries.captured_queries if "COUNT(" in q["sql"] and "crm_lead" in q["sql"]]


@pytest.mark.django_db
def test_page_numbers_still_work(api, stages):
    make(Lead, LeadFactory, 3)
    body = api.get(url("leads/?page=2&page_size=2")).json()
    assert body["count"] == 3 and len(body["results"]) == 1 and body["next"] is None


@pytest.mark.django_db
def test_visibility_rules_apply_to_cursor_pages(stages):
    rep = grant(UserFactory(), "view_lead")
    other = UserFactory()
    mine = LeadFactory.create_batch(3, owner=rep)
    LeadFactory.create_batch(3, owner=other)
    client = APIClient()
    client.force_authenticate(rep)

    pages = walk(client, url("leads/?cursor=&page_size=2"))

    assert sorted(pk for page in pages for pk in page) == sorted(lead.pk for lead in mine)


def token(data) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        "%%%",
        token({"c": "yesterday", "i": 1, "b": False, "o": "-created_at"}),
        token({"c": "2026-01-01T00:00:00+00:00", "i": "x", "b": False, "o": "-created_at"}),
        token({"c": "2026-01-01T00:00:00", "i": 1, "b": False, "o": "-created_at"}),
        token({"i": 1}),
        token([1, 2]),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    ],
)
def test_malformed_cursor_is_a_400(api, stages, cursor):
    response = api.get(url("leads/"), {"cursor": cursor})
    assert response.status_code == 400
    assert "cursor" in response.json()


@pytest.mark.django_db
def test_cursor_of_another_ordering_is_a_400(api, stages):
    make(Lead, LeadFactory, 3)
    next_link = api.get(url("leads/?cursor=&page_size=1")).json()["next"]
    response = api.get(next_link + "&ordering=created_at")
    assert response.status_code == 400 and "cursor" in response.json()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "query, field",
    [
        ("cursor=&ordering=name", "ordering"),
        ("cursor=&page=2", "cursor"),
        ("cursor=&page_size=0", "page_size"),
    ],
)
def test_what_cursor_pages_cannot_do_is_a_400(api, stages, query, field):
    response = api.get(url(f"leads/?{query}"))
    assert response.status_code == 400
    assert field in response.json()


@pytest.mark.django_db
def test_cursor_is_refused_outside_resource_lists(api, stages):
    lead = LeadFactory()
    response = api.get(url(f"leads/{lead.pk}/history/?cursor="))
    assert response.status_code == 400 and "cursor" in response.json()


@pytest.mark.django_db
def test_schema_documents_the_cursor(api):
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    for path in ("leads", "opportunities", "activities", "contacts", "accounts"):
        parameters = schema["paths"][f"/api/v1/crm/{path}/"]["get"]["parameters"]
        assert "cursor" in {parameter["name"] for parameter in parameters}
    assert "cursor" not in {
        parameter["name"]
        for parameter in schema["paths"]["/api/v1/crm/leads/{id}/history/"]["get"]["parameters"]
    }
