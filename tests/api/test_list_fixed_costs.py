"""What a list request costs besides its rows (issue 24, lists at the speed of their SQL): the
permission check names the model without building the selector's queryset, and a list asked for a
page only skips the FilterSet, which would leave it as it is."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from crm.api.viewsets import ServiceModelViewSet, served_model
from crm_project.api import build_router
from tests.api.conftest import url
from tests.factories import LeadFactory, UserFactory


def resource_viewsets() -> list[type[ServiceModelViewSet]]:
    found = {viewset for _prefix, viewset, _basename in build_router().registry}
    return sorted((v for v in found if issubclass(v, ServiceModelViewSet)), key=lambda v: v.__name__)


@pytest.mark.django_db
def test_every_resource_serves_its_serializers_model(superuser):
    viewsets = resource_viewsets()
    assert len(viewsets) >= 20
    for viewset in viewsets:
        view = viewset()
        assert served_model(view) is viewset.selector(user=superuser).model, viewset.__name__


@pytest.mark.django_db
def test_a_user_without_the_view_permission_is_still_refused(db):
    client = APIClient()
    client.force_authenticate(UserFactory())  # in no group: no permission
    for path in ("leads/", "opportunities/", "activities/"):
        assert client.get(url(path)).status_code == 403, path


@pytest.mark.django_db
def test_a_page_only_list_answers_what_a_filtered_one_with_empty_filters_does(api_as, people, stages):
    LeadFactory.create_batch(7, stage=stages["New"], owner=people.users["owner"])
    client = api_as("owner")
    plain = client.get(url("leads/?page_size=5&cursor=")).json()
    empty = client.get(url("leads/?page_size=5&cursor=&status=&search=")).json()
    assert plain["results"] == empty["results"]
    assert len(plain["results"]) == 5
    by_name = client.get(url("leads/?page_size=50&ordering=name")).json()["results"]
    names = [lead["name"] for lead in by_name]
    assert names == sorted(names)
    narrowed = client.get(url("leads/?page_size=50&status=converted")).json()
    assert narrowed["count"] == 0


def _user_rows_read(queries) -> int:
    return sum(
        'FROM "auth_user" WHERE "auth_user"."id" =' in query["sql"] for query in queries.captured_queries
    )


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["leads/", "leads/kanban/", "opportunities/", "activities/", "contacts/"])
def test_a_list_of_the_readers_own_records_takes_them_as_the_owner_without_reading_them_again(
    api_as, people, path
):
    """``?owner=`` the reader's own id (the commonest owner filter: "my leads") is the request's user,
    not a read of their row; another user's id is read and checked as before, and an unknown one is a
    400 on ``owner``."""
    client, owner = api_as("manager"), people.users["owner"]
    manager = people.users["manager"]

    def results(body):
        return (
            body["results"] if "results" in body else [card for c in body["columns"] for card in c["results"]]
        )

    with CaptureQueriesContext(connection) as queries:
        mine = client.get(url(f"{path}?owner={manager.pk}"))
    assert mine.status_code == 200, mine.content
    assert _user_rows_read(queries) == 0
    assert {row["owner_id"] for row in results(mine.json())} <= {manager.pk}

    with CaptureQueriesContext(connection) as queries:
        theirs = client.get(url(f"{path}?owner={owner.pk}"))
    assert theirs.status_code == 200, theirs.content
    assert _user_rows_read(queries) == 1
    assert {row["owner_id"] for row in results(theirs.json())} == {owner.pk}

    unknown = client.get(url(f"{path}?owner=987654321"))
    # (The boards name the field as their selector's error does: owner_id.)
    assert unknown.status_code == 400 and {"owner", "owner_id"} & set(unknown.json())


@pytest.mark.django_db
def test_an_owner_filter_read_outside_a_filterset_still_gives_its_field(api_as, people):
    """A class's own owner filter (read for its keys and widgets: a segment's definition is checked so)
    has no filterset, so no reader: its field is the plain one."""
    from crm.filters import LeadFilter, segment_filter_keys

    assert LeadFilter.base_filters["owner"].field.known is None
    assert "owner" in segment_filter_keys("lead")
    created = api_as("crm_admin").post(
        url("segments/"),
        {"name": "Mine", "entity": "lead", "definition": {"owner": people.users["owner"].pk}},
        format="json",
    )
    assert created.status_code == 201, created.content
