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
