"""The lead list reads its page as rows (crm.api.listing.LeadListRows), not through LeadSerializer:
each row must be the JSON the serializer gives for that lead (its detail), key for key and in the same
key order, whatever the lead holds; and the orjson renderer must write the bytes DRF's would."""

import datetime
import json
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework import serializers
from rest_framework.renderers import JSONRenderer

from crm.api.listing import _page_converter
from crm.models import Campaign, Lead, ScoreBreakdown, StageTiming
from sales.models import ExchangeRate, OpportunityStageChange
from tests.api.conftest import url
from tests.factories import (
    AccountFactory,
    ContactFactory,
    LeadFactory,
    LostReasonFactory,
    TagFactory,
    UserFactory,
)


@pytest.fixture
def varied_leads(api, stages, settings):
    """Open, lost and converted leads; with and without owner, tags, breakdown, revenue, campaign;
    enough closed ones that the open leads get an automated probability."""
    settings.CRM_WIN_MODEL_MIN_CLOSED = 2
    rep = UserFactory(username="zoë")
    first, second = TagFactory(name="b-second"), TagFactory(name="a-first")
    campaign = Campaign.objects.create(name="Spring")
    breakdown = ScoreBreakdown.objects.create(
        lines=[["source", "referral", 20], ["unknown_rule", "x", 5]], digest="d" * 64
    )
    reason = LostReasonFactory(name="Price")
    closing = [LeadFactory(stage=stages["New"], source="referral") for _ in range(3)]
    for lead in closing[:2]:
        assert api.post(url(f"leads/{lead.pk}/convert/"), {}, format="json").status_code == 200
    body = {"lost_reason_id": reason.pk, "lost_note": "Too dear\u2028really"}
    assert api.post(url(f"leads/{closing[2].pk}/mark-lost/"), body, format="json").status_code == 200

    tagged = LeadFactory(
        name="Zoë — 50 seats \u2029 “quoted”",
        stage=stages["Qualified"],
        owner=rep,
        priority="high",
        rating="hot",
        source="referral",
        expected_revenue=Decimal("1234.5"),
        campaign=campaign,
        score=25,
        score_breakdown=breakdown,
        description="line one\nline two",
    )
    tagged.tags.add(first, second)
    bare = LeadFactory(stage=stages["New"])
    Lead.objects.filter(pk=bare.pk).update(owner=None, expected_revenue=None)
    dated = LeadFactory(stage=stages["New"], expected_revenue=Decimal("0.10"))
    Lead.objects.filter(pk=dated.pk).update(
        created_at=timezone.now() - datetime.timedelta(days=400, microseconds=123)
    )
    return [*closing, tagged, bare, dated]


@pytest.mark.django_db
def test_every_listed_lead_is_its_detail_key_for_key(api, varied_leads):
    page = api.get(url("leads/?page_size=200")).json()
    assert page["count"] == len(varied_leads)
    rows = {row["id"]: row for row in page["results"]}
    assert set(rows) == {lead.pk for lead in varied_leads}
    for lead in varied_leads:
        detail = api.get(url(f"leads/{lead.pk}/")).json()
        assert list(rows[lead.pk]) == list(detail)
        assert rows[lead.pk] == detail
    # The cases the fixture meant to cover are there (else the comparison above proves less).
    shown = list(rows.values())
    assert {row["status"] for row in shown} == {"open", "lost", "converted"}
    assert any(row["automated_probability"] is not None for row in shown)
    assert any(row["converted_opportunity_id"] is not None for row in shown)
    assert any(row["lost_reason_name"] == "Price" for row in shown)
    tagged = next(row for row in shown if row["owner_username"] == "zoë")
    assert len(tagged["tags"]) == 2  # in tag name order, as the detail lists them
    assert tagged["score_breakdown"][1]["label"] == "unknown_rule"
    assert tagged["expected_revenue"] == "1234.50"


@pytest.mark.django_db
@pytest.mark.parametrize("zone", ["America/St_Johns", "Asia/Kathmandu"])
def test_a_lists_times_are_its_details_in_the_sites_time_zone(api, varied_leads, settings, zone):
    """The rows write a page's datetimes themselves (crm.api.listing._page_converter): in a zone
    other than UTC they are still what DRF's field writes for the record's detail."""
    settings.TIME_ZONE = zone
    rows = {row["id"]: row for row in api.get(url("leads/?page_size=200")).json()["results"]}
    for lead in varied_leads:
        assert rows[lead.pk] == api.get(url(f"leads/{lead.pk}/")).json()
    offsets = {"America/St_Johns": ("-03:30", "-02:30"), "Asia/Kathmandu": ("+05:45",)}[zone]
    assert all(row[key][-6:] in offsets for row in rows.values() for key in ("created_at", "updated_at"))


@pytest.mark.django_db
def test_the_cursor_pages_list_the_same_rows(api, varied_leads):
    numbered = api.get(url("leads/?page_size=200")).json()["results"]
    first = api.get(url("leads/?page_size=4&cursor=")).json()
    second = api.get(first["next"]).json()
    assert first["results"] + second["results"] == numbered
    assert second["next"] is None


@pytest.mark.django_db
def test_the_renderer_writes_the_bytes_drf_would(api, varied_leads):
    for path in ("leads/?page_size=200", f"leads/{varied_leads[3].pk}/", "leads/kanban/", "tags/"):
        response = api.get(url(path))
        assert response.status_code == 200
        assert response.content == JSONRenderer().render(response.data), path
    assert b"\\u2028" in api.get(url("leads/?status=lost")).content


@pytest.fixture
def varied_deals(api, stages, settings):
    """Open deals with and without account, contact, owner, tags, close date and stage timing (one
    rotting); a won and a lost one; one in EUR; enough closed ones for an automated probability."""
    settings.CRM_WIN_MODEL_MIN_CLOSED = 2
    rep = UserFactory(username="yann")
    account = AccountFactory(name="Aurora “AG”", industry="technology")
    contact = ContactFactory(first_name="Zoë", last_name="Ng", account=account)
    nameless = ContactFactory(first_name="", last_name="Solo", account=None)
    first, second = TagFactory(name="d-second"), TagFactory(name="c-first")
    StageTiming.objects.create(
        stage=stages["Qualified"], usual_days=2.26, stays=5, computed_at=timezone.now()
    )
    ExchangeRate.objects.create(currency="EUR", date=datetime.date(2000, 1, 1), rate=Decimal("1.1"))
    reason = LostReasonFactory(name="Budget")

    def deal(**data):
        body = {"name": "Deal", "amount": "100.00", **data}
        response = api.post(url("opportunities/"), body, format="json")
        assert response.status_code == 201, response.json()
        return response.json()["id"]

    won, lost = deal(name="Won"), deal(name="Lost", amount="333.33")
    assert api.post(url(f"opportunities/{won}/mark-won/"), {}, format="json").status_code == 200
    body = {"lost_reason_id": reason.pk, "lost_note": "Too dear\u2028really"}
    assert api.post(url(f"opportunities/{lost}/mark-lost/"), body, format="json").status_code == 200
    third = deal(name="Closed too")
    assert api.post(url(f"opportunities/{third}/mark-won/"), {}, format="json").status_code == 200
    rotting = deal(
        name="Zoë — 50 seats \u2029 “quoted”",
        account_id=account.pk,
        contact_id=contact.pk,
        stage_id=stages["Qualified"].pk,
        owner_id=rep.pk,
        priority="high",
        amount="1234.5",
        probability=33,
        close_date="2027-01-31",
        tags=[first.pk, second.pk],
        description="line one\nline two",
    )
    OpportunityStageChange.objects.filter(record_id=rotting).update(
        changed_at=timezone.now() - datetime.timedelta(days=9, hours=3)
    )
    fresh = deal(name="Fresh", stage_id=stages["Qualified"].pk, contact_id=nameless.pk, currency="EUR")
    bare = deal(name="Bare", amount="0.10", owner_id=None)
    return [won, lost, third, rotting, fresh, bare]


@pytest.mark.django_db
def test_every_listed_deal_is_its_detail_key_for_key(api, varied_deals):
    page = api.get(url("opportunities/?page_size=200")).json()
    assert page["count"] == len(varied_deals)
    rows = {row["id"]: row for row in page["results"]}
    assert set(rows) == set(varied_deals)
    for pk in varied_deals:
        detail = api.get(url(f"opportunities/{pk}/")).json()
        assert list(rows[pk]) == list(detail)
        assert rows[pk] == detail
    shown = list(rows.values())
    assert {row["status"] for row in shown} == {"open", "won", "lost"}
    assert any(row["automated_probability"] is not None for row in shown)
    assert any(row["lost_reason_name"] == "Budget" for row in shown)
    rotting = rows[varied_deals[3]]
    assert (rotting["is_rotting"], rotting["stage_usual_time"], rotting["days_in_stage"]) == (True, 2.3, 9.1)
    assert (rotting["contact_name"], rotting["weighted_amount"], len(rotting["tags"])) == (
        "Zoë Ng",
        "407.38",  # 1234.50 × 33% = 407.385, half to even as the serializer rounds
        2,
    )
    assert rows[varied_deals[4]]["contact_name"] == "Solo"
    assert rows[varied_deals[5]]["contact_name"] is None


@pytest.mark.django_db
@pytest.mark.parametrize("kind", ["leads", "opportunities"])
def test_a_board_reads_its_cards_as_rows_and_answers_what_its_serializer_gives(
    api, crm_admin, varied_leads, varied_deals, kind
):
    """The API board builds its cards as list rows; the contract is still the board serializer's JSON
    over model instances (the board page and the events use it)."""
    from crm.api.serializers import LeadKanbanSerializer
    from crm.selectors import lead_kanban
    from sales.api.serializers import OpportunityKanbanSerializer
    from sales.selectors import opportunity_kanban

    selector, serializer = {
        "leads": (lead_kanban, LeadKanbanSerializer),
        "opportunities": (opportunity_kanban, OpportunityKanbanSerializer),
    }[kind]
    response = api.get(url(f"{kind}/kanban/?limit=3"))
    assert response.status_code == 200
    board = selector(user=crm_admin, limit=3)
    request = response.wsgi_request
    expected = serializer(board, context={"request": request}).data
    assert response.json() == json.loads(JSONRenderer().render(expected))
    assert sum(len(column["results"]) for column in response.json()["columns"]) >= 4
    assert response.content == JSONRenderer().render(response.data)


@pytest.mark.django_db
@pytest.mark.parametrize("path, table", [("leads/", "crm_lead"), ("opportunities/", "sales_opportunity")])
def test_a_list_narrowed_only_by_what_the_rollup_keeps_is_counted_from_it_any_other_by_its_records(
    api, varied_leads, varied_deals, path, table
):
    every = api.get(url(f"{path}?page_size=200")).json()["results"]
    counting = f'SELECT COUNT(*) AS "__count" FROM "{table}"'

    def page_and_queries(query: str) -> tuple[dict, list[str]]:
        with CaptureQueriesContext(connection) as queries:
            page = api.get(url(f"{path}?{query}")).json()
        # Read now: the next request resets the log the context reads from.
        return page, [captured["sql"] for captured in queries.captured_queries]

    page, queries = page_and_queries("page_size=2&ordering=-created_at")
    assert page["count"] == len(every)
    assert not [sql for sql in queries if sql.startswith(counting)]
    assert any("rollup" in sql for sql in queries)

    # Status, owner, pipeline and stage are the rollup's own columns.
    owner = next(row["owner_id"] for row in every if row["owner_id"] is not None)
    stage = every[0]["stage_id"]
    for query, expected in (
        ("status=open", lambda row: row["status"] == "open"),
        (f"status=open&owner={owner}", lambda row: row["status"] == "open" and row["owner_id"] == owner),
        (f"stage={stage}&pipeline={every[0]['pipeline_id']}", lambda row: row["stage_id"] == stage),
    ):
        page, queries = page_and_queries(f"page_size=2&{query}")
        assert page["count"] == len([row for row in every if expected(row)]), query
        assert not [sql for sql in queries if sql.startswith(counting)], query

    # Priority is not: the records are counted.
    page, queries = page_and_queries("page_size=2&priority=high&status=open")
    assert page["count"] == len(
        [row for row in every if row["priority"] == "high" and row["status"] == "open"]
    )
    assert [sql for sql in queries if sql.startswith(counting)]


@pytest.mark.django_db
@pytest.mark.parametrize("path, table", [("leads/", "crm_lead"), ("opportunities/", "sales_opportunity")])
def test_a_pages_labels_are_read_by_subqueries_not_joins(api, varied_leads, varied_deals, path, table):
    # Each join multiplies the join orders PostgreSQL weighs: the deal list's seven joins (account,
    # contact, pipeline, stage and its timing, lost reason, owner) took 28 ms to plan at a million
    # leads, for 3 ms of execution. A label read by a subquery on its record's key plans alone.
    with CaptureQueriesContext(connection) as queries:
        page = api.get(url(f"{path}?page_size=5&status=open")).json()
    assert page["results"] and any(row["pipeline_name"] for row in page["results"])
    (rows,) = [
        q["sql"] for q in queries.captured_queries if q["sql"].startswith(f'SELECT "{table}"."id" AS "id"')
    ]
    # The tables the page reads: the records' own, then its joins up to the conditions.
    joined = rows.rsplit(f'FROM "{table}"', 1)[1].split(" WHERE ", 1)[0]
    assert "JOIN" not in joined, joined


@pytest.mark.parametrize("zone", ["UTC", "America/St_Johns"])
def test_a_pages_converters_write_what_drfs_fields_write(settings, zone):
    """crm.api.listing works out a datetime's zone and a decimal's quantum once a page: each value
    comes out as DRF's field writes it, whatever the value (rounding, scale, sign, other types)."""
    settings.TIME_ZONE = zone
    fields = [
        serializers.DecimalField(max_digits=14, decimal_places=2),
        serializers.DecimalField(max_digits=5, decimal_places=3, coerce_to_string=True),
        serializers.DecimalField(max_digits=10, decimal_places=2, coerce_to_string=False),
        serializers.DateTimeField(),
        serializers.DateTimeField(format="%Y-%m-%d %H:%M"),
    ]
    decimals = [Decimal("1234.5"), Decimal("0.10"), Decimal("-7"), Decimal("1.005"), Decimal("2.675"), 3, 2.5]
    decimals += [Decimal("12.3456"), Decimal("0E-10"), Decimal("999999999999.99")]
    moments = [
        datetime.datetime(2026, 1, 1, 8, 0, 0, 500000, tzinfo=datetime.UTC),
        datetime.datetime(2026, 7, 1, 23, 59, 59, tzinfo=datetime.UTC),
        datetime.datetime(2026, 3, 29, 1, 30),  # naive
        "2026-01-01T00:00:00Z",
    ]
    for field in fields:
        convert = _page_converter(field)
        values = moments if isinstance(field, serializers.DateTimeField) else decimals
        for value in values:
            try:
                expected = field.to_representation(value)
            except Exception as error:  # the same error, whichever it is
                with pytest.raises(type(error)):
                    convert(value)
            else:
                assert convert(value) == expected, (field, value)
