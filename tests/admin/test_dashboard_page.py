"""The admin index is the CRM dashboard: the API's figures, the funnel, the agenda, at a fixed query cost."""

import datetime
import re
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from crm import services as crm_services
from crm.actors import SYSTEM
from sales import selectors, services
from tests.factories import (
    AccountFactory,
    ActivityFactory,
    ContactFactory,
    LeadFactory,
    OpportunityFactory,
    UserFactory,
)

D = Decimal


@pytest.fixture
def book(stages, admin_user):
    """Four leads and three deals whose figures are worked out by hand in the tests."""
    LeadFactory(name="L1", stage=stages["New"], expected_revenue=D("1000"))
    LeadFactory(name="L2", stage=stages["Qualified"], expected_revenue=D("2000"))
    converted = LeadFactory(
        name="L3", stage=stages["Proposal"], expected_revenue=D("5000"), company_name="Acme"
    )
    lost = LeadFactory(name="L4", stage=stages["Qualified"], expected_revenue=D("500"))
    conversion = services.lead_convert(lead=converted, user=SYSTEM)
    services.opportunity_mark_won(opportunity=conversion.opportunity, user=SYSTEM)
    crm_services.lead_mark_lost(lead=lost, user=SYSTEM)
    OpportunityFactory(name="O1", stage=stages["New"], amount=D("1000"))
    OpportunityFactory(name="O2", stage=stages["Proposal"], amount=D("3000"))
    return {"won": conversion.opportunity}


def get_dashboard(client, query=""):
    response = client.get(reverse("admin:index") + query)
    assert response.status_code == 200
    return response


def kpi(html: str, name: str) -> str:
    block = re.search(rf'data-kpi="{name}">(.*?)</div>\s*</div>', html, re.S).group(1)
    return " ".join(re.sub(r"<[^>]+>", " ", block).split())


@pytest.mark.django_db
def test_dashboard_shows_the_hand_computed_figures(admin_client, book):
    response = get_dashboard(admin_client)
    html = response.content.decode()

    # 4 leads; open deals O1 + O2; won: L3's deal; 1 converted lead of 4.
    assert kpi(html, "total-leads") == "Total leads 4"
    assert kpi(html, "open-opportunities") == "Open opportunities 2 $4K"
    assert kpi(html, "won-opportunities") == "Won deals 1 $5K"
    assert kpi(html, "conversion-rate").startswith("Lead conversion rate 25.00%")
    # The same dict as GET /api/v1/crm/dashboard/.
    assert response.context["figures"] == selectors.dashboard(user=response.wsgi_request.user)


@pytest.mark.django_db
def test_dashboard_funnel_counts_leads_qualified_converted_won(admin_client, book):
    response = get_dashboard(admin_client)

    funnel = {step["key"]: step for step in response.context["funnel"]}
    # Qualified: L2 (past New) and L3 (converted); L4 was lost, L1 is still new.
    assert [(key, step["count"]) for key, step in funnel.items()] == [
        ("leads", 4),
        ("qualified", 2),
        ("converted", 1),
        ("won", 1),
    ]
    assert (funnel["qualified"]["percent_of_total"], funnel["converted"]["percent_of_previous"]) == (
        50.0,
        50.0,
    )
    assert (funnel["won"]["percent_of_total"], funnel["won"]["percent_of_previous"]) == (25.0, 100.0)
    assert funnel["leads"]["value"] == D("8500.00") and funnel["won"]["value"] == D("5000.00")
    html = response.content.decode()
    assert '<tr data-funnel-step="qualified">' in html
    assert "crm-funnel" in html


@pytest.mark.django_db
def test_dashboard_chart_has_a_bar_per_stage_with_its_value(admin_client, book, stages):
    html = get_dashboard(admin_client).content.decode()

    chart = re.search(r'<section class="crm-panel" id="pipeline-distribution">(.*?)</section>', html, re.S)[1]
    assert chart.count("<rect") == 5  # New, Qualified, Proposal, Won, Lost
    assert "Proposal · 1" in chart and "$3,000" in chart
    assert "Won · 1" in chart and "$5,000" in chart


@pytest.mark.django_db
def test_dashboard_for_one_pipeline(admin_client, book, pipeline):
    response = get_dashboard(admin_client, f"?pipeline={pipeline.pk}")
    assert response.context["selected_pipeline"] == pipeline
    assert response.context["figures"]["total_leads"] == 4


@pytest.mark.django_db
def test_dashboard_lists_my_overdue_and_upcoming_activities_only(admin_client, admin_user, book, stages):
    lead = LeadFactory(stage=stages["New"])
    now = timezone.now()
    ActivityFactory(
        subject="Overdue call", lead=lead, owner=admin_user, due_date=now - datetime.timedelta(days=1)
    )
    ActivityFactory(
        subject="Soon meeting", lead=lead, owner=admin_user, due_date=now + datetime.timedelta(days=2)
    )
    ActivityFactory(
        subject="Next month", lead=lead, owner=admin_user, due_date=now + datetime.timedelta(days=30)
    )
    ActivityFactory(
        subject="Done long ago",
        lead=lead,
        owner=admin_user,
        status="completed",
        completed_at=now,
        due_date=now - datetime.timedelta(days=3),
    )
    ActivityFactory(
        subject="Someone else's", lead=lead, owner=UserFactory(), due_date=now - datetime.timedelta(days=1)
    )

    response = get_dashboard(admin_client)

    agenda = response.context["agenda"]
    assert [a.subject for a in agenda.overdue] == ["Overdue call"]
    assert [a.subject for a in agenda.upcoming] == ["Soon meeting"]
    html = response.content.decode()
    assert "Overdue call" in html and "Someone else" not in html and "Next month" not in html


@pytest.mark.django_db
def test_the_agenda_names_the_record_of_each_activity_without_a_query_each(admin_client, admin_user, stages):
    """The agenda reads only what it shows; the name of the lead, deal, contact or account an activity is
    about is read with it, not by a query per activity."""
    soon = timezone.now() + datetime.timedelta(hours=1)
    ActivityFactory(
        subject="About the lead", owner=admin_user, due_date=soon, lead=LeadFactory(name="Lead Ltd")
    )
    get_dashboard(admin_client)
    with CaptureQueriesContext(connection) as one:
        get_dashboard(admin_client)
    ActivityFactory(
        subject="About the deal",
        owner=admin_user,
        due_date=soon,
        opportunity=OpportunityFactory(name="Big deal", stage=stages["Proposal"]),
    )
    ActivityFactory(
        subject="About the contact",
        owner=admin_user,
        due_date=soon,
        contact=ContactFactory(first_name="Ada", last_name="Byron"),
    )
    ActivityFactory(
        subject="About the account", owner=admin_user, due_date=soon, account=AccountFactory(name="Acme Corp")
    )
    with CaptureQueriesContext(connection) as four:
        response = get_dashboard(admin_client)

    html = response.content.decode()
    for name in ("Lead Ltd", "Big deal", "Ada Byron", "Acme Corp"):
        assert f'<span class="crm-activity-record">· {name}</span>' in html
    assert len(four) == len(one)


@pytest.mark.django_db
def test_dashboard_lists_recent_wins_and_links_to_the_working_pages(admin_client, book):
    response = get_dashboard(admin_client)

    assert [deal.pk for deal in response.context["recent_won"]] == [book["won"].pk]
    html = response.content.decode()
    for name in (
        "admin:crm_lead_board",
        "admin:sales_opportunity_board",
        "admin:sales_opportunity_forecast",
        "admin:activities_activity_calendar",
    ):
        assert f'href="{reverse(name)}"' in html
    # The usual app list stays on the page.
    assert reverse("admin:crm_lead_changelist") in html and 'class="app-crm module' in html


def make_book(stages, n: int, owner=None):
    owner = owner or UserFactory()
    for i in range(n):
        lead = LeadFactory(stage=stages["Qualified"], owner=owner, expected_revenue=100)
        opp = OpportunityFactory(stage=stages["Proposal"], owner=owner, amount=100)
        if i % 2:
            services.opportunity_mark_won(opportunity=opp, user=SYSTEM)
        ActivityFactory(lead=lead, owner=owner, due_date=timezone.now() + datetime.timedelta(hours=i + 1))


@pytest.mark.django_db
def test_dashboard_query_count_does_not_grow_with_the_data(admin_client, admin_user, stages):
    # The user's own leads and deals, each with next actions (no next step planned, a close date gone
    # by): "My next actions" reads them in three queries per kind, whatever their number.
    make_book(stages, 2, owner=admin_user)
    OpportunityFactory._meta.model.objects.update(close_date=datetime.date(2026, 1, 1))
    admin_client.get(reverse("admin:index"))  # warm the session and content types
    with CaptureQueriesContext(connection) as small:
        first = get_dashboard(admin_client)
    make_book(stages, 15, owner=admin_user)
    OpportunityFactory._meta.model.objects.update(close_date=datetime.date(2026, 1, 1))
    for activity in ActivityFactory._meta.model.objects.all():
        activity.owner = admin_user
        activity.save()
    with CaptureQueriesContext(connection) as large:
        second = get_dashboard(admin_client)
    assert len(first.context["my_next_actions"]) == 1
    assert len(second.context["my_next_actions"]) == 8
    assert len(large) == len(small)
    # "My next actions" costs two queries for leads (the records scanned, the rules' values over them:
    # none fires) and three for deals (and the deals shown); the won deals from leads are read from the
    # deals' rollup before the funnel's query (19 in all, for a superuser).
    assert len(large) <= 19, len(large)
