"""Saved views and the column chooser: the services' rules, the changelist's picker and chooser, the API,
who sees a shared view, and a changelist's query count with a view applied."""

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.urls import reverse

from crm.models import SavedView, ViewSharing
from crm.saved_views.services import (
    saved_view_create,
    saved_view_delete,
    saved_view_list,
    saved_view_update,
)
from tests.factories import LeadFactory, OpportunityFactory

LEADS = reverse("admin:crm_lead_changelist")
API = "/api/v1/crm/saved-views/"


def lead_view(user, **data):
    return saved_view_create(
        user=user,
        data={
            "list_key": "crm.lead",
            "name": "Hot open leads",
            "filters": {"status__exact": "open", "score_band": "hot"},
            "search": "",
            "ordering": ["-revenue"],
            "columns": ["name", "revenue", "owner"],
            **data,
        },
    )


# --- services ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_view_keeps_filters_search_sort_and_columns(owner):
    view = lead_view(owner, search="acme")

    view.refresh_from_db()
    assert (view.owner, view.list_key, view.sharing) == (owner, "crm.lead", ViewSharing.PRIVATE)
    assert view.filters == {"status__exact": "open", "score_band": "hot"}
    assert (view.search, view.ordering, view.columns) == ("acme", ["-revenue"], ["name", "revenue", "owner"])


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("data", "field", "named"),
    [
        ({"columns": ["name", "shoe_size"]}, "columns", "shoe_size"),
        ({"filters": {"shoe_size__exact": "42"}}, "filters", "shoe_size__exact"),
        ({"ordering": ["-shoe_size"]}, "ordering", "shoe_size"),
        ({"ordering": ["tag_list"], "columns": ["name", "tag_list"]}, "ordering", "tag_list"),
        ({"list_key": "crm.nothing"}, "list_key", "crm.nothing"),
    ],
)
def test_an_unknown_column_filter_or_list_is_refused_by_name(owner, data, field, named):
    with pytest.raises(ValidationError) as refused:
        lead_view(owner, **data)
    assert field in refused.value.message_dict
    assert named in " ".join(refused.value.message_dict[field])
    assert not SavedView.objects.exists()


@pytest.mark.django_db
def test_names_are_unique_per_owner_and_list(owner, teammate):
    lead_view(owner)
    with pytest.raises(ValidationError) as refused:
        lead_view(owner)
    assert "name" in refused.value.message_dict
    lead_view(teammate)  # another owner
    saved_view_create(
        user=owner, data={"list_key": "sales.opportunity", "name": "Hot open leads", "columns": ["name"]}
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        SavedView.objects.create(owner=owner, list_key="crm.lead", name="Hot open leads")


@pytest.mark.django_db
def test_one_default_view_per_user_and_list(owner):
    first = lead_view(owner, name="First", is_default=True)
    second = lead_view(owner, name="Second", is_default=True)

    first.refresh_from_db()
    assert (first.is_default, second.is_default) == (False, True)
    with pytest.raises(IntegrityError), transaction.atomic():
        SavedView.objects.filter(pk=first.pk).update(is_default=True)


@pytest.mark.django_db
def test_a_view_shared_with_a_team_shows_to_its_members_and_manager_only(people):
    users, west = people.users, people.teams["West"]
    private = lead_view(users["owner"], name="Mine")
    shared = lead_view(users["owner"], name="West's", sharing=ViewSharing.TEAM, team=west)

    def visible(persona):
        return set(saved_view_list(user=users[persona], list_key="crm.lead"))

    assert visible("owner") == {private, shared}
    assert visible("teammate") == visible("manager") == {shared}
    assert visible("outsider") == set()


@pytest.mark.django_db
def test_only_a_crm_admin_shares_with_everyone_and_only_members_share_with_a_team(people):
    users = people.users
    with pytest.raises(ValidationError) as refused:
        lead_view(users["owner"], sharing=ViewSharing.EVERYONE)
    assert "sharing" in refused.value.message_dict
    with pytest.raises(ValidationError) as refused:
        lead_view(users["owner"], sharing=ViewSharing.TEAM, team=people.teams["East"])
    assert "team" in refused.value.message_dict
    with pytest.raises(ValidationError) as refused:
        lead_view(users["owner"], sharing=ViewSharing.TEAM, team=None)
    assert "team" in refused.value.message_dict

    everyone = lead_view(users["crm_admin"], sharing=ViewSharing.EVERYONE)
    assert everyone in saved_view_list(user=users["outsider"])


@pytest.mark.django_db
def test_only_its_owner_changes_or_deletes_a_shared_view(people):
    users = people.users
    view = lead_view(users["owner"], sharing=ViewSharing.TEAM, team=people.teams["West"])
    with pytest.raises(PermissionDenied):
        saved_view_update(saved_view=view, user=users["teammate"], data={"name": "Taken"})
    with pytest.raises(PermissionDenied):
        saved_view_delete(saved_view=view, user=users["teammate"])

    saved_view_update(saved_view=view, user=users["owner"], data={"name": "Renamed"})
    view.refresh_from_db()
    assert view.name == "Renamed"
    saved_view_delete(saved_view=view, user=users["owner"])
    assert not SavedView.objects.exists()


@pytest.mark.django_db
def test_a_view_stays_with_its_list(owner):
    view = lead_view(owner)
    with pytest.raises(ValidationError) as refused:
        saved_view_update(saved_view=view, user=owner, data={"list_key": "crm.account"})
    assert "list_key" in refused.value.message_dict


# --- the changelist ---------------------------------------------------------------------------------


def shown_columns(response) -> list[str]:
    names = [item if isinstance(item, str) else item.__name__ for item in response.context["cl"].list_display]
    return [name for name in names if name != "action_checkbox"]


@pytest.mark.django_db
def test_saving_the_list_as_shown_then_opening_the_view_restores_it(client, owner, stages):
    client.force_login(owner)
    LeadFactory(owner=owner, stage=stages["New"], name="Acme open", expected_revenue=100)
    client.get(LEADS, {"_columns": ["revenue", "name", "owner"]})
    page = client.get(LEADS, {"status__exact": "open", "q": "acme", "o": "-1"})
    assert shown_columns(page) == ["revenue", "name", "owner"]
    query = page.context["crm_saved_views"]["query"]

    saved = client.post(reverse("admin:crm_lead_saveview"), {"name": "Acme by revenue", "query": query})

    view = SavedView.objects.get()
    assert saved.status_code == 302 and saved["Location"] == f"{LEADS}?view={view.pk}"
    assert (view.filters, view.search, view.ordering) == ({"status__exact": "open"}, "acme", ["-revenue"])
    assert view.columns == ["revenue", "name", "owner"]

    client.get(LEADS, {"view": ""})  # back to the list as it comes
    assert "revenue" in shown_columns(client.get(LEADS)) and len(shown_columns(client.get(LEADS))) > 3
    opened = client.get(LEADS, {"view": view.pk})
    assert opened.status_code == 302
    page = client.get(opened["Location"])
    assert shown_columns(page) == ["revenue", "name", "owner"]
    assert page.context["cl"].query == "acme"
    assert page.context["cl"].get_ordering_field_columns() == {1: "desc"}
    assert [lead.name for lead in page.context["cl"].result_list] == ["Acme open"]
    assert page.context["crm_saved_views"]["active"] == view
    assert b"data-saved-views" in page.content


@pytest.mark.django_db
def test_choosing_columns_keeps_the_sort_on_the_same_column(client, owner):
    client.force_login(owner)
    # Sorted by revenue, the 9th column after the checkbox.
    sorted_by_revenue = client.get(LEADS, {"o": "-9"}).context["cl"]
    assert sorted_by_revenue.list_display[9] == "revenue"

    chosen = client.get(LEADS, {"o": "-9", "_columns": ["name", "revenue"]})

    assert chosen.status_code == 302 and chosen["Location"] == f"{LEADS}?o=-2"
    page = client.get(chosen["Location"])
    assert shown_columns(page) == ["name", "revenue"]
    reset = client.get(LEADS, {"_columns": ""})
    assert len(shown_columns(client.get(reset["Location"]))) > 10


@pytest.mark.django_db
def test_the_default_view_opens_with_the_bare_list_until_another_is_chosen(client, owner):
    view = lead_view(owner, is_default=True)
    client.force_login(owner)

    first = client.get(LEADS)

    assert first.status_code == 302 and "status__exact=open" in first["Location"]
    assert shown_columns(client.get(first["Location"])) == view.columns
    client.get(LEADS, {"view": ""})
    assert client.get(LEADS).status_code == 200  # "All" chosen: no longer redirected


@pytest.mark.django_db
def test_a_teammate_opens_a_shared_view_but_cannot_update_it(client, people):
    users = people.users
    view = lead_view(users["owner"], sharing=ViewSharing.TEAM, team=people.teams["West"])
    client.force_login(users["teammate"])
    page = client.get(client.get(LEADS, {"view": view.pk})["Location"])
    assert page.context["crm_saved_views"]["active"] == view
    assert page.context["crm_saved_views"]["active_is_mine"] is False
    assert b"data-view-update" not in page.content

    refused = client.post(reverse("admin:crm_lead_updateview", args=[view.pk]), {"query": ""}, follow=True)

    assert "Only its owner changes a saved view." in refused.content.decode()
    client.force_login(users["outsider"])
    unknown = client.get(LEADS, {"view": view.pk}, follow=True)
    assert "not shared with you" in unknown.content.decode()


@pytest.mark.django_db
def test_saving_an_unknown_filter_from_the_list_says_which(client, owner):
    client.force_login(owner)
    refused = client.post(
        reverse("admin:crm_lead_saveview"), {"name": "Odd", "query": "shoe_size=42"}, follow=True
    )
    assert "shoe_size" in refused.content.decode()
    assert not SavedView.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url",
    [
        reverse("admin:crm_lead_changelist"),
        reverse("admin:sales_opportunity_changelist"),
        reverse("admin:crm_account_changelist"),
        reverse("admin:crm_contact_changelist"),
        reverse("admin:activities_activity_changelist"),
        reverse("admin:activities_ticket_changelist"),
    ],
)
def test_every_crm_list_has_the_picker_and_the_chooser(admin_client, url):
    page = admin_client.get(url)
    assert page.status_code == 200
    assert b"data-saved-views" in page.content and b"data-column-chooser" in page.content


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("url", "columns", "make"),
    [
        (LEADS, ["name", "stage_pill", "owner", "tag_list", "automated_probability"], LeadFactory),
        (
            reverse("admin:sales_opportunity_changelist"),
            ["name", "account", "stage_pill", "owner"],
            OpportunityFactory,
        ),
    ],
)
def test_a_list_in_a_saved_view_costs_a_fixed_number_of_queries(
    client, people, url, columns, make, django_assert_max_num_queries
):
    owner = people.users["owner"]
    list_key = "crm.lead" if make is LeadFactory else "sales.opportunity"
    view = saved_view_create(
        user=owner, data={"list_key": list_key, "name": "Mine", "columns": columns, "ordering": ["-name"]}
    )
    lead_view(owner, name="Other", sharing=ViewSharing.TEAM, team=people.teams["West"])
    client.force_login(owner)
    page_url = client.get(url, {"view": view.pk})["Location"]
    for _ in range(2):
        make(owner=owner, stage=people.stages["New"])
    assert client.get(page_url).status_code == 200  # warm-up

    with django_assert_max_num_queries(40) as small:
        assert shown_columns(client.get(page_url)) == columns
    for _ in range(12):
        make(owner=owner, stage=people.stages["New"])
    with django_assert_max_num_queries(40) as large:
        assert client.get(page_url).status_code == 200

    assert len(large.captured_queries) == len(small.captured_queries)


# --- the API ----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_api_creates_reads_updates_and_deletes_a_view(api_as, people):
    client = api_as("owner")
    body = {
        "name": "Big deals",
        "list_key": "sales.opportunity",
        "filters": {"status__exact": "open"},
        "search": "",
        "ordering": ["-value"],
        "columns": ["name", "value", "owner"],
        "sharing": "team",
        "team_id": people.teams["West"].pk,
        "is_default": True,
    }
    created = client.post(API, body, format="json")
    assert created.status_code == 201, created.json()
    view = SavedView.objects.get()
    assert created.json()["id"] == view.pk
    assert created.json()["admin_url"] == f"/admin/sales/opportunity/?view={view.pk}"
    assert (view.owner, view.team, view.is_default) == (people.users["owner"], people.teams["West"], True)

    listed = client.get(API, {"list_key": "sales.opportunity"}).json()
    assert [row["name"] for row in listed["results"]] == ["Big deals"]
    assert client.get(API, {"list_key": "crm.lead"}).json()["results"] == []

    changed = client.patch(f"{API}{view.pk}/", {"columns": ["name", "owner"], "ordering": []}, format="json")
    assert changed.status_code == 200 and changed.json()["columns"] == ["name", "owner"]
    view.refresh_from_db()
    assert view.columns == ["name", "owner"]

    assert client.delete(f"{API}{view.pk}/").status_code == 204
    assert not SavedView.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("change", "field", "named"),
    [
        ({"columns": ["name", "shoe_size"]}, "columns", "shoe_size"),
        ({"filters": {"shoe_size__gt": "40"}}, "filters", "shoe_size__gt"),
        ({"ordering": ["shoe_size"]}, "ordering", "shoe_size"),
        ({"list_key": "crm.nothing"}, "list_key", "crm.nothing"),
        ({"sharing": "everyone"}, "sharing", "CRM Admin"),
        ({"filters": ["status"]}, "filters", ""),
    ],
)
def test_api_answers_400_naming_what_is_unknown(api_as, people, change, field, named):
    body = {"name": "Odd", "list_key": "crm.lead", **change}
    response = api_as("owner").post(API, body, format="json")
    assert response.status_code == 400
    assert named in " ".join(response.json()[field])
    assert not SavedView.objects.exists()


@pytest.mark.django_db
def test_api_shows_a_shared_view_to_the_team_and_only_its_owner_changes_it(api_as, people):
    view = lead_view(people.users["owner"], sharing=ViewSharing.TEAM, team=people.teams["West"])
    teammate = api_as("teammate")
    assert [row["id"] for row in teammate.get(API).json()["results"]] == [view.pk]
    assert teammate.patch(f"{API}{view.pk}/", {"name": "Mine now"}, format="json").status_code == 403
    assert teammate.delete(f"{API}{view.pk}/").status_code == 403
    assert api_as("outsider").get(f"{API}{view.pk}/").status_code == 404
    view.refresh_from_db()
    assert view.name == "Hot open leads"


@pytest.mark.django_db
def test_api_lists_the_lists_with_their_columns_and_filters(api_as, people):
    lists = {item["list_key"]: item for item in api_as("owner").get(f"{API}lists/").json()}
    expected = {"crm.lead", "crm.account", "crm.contact", "sales.opportunity", "activities.activity"}
    assert expected <= set(lists)
    leads = lists["crm.lead"]
    assert [c["name"] for c in leads["columns"]][:3] == ["name", "company_name", "contact_name"]
    assert {"name": "tag_list", "label": "tags", "sortable": False} in leads["columns"]
    assert {"status__exact", "score_band"} <= set(leads["filters"]) and leads["searchable"] is True
    assert "crm.savedview" not in lists
