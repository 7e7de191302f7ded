"""An API list builds only the filters its query names (crm.filters.SearchFilterSet's ``only_given``):
the same records, the same errors, and the browsable API's form still offers every filter (issue 24:
lists at the speed of their SQL)."""

import datetime
from types import SimpleNamespace

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from activities.filters import ActivityFilter
from activities.models import Activity
from crm.filters import LeadFilter, filter_queryset, given_filters
from crm.models import Lead
from sales.filters import OpportunityFilter
from sales.models import Opportunity
from tests.factories import ActivityFactory, LeadFactory, OpportunityFactory, TagFactory

pytestmark = pytest.mark.django_db

CASES = {
    LeadFilter: [
        {"status": "open"},
        {"status": "open", "priority": "high"},
        {"owner": "OWNER", "status": "open"},
        {"tag": "TAG"},
        {"score_min": "10", "score_max": "90"},
        {"created_after": "2020-01-01"},
        {"created_after": "2020-01-01", "created_before": "2100-01-01", "ordering": "-score"},
        {"search": "acme", "ordering": "name"},
        {"ordering": "-score,name"},
        {"status": "nonsense"},
        {"owner": "999999"},
        {"score_min": "many"},
        {"created_after": "yesterday"},
        {"unknown": "1", "status": "won"},
        {"stage": "STAGE", "pipeline": "PIPELINE"},
    ],
    OpportunityFilter: [
        {"status": "open"},
        {"close_date_after": "2020-01-01", "close_date_before": "2100-12-31"},
        {"close_date_before": "2000-01-01"},
        {"close_date_after": "not a date"},
        {"owner": "OWNER", "ordering": "-amount"},
        {"tag": "TAG", "search": "deal"},
        {"currency": "USD", "priority": "high"},
    ],
    ActivityFilter: [
        {"overdue": "true"},
        {"overdue": "maybe"},
        {"status": "planned", "ordering": "due_date"},
        {"owner": "OWNER"},
    ],
}


def _filled(params: dict, records) -> dict:
    values = {
        "OWNER": str(records.users["owner"].pk),
        "TAG": str(records.tag.pk),
        "STAGE": str(records.stages["New"].pk),
        "PIPELINE": str(records.stages["New"].pipeline_id),
    }
    return {key: values.get(value, value) for key, value in params.items()}


@pytest.fixture
def records(people, stages):
    tag = TagFactory(name="vip")
    lead = LeadFactory(name="Acme enquiry", owner=people.users["owner"], stage=stages["New"], score=50)
    lead.tags.add(tag)
    LeadFactory(name="Other", priority="high", score=5)
    deal = OpportunityFactory(
        name="Big deal", owner=people.users["owner"], close_date=datetime.date(2030, 1, 1)
    )
    deal.tags.add(tag)
    ActivityFactory(
        subject="late",
        lead=lead,
        owner=people.users["owner"],
        due_date=timezone.now() - datetime.timedelta(days=2),
    )
    return SimpleNamespace(users=people.users, stages=stages, tag=tag)


@pytest.mark.parametrize("filterset_class", list(CASES))
def test_only_the_filters_named_give_the_same_records_and_errors(records, filterset_class):
    model = {LeadFilter: Lead, OpportunityFilter: Opportunity, ActivityFilter: Activity}[filterset_class]
    for raw in CASES[filterset_class]:
        params = _filled(raw, records)
        every = filterset_class(data=params, queryset=model.objects.all())
        given = filterset_class(data=params, queryset=model.objects.all(), only_given=True)
        assert set(given.filters) == set(given_filters(filterset_class.base_filters, params))
        assert set(given.filters) < set(every.filters), params
        assert given.is_valid() == every.is_valid(), params
        if every.is_valid():
            assert list(given.qs.values_list("pk", flat=True)) == list(
                every.qs.values_list("pk", flat=True)
            ), params
        else:
            assert given.errors == every.errors, params


def test_a_parameter_names_its_filter_or_a_part_of_it():
    filters = OpportunityFilter.base_filters
    assert set(given_filters(filters, ["close_date_after", "status", "nope", ""])) == {"close_date", "status"}
    assert given_filters(filters, []) == {}


def test_the_api_filters_with_the_named_filters_only_and_answers_as_before(records, api_as):
    client = api_as("owner")
    owner = records.users["owner"]
    response = client.get(f"/api/v1/crm/leads/?status=open&owner={owner.pk}&ordering=-score")
    assert response.status_code == 200
    names = [row["name"] for row in response.json()["results"]]
    assert names[0] == "Acme enquiry"  # the highest score first
    assert set(names) == set(Lead.objects.filter(status="open", owner=owner).values_list("name", flat=True))
    bad = client.get("/api/v1/crm/leads/?status=open&score_min=many&owner=999999")
    assert bad.status_code == 400
    assert set(bad.json()) >= {"score_min", "owner"}
    ranged = client.get("/api/v1/crm/opportunities/?close_date_after=2029-12-31&close_date_before=2030-01-02")
    assert [row["name"] for row in ranged.json()["results"]] == ["Big deal"]


def test_the_browsable_apis_filter_form_still_offers_every_filter(records, client):
    client.force_login(records.users["owner"])
    page = client.get("/api/v1/crm/leads/?status=open", HTTP_ACCEPT="text/html").content.decode()
    for name in ("priority", "score_min", "created_after", "tag", "segment", "ordering"):
        assert f'name="{name}"' in page, name


def test_a_selectors_filters_build_only_the_named_ones_too(records):
    """The selectors' filter_queryset (boards, segments, reports) builds the filters the data names,
    as the API's list does, and gives the same records and errors as every filter would."""
    built = []

    class Recording(LeadFilter):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            built.append(set(self.filters))

    for raw in CASES[LeadFilter]:
        params, built[:] = _filled(raw, records), []
        every = LeadFilter(data=params, queryset=Lead.objects.all())
        try:
            found = list(filter_queryset(Recording, Lead.objects.all(), params).values_list("pk", flat=True))
        except ValidationError as error:
            assert not every.is_valid(), params
            assert set(error.message_dict) == set(every.errors), params
        else:
            assert found == list(every.qs.values_list("pk", flat=True)), params
        assert built == [set(given_filters(LeadFilter.base_filters, params))], params
    built[:] = []
    assert filter_queryset(Recording, Lead.objects.all(), {}).count() == Lead.objects.count()
    assert built == [set()]
