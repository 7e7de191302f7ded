"""Admin pages answer a page with a message, or a 4xx, for impossible or extreme input: never a 500.

The test client re-raises a view's exception, so a page that would answer 500 fails here with it.
"""

import datetime

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone

from tests.factories import ActivityFactory, LeadFactory, OpportunityFactory

CALENDAR = "admin:activities_activity_calendar"
FAR_DATES = ["2026-13-45", "2026-02-30", "0001-01-01", "9999-12-31", "99999-01-01", "abc"]


def messages_of(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


# --- finding 13: the calendar --------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("view", ["month", "week"])
@pytest.mark.parametrize("date", FAR_DATES)
def test_calendar_with_an_impossible_or_extreme_date_answers_a_page(admin_client, view, date):
    """Issue 14 finding 13: a calendar date out of range (or not a date) is a page, not a 500."""
    response = admin_client.get(reverse(CALENDAR), {"date": date, "view": view})

    assert response.status_code == 200
    assert response.context["weeks"]


@pytest.mark.django_db
@pytest.mark.parametrize("date", ["2026-13-45", "2026-02-30", "abc"])
def test_calendar_with_an_impossible_date_shows_this_month_and_says_why(admin_client, date):
    """Issue 14 finding 13: an impossible date falls back to today's month, with a message."""
    response = admin_client.get(reverse(CALENDAR), {"date": date})

    assert response.status_code == 200
    assert response.context["heading"] == f"{timezone.localdate():%B %Y}"
    assert any(date in message and "not a date" in message for message in messages_of(response))


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("date", "view", "heading"),
    [
        ("0001-01-01", "month", "January 0001"),
        ("9999-12-31", "month", "December 9999"),
        ("0001-01-01", "week", "Week of 1 January 0001"),
        ("9999-12-31", "week", "Week of 27 December 9999"),
    ],
)
def test_calendar_shows_the_first_and_last_periods_there_are(admin_client, date, view, heading):
    """Issue 14 finding 13: the first and the last month or week a date can have are shown, cut at
    the calendar's ends, without links past them."""
    response = admin_client.get(reverse(CALENDAR), {"date": date, "view": view})

    assert response.status_code == 200
    assert response.context["heading"] == heading
    links = response.context["links"]
    if date.startswith("0001"):
        assert links["previous"] is None
    else:
        assert links["next"] is None


@pytest.mark.django_db
def test_calendar_lists_an_activity_due_in_year_9999(admin_client, admin_user, stages):
    """Issue 14 finding 13: the last week of the calendar shows what is due in it."""
    due = timezone.make_aware(datetime.datetime(9999, 12, 30, 10))
    ActivityFactory(subject="Far away", owner=admin_user, due_date=due, lead=LeadFactory(stage=stages["New"]))

    response = admin_client.get(reverse(CALENDAR), {"date": "9999-12-30", "view": "week"})

    listed = [a.subject for week in response.context["weeks"] for day in week for a in day["activities"]]
    assert listed == ["Far away"]


# --- finding 14: changelists with dates at the ends of the calendar -------------------------------


@pytest.fixture
def far_records(admin_user, stages):
    """A deal closing and an activity due on the last day there is, and on the first."""
    lead = LeadFactory(stage=stages["New"])
    last_day = datetime.date(9999, 12, 31)
    first_day = datetime.date(1, 1, 1)
    for day in (last_day, first_day):
        OpportunityFactory(stage=stages["New"], close_date=day, owner=admin_user)
        ActivityFactory(
            lead=lead,
            owner=admin_user,
            due_date=timezone.make_aware(datetime.datetime.combine(day, datetime.time(12))),
        )


@pytest.mark.django_db
@pytest.mark.parametrize(
    "query",
    [
        "",
        "?close_date__year=9999",
        "?close_date__year=9999&close_date__month=12",
        "?close_date__year=9999&close_date__month=12&close_date__day=31",
        "?close_date__year=1",
        "?close_date__year=99999999999999999999",
        "?close_date__year=2026&close_date__month=99999999999999999999",
    ],
)
def test_opportunity_changelist_with_deals_closing_in_year_9999(admin_client, far_records, query):
    """Issue 14 finding 14: a deal closing in year 9999 (the API accepts it) does not break the list,
    nor does drilling into that year."""
    response = admin_client.get(reverse("admin:sales_opportunity_changelist") + query)

    assert response.status_code in (200, 302)
    if response.status_code == 200 and "9999" in query:
        assert [deal.close_date.year for deal in response.context["cl"].result_list] == [9999]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "query",
    [
        "",
        "?due_date__year=9999",
        "?due_date__year=9999&due_date__month=12",
        "?due_date__year=9999&due_date__month=12&due_date__day=31",
        "?due_date__year=1&due_date__month=1",
        "?due_date__year=99999999999999999999",
    ],
)
def test_activity_changelist_with_activities_due_in_year_9999(admin_client, far_records, query):
    """Issue 14 finding 14: an activity due in year 9999 does not break the activity list."""
    response = admin_client.get(reverse("admin:activities_activity_changelist") + query)

    assert response.status_code in (200, 302)
    if response.status_code == 200 and "9999" in query:
        assert [activity.due_date.year for activity in response.context["cl"].result_list] == [9999]


@pytest.mark.django_db
def test_the_year_list_of_a_changelist_names_only_years_with_records(admin_client, far_records):
    """Issue 14 finding 14: from year 1 to 9999 the date hierarchy offers the years that have deals,
    not ten thousand links."""
    response = admin_client.get(reverse("admin:sales_opportunity_changelist"))

    html = response.content.decode()
    assert "close_date__year=9999" in html
    assert "close_date__year=1&" in html or 'close_date__year=1"' in html
    assert "close_date__year=5000" not in html


# --- finding 15: kanban cards with a huge offset ------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("board", ["admin:crm_lead_board_cards", "admin:sales_opportunity_board_cards"])
@pytest.mark.parametrize("offset", ["99999999999999999999", "9223372036854775807", "9223372036854775800"])
def test_board_cards_from_an_offset_past_any_column_are_none(admin_client, stages, board, offset):
    """Issue 14 finding 15: more cards from past the end of any column: none, and no more to come."""
    LeadFactory(stage=stages["New"])
    OpportunityFactory(stage=stages["New"])

    response = admin_client.get(reverse(board), {"stage": stages["New"].pk, "offset": offset})

    assert response.status_code == 200
    assert response["X-Has-More"] == "false"
    assert b"kanban-card" not in response.content


@pytest.mark.django_db
@pytest.mark.parametrize("board", ["admin:crm_lead_board_cards", "admin:sales_opportunity_board_cards"])
@pytest.mark.parametrize("offset", ["-1", "abc", "\u00b2", "1.5"])
def test_board_cards_from_an_offset_that_is_not_a_count_are_a_400(admin_client, stages, board, offset):
    """Issue 14 finding 15: an offset that is not a whole number of 0 or more is a 400 that says so."""
    response = admin_client.get(reverse(board), {"stage": stages["New"].pk, "offset": offset})

    assert response.status_code == 400
    assert "offset" in response.content.decode()


# --- finding 16: the add form prefilled with a bad id -----------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("param", ["lead", "opportunity", "contact", "account", "owner"])
@pytest.mark.parametrize("value", ["abc", "99999999999999999999", "1.5", "\u00b2"])
def test_activity_add_form_prefilled_with_a_bad_id_answers_the_form(admin_client, stages, param, value):
    """Issue 14 finding 16: "Log a call" URLs with an id that is not one open the form without it."""
    response = admin_client.get(reverse("admin:activities_activity_add"), {param: value, "subject": "Call"})

    assert response.status_code == 200
    assert response.context["adminform"].form.initial["subject"] == "Call"
    assert f'value="{value}" selected' not in response.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize("value", ["-1", "0", "123456"])
def test_activity_add_form_prefilled_with_an_id_of_nothing_answers_the_form(admin_client, stages, value):
    """Issue 14 finding 16: an id no record has is not selected either."""
    response = admin_client.get(reverse("admin:activities_activity_add"), {"lead": value})

    assert response.status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("url", "param"),
    [
        ("admin:activities_activity_add", "lead"),
        ("admin:sales_opportunity_add", "account"),
        ("admin:sales_opportunity_add", "tags"),
        ("admin:crm_contact_add", "account"),
        ("admin:crm_lead_add", "stage"),
        ("admin:crm_account_add", "parent"),
        ("admin:crm_stage_add", "pipeline"),
        ("admin:crm_salesteam_add", "members"),
    ],
)
def test_an_add_form_posted_with_a_bad_id_shows_the_form_with_the_error(admin_client, stages, url, param):
    """Issue 14 finding 16: the same bad id posted back is "not a valid choice" on the form, not a 500
    while the form is shown again."""
    response = admin_client.post(reverse(url), {param: "abc"})

    assert response.status_code == 200
    assert response.context["adminform"].form.errors[param]


@pytest.mark.django_db
def test_activity_add_form_prefilled_with_a_good_lead_keeps_it(admin_client, stages):
    """Issue 14 finding 16: the quick links still prefill a real lead."""
    lead = LeadFactory(stage=stages["New"], name="Real lead")

    response = admin_client.get(reverse("admin:activities_activity_add"), {"lead": lead.pk})

    assert str(response.context["adminform"].form.initial["lead"]) == str(lead.pk)
    assert f'<option value="{lead.pk}" selected>Real lead</option>' in response.content.decode()
