"""A write answers with the record exactly as a GET right after shows it, for every persona and door.

The answer of a create, an update, a transition and a conversion is built from the record the service
wrote and returned, as its events are (crm.events.registry.represented), where the user sees it as held;
else the record is read again through the resource's selector. Either way it must be what a read gives.
"""

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from crm.selectors import record_visible_as_held
from tests.api.conftest import url
from tests.factories import AccountFactory, LeadFactory, OpportunityFactory, TagFactory


def _same_as_get(client, path: str, answered: dict) -> None:
    read = client.get(url(f"{path}/{answered['id']}/"))
    assert read.status_code == 200, read.content
    assert answered == read.json(), path


def _ok(response, status_code: int = 200) -> dict:
    assert response.status_code == status_code, response.content
    return response.json()


@pytest.mark.django_db
@pytest.mark.parametrize("persona", ["owner", "manager", "crm_admin", "superuser"])
def test_every_write_answers_with_what_a_get_right_after_shows(api_as, people, persona):
    client, user, stages = api_as(persona), people.users[persona], people.stages
    hot, vip = TagFactory(name="Hot"), TagFactory(name="VIP")
    account = AccountFactory(name="Globex", owner=user if persona != "superuser" else None)

    lead = _ok(
        client.post(
            url("leads/"),
            {
                "name": "Globex — 40 seats",
                "company_name": "Globex Ltd",
                "contact_name": "Ann Lee",
                "email": "ann@globex.test",
                "expected_revenue": "1500.5",
                "tags": [vip.pk, hot.pk],
            },
        ),
        201,
    )
    _same_as_get(client, "leads", lead)
    lead = _ok(client.patch(url(f"leads/{lead['id']}/"), {"rating": "hot", "tags": [hot.pk]}))
    _same_as_get(client, "leads", lead)
    lead = _ok(client.post(url(f"leads/{lead['id']}/move-stage/"), {"stage_id": stages["Qualified"].pk}))
    _same_as_get(client, "leads", lead)

    converted = _ok(client.post(url(f"leads/{lead['id']}/convert/")))
    # The account was created before its contact and deal: its counts are read after them.
    assert (converted["account"]["contact_count"], converted["account"]["opportunity_count"]) == (1, 1)
    for path, key in (("leads", "lead"), ("accounts", "account"), ("contacts", "contact")):
        _same_as_get(client, path, converted[key])
    _same_as_get(client, "opportunities", converted["opportunity"])

    deal = _ok(
        client.post(
            url("opportunities/"),
            {"name": "Globex renewal", "amount": "2500", "account_id": account.pk, "tags": [vip.pk]},
        ),
        201,
    )
    _same_as_get(client, "opportunities", deal)
    deal = _ok(client.patch(url(f"opportunities/{deal['id']}/"), {"amount": "2600.10"}))
    _same_as_get(client, "opportunities", deal)
    deal = _ok(
        client.post(url(f"opportunities/{deal['id']}/move-stage/"), {"stage_id": stages["Qualified"].pk})
    )
    _same_as_get(client, "opportunities", deal)

    activity = _ok(
        client.post(
            url("activities/"),
            {
                "subject": "Call: next steps",
                "activity_type": "call",
                "status": "completed",
                "due_date": datetime.now(UTC).isoformat(),
                "lead_id": converted["lead"]["id"],
            },
        ),
        201,
    )
    _same_as_get(client, "activities", activity)

    account = _ok(client.post(url("accounts/"), {"name": "Initech"}), 201)
    _same_as_get(client, "accounts", account)
    contact = _ok(client.post(url("contacts/"), {"first_name": "Bo", "account_id": account["id"]}), 201)
    _same_as_get(client, "contacts", contact)
    # Another team's deal on the account: an account's counts are of what the reader sees.
    OpportunityFactory(
        name="East deal", account_id=account["id"], owner=people.users["outsider"], stage=stages["New"]
    )
    account = _ok(client.patch(url(f"accounts/{account['id']}/"), {"industry": "technology"}))
    assert account["contact_count"] == 1
    assert account["opportunity_count"] == (1 if persona in ("crm_admin", "superuser") else 0)
    _same_as_get(client, "accounts", account)


@pytest.mark.django_db
def test_a_managers_write_on_a_members_record_answers_as_the_managers_get_shows(api_as, people):
    client = api_as("manager")
    lead = people.records["owner"].lead

    answered = _ok(client.patch(url(f"leads/{lead.pk}/"), {"priority": "urgent"}))

    assert answered["owner_id"] == people.users["owner"].pk
    _same_as_get(client, "leads", answered)


def _select_list(queryset) -> list:
    compiler = queryset.query.get_compiler(using=queryset.db)
    compiler.setup_query()
    return [compiler.compile(expression) for expression, _, _ in compiler.select]


@pytest.mark.django_db
def test_the_selectors_marked_same_for_every_reader_read_the_same_columns_for_a_rep_as_for_the_system(
    people,
):
    """What a write's answer built as the events' (the system's) relies on; the accounts' list counts
    what its reader sees, and is not marked."""
    from activities.selectors import activity_list
    from crm.actors import SYSTEM
    from crm.selectors import account_list, contact_list, lead_list
    from sales.selectors import opportunity_list

    rep = people.users["owner"]
    for selector in (lead_list, contact_list, opportunity_list, activity_list):
        assert selector.same_for_every_reader, selector.__name__
        assert _select_list(selector(user=rep)) == _select_list(selector(user=SYSTEM)), selector.__name__
    assert not getattr(account_list, "same_for_every_reader", False)
    assert _select_list(account_list(user=rep)) != _select_list(account_list(user=SYSTEM))


def _owner_lists_read(queries) -> int:
    # The owners a user sees: the user and the members of the active teams they manage, read on their
    # own or with the user's permissions and role (crm.selectors.visibility.user_access_read); a
    # record's read carries the same SQL as its subquery.
    return sum(
        (query["sql"].startswith('SELECT "auth_user"."id"') or '"_kind"' in query["sql"])
        and 'FROM "auth_user" LEFT OUTER JOIN "sales_salesteam_members"' in query["sql"]
        and "salesteam_id" in query["sql"]
        for query in queries.captured_queries
    )


@pytest.mark.django_db
def test_a_reps_create_reads_the_owners_they_see_once(api_as, people):
    client = api_as("owner")

    with CaptureQueriesContext(connection) as queries:
        _ok(client.post(url("leads/"), {"name": "Initech — 5 seats", "email": "bo@initech.test"}), 201)

    # Asked by the answer and by the duplicate check: read once for the request's user.
    assert _owner_lists_read(queries) == 1


@pytest.mark.django_db
def test_a_team_change_is_seen_by_the_next_request_of_the_same_user_object(api_as, people):
    """The owners a user sees are read once per user object (the API client here keeps one for every
    request) until a team changes: a member removed, added, a team made inactive."""
    client, team, manager = api_as("manager"), people.teams["West"], people.users["manager"]
    owner = people.users["owner"]
    member_lead = LeadFactory(name="Zanzibar member lead", stage=people.stages["New"], owner=owner)

    def seen() -> tuple[bool, bool]:
        found = _ok(client.get(url("leads/?search=Zanzibar")))["results"]
        return (
            member_lead.pk in {row["id"] for row in found},
            record_visible_as_held(user=manager, record=member_lead),
        )

    assert seen() == (True, True)
    team.members.remove(owner)
    assert seen() == (False, False)
    team.members.add(owner)
    assert seen() == (True, True)
    team.is_active = False
    team.save()
    assert seen() == (False, False)


@pytest.mark.django_db
def test_a_transition_on_a_record_the_request_read_asks_nothing_more_about_who_sees_it(api_as, people):
    """The request read the deal through the selector before moving it, and the move kept its owner:
    the answer is built without reading the owners the rep sees again."""
    client, deal = api_as("owner"), people.records["owner"].opportunity

    with CaptureQueriesContext(connection) as queries:
        answered = _ok(
            client.post(
                url(f"opportunities/{deal.pk}/move-stage/"), {"stage_id": people.stages["Qualified"].pk}
            )
        )

    # Only with the user's permissions and role, which every request reads first: nothing more.
    assert _owner_lists_read(queries) == 1
    _same_as_get(client, "opportunities", answered)


@pytest.mark.django_db
@pytest.mark.parametrize("persona", ["owner", "manager", "outsider", "crm_admin", "superuser"])
def test_a_records_get_is_what_its_list_shows_and_a_record_out_of_sight_is_404(api_as, people, persona):
    """A GET of one record is read by statements compiled once where the user sees it as held (else
    through the selector): the same JSON as the record's row in its list, and 404 for a record the
    list does not show."""
    client = api_as(persona)
    people.records["owner"].lead.tags.add(TagFactory(name="Hot"))
    for path, kind in (
        ("leads", "lead"),
        ("opportunities", "opportunity"),
        ("activities", "activity"),
        ("contacts", "contact"),
    ):
        listed = {row["id"]: row for row in _ok(client.get(url(f"{path}/?page_size=100")))["results"]}
        everything = {getattr(records, kind).pk for records in (*people.records.values(), people.unowned)}
        assert listed, path
        for pk in everything:
            response = client.get(url(f"{path}/{pk}/"))
            if pk in listed:
                assert response.status_code == 200, (path, pk)
                assert response.json() == listed[pk], (path, pk)
                assert response["ETag"]
            else:
                assert response.status_code == 404, (path, pk)


@pytest.mark.django_db
def test_a_write_answers_with_what_its_own_event_built_without_reading_it_again(api_as, people):
    """The write's event represented the record from the values it saved: the answer is that same
    representation (a copy), not the record's tags and annotations read a second time; a later write
    that changes the record builds both again."""
    client, hot = api_as("owner"), TagFactory(name="Hot")

    def tag_reads(queries) -> int:
        # The representation's read of the lead's tags (the tags' set reads only their ids).
        shown = 'SELECT "crm_tag"."id", "crm_tag"."name"'
        return sum(
            query["sql"].startswith(shown) and '"crm_lead_tags"' in query["sql"]
            for query in queries.captured_queries
        )

    with CaptureQueriesContext(connection) as queries:
        lead = _ok(client.post(url("leads/"), {"name": "Once", "tags": [hot.pk]}, format="json"), 201)
    assert tag_reads(queries) == 1  # the event's
    assert lead["tags"] == [hot.pk]
    _same_as_get(client, "leads", lead)

    with CaptureQueriesContext(connection) as queries:
        moved = _ok(client.patch(url(f"leads/{lead['id']}/"), {"rating": "hot", "tags": []}, format="json"))
    assert moved["tags"] == [] and moved["rating"] == "hot"
    _same_as_get(client, "leads", moved)
