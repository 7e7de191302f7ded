"""No input makes the API answer 500: junk in every writable field, action body and query parameter."""

import pytest

from activities.api.serializers import ActivitySerializer
from activities.filters import ActivityFilter
from crm.api.serializers import (
    AccountSerializer,
    ContactSerializer,
    LeadConvertInputSerializer,
    LeadSerializer,
    LostReasonSerializer,
    MarkLostInputSerializer,
    MoveStageInputSerializer,
    PipelineSerializer,
    StageSerializer,
    TagSerializer,
)
from crm.filters import (
    AccountFilter,
    ContactFilter,
    LeadFilter,
    LostReasonFilter,
    PipelineFilter,
    StageFilter,
    TagFilter,
)
from sales.api.serializers import DashboardQuerySerializer, ForecastQuerySerializer, OpportunitySerializer
from sales.filters import OpportunityFilter
from tests.api.conftest import url
from tests.factories import AccountFactory, LeadFactory, OpportunityFactory

JUNK = [None, "", "abc", -1, 10**30, 1.5, [1], {"a": 1}, True, "9999-99-99", "x\x00y", "x" * 5000]
QUERY_JUNK = [
    "abc",
    "-1",
    "99999999999999999999",
    "1.5",
    "²",
    "9999-99-99",
    "x\x00y",
    "true,false",
    "__all__",
    ",",  # an empty list item (?ordering=, was a 500, found by the schemathesis run)
]

RESOURCES = {
    "leads": (LeadSerializer, LeadFilter, {"name": "x"}),
    "opportunities": (OpportunitySerializer, OpportunityFilter, {"name": "x"}),
    "accounts": (AccountSerializer, AccountFilter, {"name": "x"}),
    "contacts": (ContactSerializer, ContactFilter, {"first_name": "x"}),
    "activities": (ActivitySerializer, ActivityFilter, {"subject": "x", "activity_type": "call"}),
    "pipelines": (PipelineSerializer, PipelineFilter, {"name": "x"}),
    "stages": (StageSerializer, StageFilter, {"name": "x"}),
    "tags": (TagSerializer, TagFilter, {"name": "x"}),
    "lost-reasons": (LostReasonSerializer, LostReasonFilter, {"name": "x"}),
}


def writable(serializer_class) -> list[str]:
    return [name for name, field in serializer_class().fields.items() if not field.read_only]


BODY_CASES = [
    (path, field) for path, (serializer, _, _) in RESOURCES.items() for field in writable(serializer)
]


def assert_no_server_error(response):
    assert response.status_code < 500, response.content[:300]
    assert response["Content-Type"].startswith("application/json")


@pytest.mark.django_db
@pytest.mark.parametrize(("path", "field"), BODY_CASES)
def test_junk_in_any_field_of_a_create_is_never_a_500(api, stages, path, field):
    base = dict(RESOURCES[path][2])
    if path == "activities":
        base["account_id"] = AccountFactory().pk
    if path == "stages":
        base["pipeline_id"] = stages["New"].pipeline_id
    for value in JUNK:
        assert_no_server_error(api.post(url(f"{path}/"), {**base, field: value}))


@pytest.mark.django_db
@pytest.mark.parametrize("path", list(RESOURCES))
def test_junk_in_every_field_of_an_update_is_never_a_500(api, stages, path):
    created = api.post(
        url(f"{path}/"),
        {
            **RESOURCES[path][2],
            "account_id": AccountFactory().pk if path == "activities" else None,
            "pipeline_id": stages["New"].pipeline_id,
        }
        if path in ("activities", "stages")
        else RESOURCES[path][2],
    )
    assert created.status_code == 201, created.json()
    detail = url(f"{path}/{created.json()['id']}/")
    for value in JUNK:
        junk = dict.fromkeys(writable(RESOURCES[path][0]), value)
        assert_no_server_error(api.patch(detail, junk))
        assert_no_server_error(api.put(detail, junk))


ACTIONS = [
    ("leads/{lead}/move-stage/", MoveStageInputSerializer),
    ("leads/{lead}/mark-lost/", MarkLostInputSerializer),
    ("leads/{lead}/convert/", LeadConvertInputSerializer),
    ("opportunities/{opportunity}/move-stage/", MoveStageInputSerializer),
    ("opportunities/{opportunity}/mark-lost/", MarkLostInputSerializer),
    ("opportunities/{opportunity}/mark-won/", None),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("path", "serializer"), ACTIONS)
def test_junk_in_action_bodies_is_never_a_500(api, stages, path, serializer):
    records = {"lead": LeadFactory(company_name="Acme").pk, "opportunity": OpportunityFactory().pk}
    target = url(path.format(**records))
    fields = writable(serializer) if serializer else ["anything"]
    for field in fields:
        for value in JUNK:
            assert_no_server_error(api.post(target, {field: value}))
    for raw, content_type in [("{", "application/json"), ("[]", "application/json"), ("x", "text/plain")]:
        assert_no_server_error(api.post(target, raw, content_type=content_type))


def query_params(path: str) -> list[str]:
    if path in RESOURCES:
        names = list(RESOURCES[path][1].base_filters)
        names += ["page", "page_size", "created_after", "close_date_after", "due_date_before"]
        return names
    if path in ("leads/kanban", "opportunities/kanban"):
        names = list((LeadFilter if path.startswith("leads") else OpportunityFilter).base_filters)
        return [*names, "limit"]
    serializer = ForecastQuerySerializer if path == "opportunities/forecast" else DashboardQuerySerializer
    return list(serializer().fields)


QUERY_CASES = [
    (path, param)
    for path in [*RESOURCES, "leads/kanban", "opportunities/kanban", "opportunities/forecast", "dashboard"]
    for param in query_params(path)
]


@pytest.mark.django_db
@pytest.mark.parametrize(("path", "param"), QUERY_CASES)
def test_junk_in_query_parameters_is_never_a_500(api, stages, path, param):
    LeadFactory()
    OpportunityFactory()
    for value in QUERY_JUNK:
        assert_no_server_error(api.get(url(f"{path}/"), {param: value}))


@pytest.mark.django_db
@pytest.mark.parametrize("path", list(RESOURCES))
@pytest.mark.parametrize("pk", ["abc", "99999999999999999999", "-1", "1.5"])
def test_odd_ids_in_the_url_are_404(api, pipeline, path, pk):
    assert api.get(url(f"{path}/{pk}/")).status_code == 404
    assert api.patch(url(f"{path}/{pk}/"), {}).status_code == 404
    assert api.delete(url(f"{path}/{pk}/")).status_code == 404
