"""The access matrix over the API: for every endpoint, what an owner, a team-mate, their manager, a rep
of another team and a CRM Admin get for the owner's records (and that lists hide outsiders' ids)."""

import csv
import io

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from crm import services
from crm.selectors import user_sees_everything
from tests.api.conftest import url
from tests.conftest import make_people, make_personas, make_pipeline, make_superuser
from tests.module_data import fresh, made_once

# Who sees the leads, deals and activities a persona owns (besides unowned ones, seen by everyone).
SEES = {
    "owner": {"owner"},
    "teammate": {"teammate"},
    "manager": {"manager", "owner", "teammate"},
    "outsider": {"outsider"},
    "crm_admin": {"owner", "teammate", "manager", "outsider", "crm_admin"},
}
# Who may change the owner's account and contact: the owner's team and a CRM Admin.
EDITS_SHARED = {"owner": True, "teammate": True, "manager": True, "outsider": False, "crm_admin": True}

OWNED = {"leads": "lead", "opportunities": "opportunity", "activities": "activity"}
SHARED = {"accounts": "account", "contacts": "contact"}
EDIT = {
    "leads": {"description": "edited"},
    "opportunities": {"description": "edited"},
    "activities": {"description": "edited"},
    "accounts": {"phone": "555-0100"},
    "contacts": {"job_title": "edited"},
}


@pytest.fixture(scope="module")
def people_once(django_db_setup, django_db_blocker):
    """tests/conftest.py's ``people``, made once for the module (tests/module_data.py)."""
    with made_once(django_db_blocker):
        stages = {stage.name: stage for stage in make_pipeline().stages.all()}
        yield make_people(make_personas(), make_superuser(), stages)


@pytest.fixture
def people(db, people_once):
    """The module's people as fresh instances: tests change them (refresh_from_db, is_active)."""
    return fresh(people_once)


def visible_ids(people, persona, kind):
    ids = {getattr(people.records[name], kind).pk for name in SEES[persona]}
    return ids | {getattr(people.unowned, kind).pk}


def listed_ids(client, resource):
    response = client.get(url(f"{resource}/"), {"page_size": 100})
    assert response.status_code == 200, response.content
    return {row["id"] for row in response.json()["results"]}


@pytest.mark.django_db
@pytest.mark.parametrize("persona", SEES)
@pytest.mark.parametrize("resource", OWNED)
def test_list_shows_own_team_and_unowned_records_only(people, api_as, persona, resource):
    assert listed_ids(api_as(persona), resource) == visible_ids(people, persona, OWNED[resource])


@pytest.mark.django_db
@pytest.mark.parametrize("persona", SEES)
@pytest.mark.parametrize("resource", SHARED)
def test_accounts_and_contacts_are_listed_for_everyone(people, api_as, persona, resource):
    everyone = {getattr(r, SHARED[resource]).pk for r in people.records.values()}
    assert listed_ids(api_as(persona), resource) == everyone | {getattr(people.unowned, SHARED[resource]).pk}


@pytest.mark.django_db
@pytest.mark.parametrize("persona", SEES)
@pytest.mark.parametrize("resource", OWNED)
def test_another_reps_record_is_not_found_for_read_write_and_delete(people, api_as, persona, resource):
    record = getattr(people.records["owner"], OWNED[resource])
    client = api_as(persona)
    visible = "owner" in SEES[persona]
    detail = url(f"{resource}/{record.pk}/")

    assert client.get(detail).status_code == (200 if visible else 404)
    response = client.patch(detail, EDIT[resource], format="json")
    assert response.status_code == (200 if visible else 404), response.content
    record.refresh_from_db()
    assert (record.description == "edited") is visible
    if not visible:
        assert client.put(detail, {"name": "x", "subject": "x"}, format="json").status_code == 404
        assert client.delete(detail).status_code in (403, 404)
        assert type(record).objects.filter(pk=record.pk).exists()


@pytest.mark.django_db
@pytest.mark.parametrize("persona", ["owner", "teammate", "outsider"])
def test_reps_delete_only_activities_they_see(people, api_as, persona):
    activity = people.records["owner"].activity
    response = api_as(persona).delete(url(f"activities/{activity.pk}/"))
    visible = "owner" in SEES[persona]
    assert response.status_code == (204 if visible else 404)
    assert type(activity).objects.filter(pk=activity.pk).exists() is not visible


@pytest.mark.django_db
@pytest.mark.parametrize("persona", SEES)
@pytest.mark.parametrize("resource", SHARED)
def test_accounts_and_contacts_are_read_by_all_and_changed_by_the_owners_team(
    people, api_as, persona, resource
):
    record = getattr(people.records["owner"], SHARED[resource])
    client = api_as(persona)
    detail = url(f"{resource}/{record.pk}/")
    assert client.get(detail).status_code == 200

    response = client.patch(detail, EDIT[resource], format="json")

    allowed = EDITS_SHARED[persona]
    assert response.status_code == (200 if allowed else 403), response.content
    if not allowed:
        assert response.json() == {"detail": "Only the owner's team may change this record."}
    record.refresh_from_db()
    field, value = next(iter(EDIT[resource].items()))
    assert (getattr(record, field) == value) is allowed


@pytest.mark.django_db
def test_an_outsider_may_not_delete_anothers_contact_even_with_the_permission(people, api_as):
    from django.contrib.auth.models import Permission

    outsider = people.users["outsider"]
    outsider.user_permissions.add(Permission.objects.get(codename="delete_contact"))
    contact = people.records["owner"].contact
    response = api_as("outsider").delete(url(f"contacts/{contact.pk}/"))
    assert response.status_code == 403
    assert type(contact).objects.filter(pk=contact.pk).exists()


LEAD_ACTIONS = {
    "move-stage": lambda people: {"stage_id": people.stages["Qualified"].pk},
    "mark-lost": lambda people: {},
    "convert": lambda people: {"create_account": False, "create_contact": False},
}
OPPORTUNITY_ACTIONS = {
    "move-stage": lambda people: {"stage_id": people.stages["Qualified"].pk},
    "mark-lost": lambda people: {},
    "mark-won": lambda people: {},
}


@pytest.mark.django_db
@pytest.mark.parametrize("persona", SEES)
@pytest.mark.parametrize(
    "resource,action",
    [("leads", a) for a in LEAD_ACTIONS] + [("opportunities", a) for a in OPPORTUNITY_ACTIONS],
)
def test_actions_on_another_reps_record_are_not_found(people, api_as, persona, resource, action):
    record = getattr(people.records["owner"], OWNED[resource])
    body = (LEAD_ACTIONS if resource == "leads" else OPPORTUNITY_ACTIONS)[action](people)
    response = api_as(persona).post(url(f"{resource}/{record.pk}/{action}/"), body, format="json")

    visible = "owner" in SEES[persona]
    assert response.status_code == (200 if visible else 404), response.content
    before = (record.stage_id, record.status)
    record.refresh_from_db()
    assert ((record.stage_id, record.status) != before) is visible


def board_ids(client, resource):
    response = client.get(url(f"{resource}/kanban/"))
    assert response.status_code == 200, response.content
    return {card["id"] for column in response.json()["columns"] for card in column["results"]}


@pytest.mark.django_db
@pytest.mark.parametrize("persona", SEES)
@pytest.mark.parametrize("resource", ["leads", "opportunities"])
def test_kanban_boards_show_visible_records_only(people, api_as, persona, resource):
    assert board_ids(api_as(persona), resource) == visible_ids(people, persona, OWNED[resource])


@pytest.mark.django_db
@pytest.mark.parametrize("persona", SEES)
def test_forecast_and_dashboard_count_visible_records_only(people, api_as, persona):
    client = api_as(persona)
    expected = len(visible_ids(people, persona, "opportunity"))

    forecast = client.get(url("opportunities/forecast/"), {"group_by": "owner"}).json()
    assert forecast["totals"]["count"] == expected
    dashboard = client.get(url("dashboard/")).json()
    assert dashboard["total_leads"] == len(visible_ids(people, persona, "lead"))
    assert dashboard["open_opportunities"]["count"] == expected


def exported_ids(client, resource):
    response = client.get(url(f"{resource}/export/"), {"format": "csv"})
    assert response.status_code == 200
    rows = csv.DictReader(io.StringIO(response.content.decode("utf-8-sig")))
    return {int(row["id"]) for row in rows}


@pytest.mark.django_db
@pytest.mark.parametrize("persona", SEES)
def test_lead_exports_contain_no_outsiders_ids(people, api_as, persona):
    assert exported_ids(api_as(persona), "leads") == visible_ids(people, persona, "lead")


@pytest.mark.django_db
def test_an_activity_cannot_be_logged_on_a_lead_the_rep_does_not_see(people, api_as):
    hidden = people.records["outsider"].lead
    response = api_as("owner").post(
        url("activities/"), {"subject": "Peek", "activity_type": "call", "lead_id": hidden.pk}, format="json"
    )
    assert response.status_code == 400
    assert "lead_id" in response.json()
    assert not hidden.activities.filter(subject="Peek").exists()


# --- the owner rule -------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "persona,new_owner,allowed",
    [
        ("owner", "owner", True),
        ("owner", "teammate", False),  # it would vanish from the rep's own lists
        ("owner", "manager", False),
        ("owner", "outsider", False),
        ("manager", "outsider", False),
        ("manager", "teammate", True),
        ("crm_admin", "outsider", True),
    ],
)
def test_a_new_record_goes_only_to_someone_in_the_creators_team(people, api_as, persona, new_owner, allowed):
    owner = people.users[new_owner]
    response = api_as(persona).post(url("leads/"), {"name": "Assigned", "owner_id": owner.pk}, format="json")

    assert response.status_code == (201 if allowed else 400), response.content
    if not allowed:
        assert response.json() == {
            "owner_id": [
                "You may assign a record only to yourself or, as a manager, to a member of your teams."
            ]
        }
    assert type(people.records["owner"].lead).objects.filter(name="Assigned").exists() is allowed


@pytest.mark.django_db
def test_giving_a_new_record_to_oneself_asks_nothing_of_the_teams(people):
    # A rep or a manager may always own what they create: the owner rule asked the database whether
    # they manage a team and whether they are in their own team, on every create that named them.
    from crm.services import with_default_owner

    for persona in ("owner", "manager"):
        user = people.users[persona]
        user_sees_everything(user)  # read once per user, as every request does first
        with CaptureQueriesContext(connection) as ctx:
            assert with_default_owner({"owner": user}, user) == {"owner": user}
        assert ctx.captured_queries == []
    with pytest.raises(ValidationError):
        with_default_owner({"owner": people.users["outsider"]}, people.users["owner"])


@pytest.mark.django_db
@pytest.mark.parametrize(
    "persona,new_owner,expected",
    [
        ("owner", "teammate", 400),  # a rep may not hand their record over
        ("owner", None, 400),
        ("manager", "teammate", 200),  # the team's manager may
        ("manager", "outsider", 400),  # but not outside the team
        ("crm_admin", "outsider", 200),
    ],
)
def test_only_managers_and_admins_reassign_an_owned_record(people, api_as, persona, new_owner, expected):
    lead = people.records["owner"].lead
    owner_id = people.users[new_owner].pk if new_owner else None

    response = api_as(persona).patch(url(f"leads/{lead.pk}/"), {"owner_id": owner_id}, format="json")

    assert response.status_code == expected, response.content
    lead.refresh_from_db()
    assert lead.owner_id == (owner_id if expected == 200 else people.users["owner"].pk)
    if persona == "owner":
        assert response.json() == {"owner_id": [services.OWNER_CHANGE_REFUSED]}


@pytest.mark.django_db
def test_a_rep_may_take_an_unowned_lead(people, api_as):
    lead = people.unowned.lead
    response = api_as("outsider").patch(
        url(f"leads/{lead.pk}/"), {"owner_id": people.users["outsider"].pk}, format="json"
    )
    assert response.status_code == 200
    lead.refresh_from_db()
    assert lead.owner == people.users["outsider"]


@pytest.mark.django_db
def test_anonymous_and_inactive_users_see_nothing(people):
    from django.contrib.auth.models import AnonymousUser

    from crm.selectors import lead_visible_to

    assert not lead_visible_to(AnonymousUser()).exists()
    owner = people.users["owner"]
    owner.is_active = False
    assert not lead_visible_to(owner).exists()


# --- imports follow the same rules ---------------------------------------------------------------


def import_csv(client, resource, rows):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from tests.crm.importing_helpers import csv_bytes

    upload = SimpleUploadedFile(f"{resource}.csv", csv_bytes(rows), content_type="text/csv")
    return client.post(url(f"{resource}/import/"), {"file": upload}, format="multipart")


@pytest.mark.django_db
@pytest.mark.parametrize("persona", SEES)
def test_an_import_does_not_change_a_lead_its_importer_does_not_see(people, api_as, persona):
    lead = people.records["owner"].lead
    response = import_csv(api_as(persona), "leads", [["name", "email"], ["Renamed", lead.email]])

    visible = "owner" in SEES[persona]
    lead.refresh_from_db()
    assert (lead.name == "Renamed") is visible
    if not visible:
        assert response.status_code == 400, response.content
        assert "another team's record" in str(response.json())


@pytest.mark.django_db
@pytest.mark.parametrize("persona", EDITS_SHARED)
def test_an_import_changes_only_accounts_the_importers_team_may_change(people, api_as, persona):
    account = people.records["owner"].account
    response = import_csv(api_as(persona), "accounts", [["name", "phone"], [account.name, "555-0199"]])

    allowed = EDITS_SHARED[persona]
    account.refresh_from_db()
    assert (account.phone == "555-0199") is allowed, response.content


@pytest.mark.django_db
@pytest.mark.parametrize(
    "persona,owner,allowed",
    [
        ("owner", "owner", True),
        ("owner", "outsider", False),
        ("manager", "teammate", True),
        ("crm_admin", "outsider", True),
    ],
)
def test_an_imports_owner_column_follows_the_owner_rule(people, api_as, persona, owner, allowed):
    username = people.users[owner].username
    response = import_csv(api_as(persona), "leads", [["name", "owner"], ["Imported", username]])

    created = type(people.records["owner"].lead).objects.filter(name="Imported")
    assert created.exists() is allowed, response.content
    if not allowed:
        assert services.OWNER_OUTSIDE_TEAM in str(response.json())
