"""The lead list reads its page as rows (crm.api.listing.LeadListRows), not through LeadSerializer:
each row must be the JSON the serializer gives for that lead (its detail), key for key and in the same
key order, whatever the lead holds; and the orjson renderer must write the bytes DRF's would."""

import datetime
from decimal import Decimal

import pytest
from django.utils import timezone
from rest_framework.renderers import JSONRenderer

from crm.models import Campaign, Lead, ScoreBreakdown
from tests.api.conftest import url
from tests.factories import LeadFactory, LostReasonFactory, TagFactory, UserFactory


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
