"""Activities in the back office: the calendar, quick "log a call" links and the timeline of every record."""

import datetime
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from activities.models import Activity
from tests.factories import (
    AccountFactory,
    ActivityFactory,
    ContactFactory,
    LeadFactory,
    OpportunityFactory,
    UserFactory,
)

CALENDAR = "admin:activities_activity_calendar"


def at(year, month, day, hour=10):
    return timezone.make_aware(datetime.datetime(year, month, day, hour))


def calendar(client, **params):
    response = client.get(reverse(CALENDAR), params)
    assert response.status_code == 200
    return response


def shown(response) -> dict[str, list[str]]:
    return {
        day["date"].isoformat(): [activity.subject for activity in day["activities"]]
        for week in response.context["weeks"]
        for day in week
        if day["activities"]
    }


@pytest.fixture
def agenda(admin_user, stages):
    lead = LeadFactory(stage=stages["New"])
    other = UserFactory(username="colleague")
    return {
        "mine_1": ActivityFactory(subject="Mine 1", lead=lead, owner=admin_user, due_date=at(2026, 3, 2, 9)),
        "mine_2": ActivityFactory(subject="Mine 2", lead=lead, owner=admin_user, due_date=at(2026, 3, 2, 15)),
        "mine_31": ActivityFactory(subject="Mine 31", lead=lead, owner=admin_user, due_date=at(2026, 3, 31)),
        "april": ActivityFactory(subject="April", lead=lead, owner=admin_user, due_date=at(2026, 4, 20)),
        "theirs": ActivityFactory(subject="Theirs", lead=lead, owner=other, due_date=at(2026, 3, 10)),
    }


@pytest.mark.django_db
def test_month_view_shows_my_activities_of_the_month_by_day(admin_client, agenda):
    response = calendar(admin_client, date="2026-03-15")

    # March 2026 starts on a Sunday: the grid runs Monday 23 Feb – Sunday 5 Apr.
    weeks = response.context["weeks"]
    assert (weeks[0][0]["date"], weeks[-1][-1]["date"]) == (
        datetime.date(2026, 2, 23),
        datetime.date(2026, 4, 5),
    )
    assert shown(response) == {"2026-03-02": ["Mine 1", "Mine 2"], "2026-03-31": ["Mine 31"]}
    html = response.content.decode()
    assert f'href="{reverse("admin:activities_activity_change", args=[agenda["mine_1"].pk])}"' in html
    assert response.context["heading"] == "March 2026"


@pytest.mark.django_db
def test_everyone_switch_shows_colleagues_activities(admin_client, agenda):
    response = calendar(admin_client, date="2026-03-15", everyone="1")
    assert shown(response)["2026-03-10"] == ["Theirs"]


@pytest.mark.django_db
def test_week_view_and_navigation(admin_client, agenda):
    response = calendar(admin_client, view="week", date="2026-03-04")

    assert [day["date"].isoformat() for day in response.context["weeks"][0]] == [
        f"2026-03-0{n}" for n in range(2, 9)
    ]
    assert shown(response) == {"2026-03-02": ["Mine 1", "Mine 2"]}
    links = response.context["links"]
    assert parse_qs(urlsplit(links["previous"]).query) == {"view": ["week"], "date": ["2026-02-23"]}
    assert parse_qs(urlsplit(links["next"]).query) == {"view": ["week"], "date": ["2026-03-09"]}

    month = calendar(admin_client, date="2026-03-15")
    assert parse_qs(urlsplit(month.context["links"]["next"]).query)["date"] == ["2026-04-01"]
    assert parse_qs(urlsplit(month.context["links"]["previous"]).query)["date"] == ["2026-02-01"]


@pytest.mark.django_db
def test_overdue_activities_are_highlighted(admin_client, admin_user, stages):
    lead = LeadFactory(stage=stages["New"])
    yesterday = timezone.now() - datetime.timedelta(days=1)
    late = ActivityFactory(subject="Late", lead=lead, owner=admin_user, due_date=yesterday)
    ActivityFactory(
        subject="Done",
        lead=lead,
        owner=admin_user,
        due_date=yesterday,
        status="completed",
        completed_at=yesterday,
    )

    html = calendar(
        admin_client, view="week", date=timezone.localdate(yesterday).isoformat()
    ).content.decode()

    assert f'is-overdue" data-activity="{late.pk}"' in html
    assert html.count("is-overdue") == 1


@pytest.mark.django_db
def test_a_busy_day_lists_four_and_links_to_the_rest(admin_client, admin_user, stages):
    lead = LeadFactory(stage=stages["New"])
    for hour in range(7):
        ActivityFactory(
            lead=lead, owner=admin_user, subject=f"Call {hour}", due_date=at(2026, 3, 4, 8 + hour)
        )

    response = calendar(admin_client, date="2026-03-04")

    assert shown(response)["2026-03-04"] == ["Call 0", "Call 1", "Call 2", "Call 3"]
    day = next(
        d for week in response.context["weeks"] for d in week if d["date"] == datetime.date(2026, 3, 4)
    )
    assert (day["count"], day["more"]) == (7, 3)
    assert response.context["count"] == 7
    html = response.content.decode()
    assert "+ 3 more" in html
    listing = admin_client.get(day["more_url"])
    assert listing.status_code == 200 and listing.context["cl"].result_count == 7
    # The week view has room for all seven.
    assert len(shown(calendar(admin_client, view="week", date="2026-03-04"))["2026-03-04"]) == 7


@pytest.mark.django_db
def test_calendar_costs_a_fixed_number_of_queries(admin_client, admin_user, stages):
    def make(n):
        for i in range(n):
            ActivityFactory(
                lead=LeadFactory(stage=stages["New"]), owner=admin_user, due_date=at(2026, 3, 1 + i % 28)
            )

    make(3)
    calendar(admin_client, date="2026-03-01")
    with CaptureQueriesContext(connection) as small:
        calendar(admin_client, date="2026-03-01")
    make(40)
    with CaptureQueriesContext(connection) as large:
        calendar(admin_client, date="2026-03-01")
    assert len(large) == len(small) <= 10


# --- quick activity links -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_every_record_page_offers_log_a_call_and_schedule_a_meeting(admin_client, stages):
    account = AccountFactory()
    contact = ContactFactory(account=account)
    records = [
        LeadFactory(stage=stages["New"]),
        OpportunityFactory(stage=stages["New"], account=account, contact=contact),
        contact,
        account,
    ]
    for record in records:
        opts = record._meta
        html = admin_client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[record.pk]))
        text = html.content.decode()
        assert "Log a call" in text and "Schedule a meeting" in text, opts.model_name
        assert f"{opts.model_name}={record.pk}" in text


@pytest.mark.django_db
def test_log_a_call_opens_a_prefilled_form_and_comes_back_to_the_record(admin_client, admin_user, stages):
    opp = OpportunityFactory(stage=stages["New"], account=AccountFactory(), contact=None)
    page = admin_client.get(reverse("admin:sales_opportunity_change", args=[opp.pk]))
    action = next(a for a in page.context["record_actions"] if a.label == "Log a call")

    form = admin_client.get(action.url).context["adminform"].form
    assert form.initial["activity_type"] == "call"
    assert form.initial["opportunity"] == str(opp.pk) and form.initial["account"] == str(opp.account_id)
    assert form.initial["subject"].startswith("Call with")
    assert abs(form.initial["due_date"] - timezone.now()) < datetime.timedelta(minutes=2)

    data = {
        "subject": "Call with the buyer",
        "activity_type": "call",
        "status": "completed",
        "priority": "medium",
        "due_date_0": "2026-11-20",
        "due_date_1": "10:00",
        "opportunity": opp.pk,
        "owner": admin_user.pk,
    }
    response = admin_client.post(action.url, data)
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:sales_opportunity_change", args=[opp.pk])
    activity = Activity.objects.get()
    assert (activity.opportunity, activity.status) == (opp, "completed") and activity.completed_at


@pytest.mark.django_db
def test_next_never_leaves_the_site(admin_client, admin_user, stages):
    lead = LeadFactory(stage=stages["New"])
    data = {
        "subject": "x",
        "activity_type": "call",
        "status": "scheduled",
        "priority": "medium",
        "lead": lead.pk,
    }
    response = admin_client.post(
        reverse("admin:activities_activity_add") + "?next=https://evil.example/", data
    )
    assert response.status_code == 302 and "evil" not in response["Location"]


# --- timelines ------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_lead_timeline_lists_its_activities_newest_first(admin_client, stages):
    lead = LeadFactory(stage=stages["New"])
    ActivityFactory(lead=lead, subject="Oldest", due_date=at(2026, 1, 1))
    ActivityFactory(lead=lead, subject="Newest", due_date=at(2026, 3, 1))
    ActivityFactory(lead=lead, subject="Middle", due_date=at(2026, 2, 1))
    ActivityFactory(lead=LeadFactory(stage=stages["New"]), subject="Another lead's")

    response = admin_client.get(reverse("admin:crm_lead_change", args=[lead.pk]))

    assert [entry.title for entry in response.context["timeline"]] == [
        "Call: Newest",
        "Call: Middle",
        "Call: Oldest",
    ]
    assert 'id="timeline"' in response.content.decode()


@pytest.mark.django_db
def test_account_timeline_includes_its_contacts_and_deals(admin_client, stages):
    account = AccountFactory()
    ActivityFactory(account=account, subject="On the account", due_date=at(2026, 1, 1))
    ActivityFactory(
        contact=ContactFactory(account=account), subject="With a contact", due_date=at(2026, 1, 2)
    )
    deal = OpportunityFactory(account=account, stage=stages["New"])
    ActivityFactory(opportunity=deal, subject="On a deal", due_date=at(2026, 1, 3))
    ActivityFactory(account=AccountFactory(), subject="Elsewhere")

    response = admin_client.get(reverse("admin:crm_account_change", args=[account.pk]))

    assert [entry.title for entry in response.context["timeline"]] == [
        "Call: On a deal",
        "Call: With a contact",
        "Call: On the account",
    ]


@pytest.mark.django_db
@pytest.mark.parametrize("model", ["lead", "opportunity", "contact", "account"])
def test_record_page_costs_the_same_with_more_activities(admin_client, stages, model):
    account = AccountFactory()
    record = {
        "lead": lambda: LeadFactory(stage=stages["New"]),
        "opportunity": lambda: OpportunityFactory(stage=stages["New"], account=account),
        "contact": lambda: ContactFactory(account=account),
        "account": lambda: account,
    }[model]()
    app = "sales" if model == "opportunity" else "crm"
    url = reverse(f"admin:{app}_{model}_change", args=[record.pk])

    owners = [UserFactory() for _ in range(3)]

    def add(n):
        for i in range(n):
            ActivityFactory(**{model: record}, owner=owners[i % 3], due_date=at(2026, 1, 1 + i))

    add(2)
    admin_client.get(url)
    with CaptureQueriesContext(connection) as small:
        admin_client.get(url)
    add(12)
    with CaptureQueriesContext(connection) as large:
        admin_client.get(url)
    assert len(large) == len(small)
