"""Segments (issue 19, item 1): saved filters stored as data and checked on save, static lists, the live
count and preview, ``?segment=`` on the API lists and exports, and the admin list filter."""

import json

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from crm.actors import SYSTEM
from crm.marketing import selectors, services
from crm.models import Lead, Segment
from tests.factories import AccountFactory, ContactFactory, LeadFactory, TagFactory

pytestmark = pytest.mark.django_db

API = "/api/v1/crm/"


@pytest.fixture
def leads(people):
    """Leads of several priorities and sources, owned by the owner (West) and the outsider (East)."""
    stages = people.stages
    owner, outsider = people.users["owner"], people.users["outsider"]
    vip = TagFactory(name="VIP")
    made = []
    for n, (priority, source, who) in enumerate(
        [
            ("high", "website", owner),
            ("high", "website", owner),
            ("high", "website", outsider),
            ("high", "referral", owner),
            ("low", "website", owner),
            ("urgent", "website", outsider),
        ]
    ):
        lead = LeadFactory(
            name=f"Seg lead {n}",
            email=f"seg{n}@x.test",
            priority=priority,
            source=source,
            owner=who,
            stage=stages["New"],
        )
        if n % 2 == 0:
            lead.tags.add(vip)
        made.append(lead)
    return {"leads": made, "vip": vip}


def _segment(api, **body):
    return api.post(API + "segments/", body, format="json")


def test_segment_counts_equal_the_list_filters_counts(api_as, leads):
    api = api_as("crm_admin")
    vip = leads["vip"].pk
    for definition, query in [
        ({"priority": "high", "source": "website"}, "priority=high&source=website"),
        ({"tag": str(vip)}, f"tag={vip}"),
        ({"search": "seg"}, "search=seg"),
        ({"priority": "high", "tag": vip, "status": "open"}, f"priority=high&tag={vip}&status=open"),
    ]:
        response = _segment(api, name=f"S {query}", entity="lead", definition=definition)
        assert response.status_code == 201, response.data
        segment_id = response.data["id"]
        listed = api.get(API + f"leads/?{query}").data["count"]
        preview = api.get(API + f"segments/{segment_id}/preview/").data
        by_segment = api.get(API + f"leads/?segment={segment_id}").data
        assert preview["count"] == listed == by_segment["count"] > 0, query
        assert {row["id"] for row in preview["results"]} == {row["id"] for row in by_segment["results"]}


def test_a_segment_counts_only_what_the_reader_sees(api_as, leads):
    response = _segment(
        api_as("crm_admin"),
        name="High web",
        entity="lead",
        definition={"priority": "high", "source": "website"},
    )
    segment = Segment.objects.get(pk=response.data["id"])
    assert selectors.segment_count(segment=segment, user=SYSTEM) == 3
    owner_view = api_as("owner").get(API + f"segments/{segment.pk}/preview/").data
    assert owner_view["count"] == 2  # the outsider's lead is not the owner's to count
    assert api_as("owner").get(API + f"leads/?segment={segment.pk}").data["count"] == 2


@pytest.mark.parametrize(
    "definition, message",
    [
        ({"colour": "red"}, "“colour” is not a filter of the lead list"),
        ({"priority": "enormous"}, "priority: Select a valid choice"),
        ({"ordering": "name"}, "“ordering” is not a filter"),
        ({"segment": "1"}, "“segment” is not a filter"),
        ({"priority": {"$gt": "low"}}, "priority: give a text, a number or a list of them."),
        (["priority", "high"], "Give the filters as an object"),
        ({"created_after": "yesterday"}, "created: Enter a valid date"),
    ],
)
def test_a_segment_naming_an_unknown_field_or_operator_is_refused(api_as, people, definition, message):
    response = _segment(api_as("crm_admin"), name="Bad", entity="lead", definition=definition)
    assert response.status_code == 400
    assert any(message in text for text in response.data["definition"]), response.data
    assert not Segment.objects.exists()


def test_the_same_filters_work_for_contacts_and_accounts(api_as, people):
    api = api_as("crm_admin")
    acme = AccountFactory(name="Acme Seg", industry="finance")
    AccountFactory(name="Other Seg", industry="retail")
    ContactFactory(first_name="Ann", account=acme, is_active=False)
    contact_seg = _segment(api, name="Inactive", entity="contact", definition={"is_active": False})
    assert contact_seg.status_code == 201, contact_seg.data
    account_seg = _segment(api, name="Finance", entity="account", definition={"industry": "finance"})
    assert account_seg.status_code == 201, account_seg.data
    assert (
        api.get(API + f"segments/{contact_seg.data['id']}/preview/").data["count"]
        == api.get(API + "contacts/?is_active=false").data["count"]
        == 1
    )
    assert api.get(API + f"accounts/?segment={account_seg.data['id']}").data["count"] == 1
    # A segment of another kind of record is not a filter of this list.
    response = api.get(API + f"leads/?segment={account_seg.data['id']}")
    assert response.status_code == 400 and "segment" in response.data


def test_static_segments_take_members_by_hand(api_as, leads):
    api = api_as("crm_admin")
    mine, theirs = leads["leads"][0], leads["leads"][2]
    response = _segment(api, name="Hand-picked", entity="lead", kind="static")
    assert response.status_code == 201, response.data
    segment_id = response.data["id"]
    added = api.post(API + f"segments/{segment_id}/members/", {"add": [mine.pk, theirs.pk]}, format="json")
    assert added.status_code == 200 and added.data["static_member_count"] == 2
    assert api.get(API + f"leads/?segment={segment_id}").data["count"] == 2
    # The owner sees one of them; a manager adding a lead they cannot see is refused, naming it.
    owner = api_as("owner")
    assert owner.get(API + f"segments/{segment_id}/preview/").data["count"] == 1
    removed = api.post(API + f"segments/{segment_id}/members/", {"remove": [theirs.pk]}, format="json")
    assert removed.data["static_member_count"] == 1
    segment = Segment.objects.get(pk=segment_id)
    with pytest.raises(ValidationError, match="No lead you can see has the id"):
        services.segment_members_change(segment=segment, user=people_user(api_as("manager")), add=[theirs.pk])
    assert list(segment.leads.values_list("pk", flat=True)) == [mine.pk]


def people_user(client):
    return client.handler._force_user


def test_a_static_segment_has_no_filters_and_a_dynamic_one_no_members(api_as, leads):
    api = api_as("crm_admin")
    bad = _segment(api, name="Mixed", entity="lead", kind="static", definition={"priority": "high"})
    assert bad.status_code == 400 and "definition" in bad.data
    dynamic = _segment(api, name="Dyn", entity="lead", definition={"priority": "high"})
    response = api.post(
        API + f"segments/{dynamic.data['id']}/members/", {"add": [leads["leads"][0].pk]}, format="json"
    )
    assert response.status_code == 400
    assert not Segment.objects.get(pk=dynamic.data["id"]).leads.exists()


def test_a_sales_rep_reads_segments_but_does_not_define_them(api_as, leads):
    rep = api_as("owner")
    assert rep.get(API + "segments/").status_code == 200
    assert _segment(rep, name="Mine", entity="lead", definition={}).status_code == 403
    with pytest.raises(PermissionDenied):
        services.segment_create(user=people_user(rep), data={"name": "x", "entity": "lead"})


def test_exports_apply_the_segment(api_as, leads):
    api = api_as("crm_admin")
    segment_id = _segment(api, name="Referral", entity="lead", definition={"source": "referral"}).data["id"]
    response = api.get(API + f"leads/export/?format=json&segment={segment_id}")
    assert response.status_code == 200
    assert [row["email"] for row in json.loads(response.content)] == ["seg3@x.test"]


def _queries(client, path: str) -> int:
    with CaptureQueriesContext(connection) as context:
        response = client.get(API + path)
    assert response.status_code == 200
    return len(context.captured_queries)


def test_the_segments_list_costs_a_fixed_number_of_queries(api_as, leads, django_assert_max_num_queries):
    api = api_as("crm_admin")
    for n in range(2):
        _segment(api, name=f"Few {n}", entity="lead", definition={"priority": "high"})
    api.get(API + "segments/")  # the first request also loads the user's permissions into their cache
    few = _queries(api, "segments/")
    for n in range(12):
        static = _segment(api, name=f"Many {n}", entity="lead", kind="static").data["id"]
        api.post(API + f"segments/{static}/members/", {"add": [leads["leads"][0].pk]}, format="json")
    with django_assert_max_num_queries(few):
        assert _queries(api, "segments/?page_size=100") == few
    assert few <= 8


# --- the admin -------------------------------------------------------------------------------------


def test_the_admin_lists_filter_by_segment(admin_as, leads):
    segment = services.segment_create(
        user=SYSTEM, data={"name": "Referrals", "entity": "lead", "definition": {"source": "referral"}}
    )
    client = admin_as("crm_admin")
    page = client.get(f"/admin/crm/lead/?segment={segment.pk}")
    assert page.status_code == 200
    shown = [lead.pk for lead in page.context["cl"].result_list]
    assert shown == [Lead.objects.get(email="seg3@x.test").pk]
    assert "Referrals" in page.content.decode()
    # An id that is no segment of leads: the admin's "bad filter" redirect, not a server error.
    for bad in ("abc", "999999", "99999999999999999999999"):
        assert client.get(f"/admin/crm/lead/?segment={bad}").status_code == 302


def test_the_admin_segment_page_shows_the_live_count_and_refuses_a_bad_filter(admin_as, leads):
    client = admin_as("crm_admin")
    response = client.post(
        "/admin/crm/segment/add/",
        {"name": "High", "entity": "lead", "kind": "dynamic", "definition": '{"priority": "bogus"}'},
    )
    assert response.status_code == 200 and "priority: Select a valid choice" in response.content.decode()
    assert not Segment.objects.exists()
    response = client.post(
        "/admin/crm/segment/add/",
        {"name": "High", "entity": "lead", "kind": "dynamic", "definition": '{"priority": "high"}'},
    )
    assert response.status_code == 302
    segment = Segment.objects.get()
    page = client.get(f"/admin/crm/segment/{segment.pk}/change/").content.decode()
    assert "Live count" in page and "seg0@x.test" in page


def test_the_leads_list_adds_the_selected_to_a_static_segment(admin_as, leads):
    segment = services.segment_create(
        user=SYSTEM, data={"name": "Picked", "entity": "lead", "kind": "static"}
    )
    chosen = [leads["leads"][0].pk, leads["leads"][1].pk]
    response = admin_as("crm_admin").post(
        "/admin/crm/lead/",
        {"action": "add_to_segment", "_selected_action": chosen, "apply": "1", "segment": segment.pk},
    )
    assert response.status_code == 302
    assert sorted(segment.leads.values_list("pk", flat=True)) == sorted(chosen)
