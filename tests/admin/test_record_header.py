"""Record pages: the header (stage stepper, key figures), the layout beside the timeline, the composer."""

import datetime
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from activities.models import Activity, ActivityStatus, Note
from tests.factories import AccountFactory, ContactFactory, LeadFactory, OpportunityFactory

D = Decimal
COMPOSE = "admin:activities_activity_compose"


@pytest.mark.django_db
def test_lead_page_has_a_stepper_and_key_figures(admin_client, stages):
    lead = LeadFactory(stage=stages["Qualified"], expected_revenue=D("12000"), probability=30)

    response = admin_client.get(reverse("admin:crm_lead_change", args=[lead.pk]))

    assert response.status_code == 200
    stepper = response.context["stepper"]
    assert [(s["stage"].name, s["state"]) for s in stepper["stages"]] == [
        ("New", "done"),
        ("Qualified", "current"),
        ("Proposal", "todo"),
        ("Won", "todo"),
        ("Lost", "todo"),
    ]
    assert stepper["move_url"] == reverse("admin:crm_lead_board_move")
    figures = {figure.label: figure.value for figure in response.context["key_figures"]}
    assert figures["Expected revenue"] == "$12K"
    assert figures["Probability"] == "30%"
    assert figures["Next activity"] == "None planned"
    assert figures["Days in stage"] == "0"
    assert {"Automated probability", "Score", "Owner"} <= set(figures)
    html = response.content.decode()
    assert "data-stepper" in html and 'aria-current="step"' in html
    assert 'class="crm-record-layout has-activity"' in html and 'id="composer"' in html


@pytest.mark.django_db
def test_a_closed_deal_has_a_locked_stepper(admin_client, stages):
    deal = OpportunityFactory(stage=stages["Proposal"], amount=D("500"))
    from crm.actors import SYSTEM
    from sales.services import opportunity_mark_won

    opportunity_mark_won(opportunity=deal, user=SYSTEM)
    response = admin_client.get(reverse("admin:sales_opportunity_change", args=[deal.pk]))
    assert response.context["stepper"]["locked"] is True
    figures = {figure.label: figure.value for figure in response.context["key_figures"]}
    assert figures["Amount"] == "$500" and "Days in stage" not in figures


@pytest.mark.django_db
def test_account_page_shows_roll_ups_of_what_the_reader_sees(admin_as, people, stages):
    account = AccountFactory(name="Roll-up Inc")
    ContactFactory(account=account)
    OpportunityFactory(account=account, stage=stages["New"], amount=D("100"), owner=people.users["owner"])
    OpportunityFactory(account=account, stage=stages["New"], amount=D("900"), owner=people.users["outsider"])

    response = admin_as("owner").get(reverse("admin:crm_account_change", args=[account.pk]))

    figures = {figure.label: figure.value for figure in response.context["key_figures"]}
    assert (figures["Contacts"], figures["Deals"], figures["Open value"]) == ("1", "1", "$100")
    assert response.context["stepper"] is None


@pytest.mark.django_db
def test_contact_page_names_its_account(admin_client):
    contact = ContactFactory(account=AccountFactory(name="Acme"), email="a@acme.test")
    response = admin_client.get(reverse("admin:crm_contact_change", args=[contact.pk]))
    figures = {figure.label: figure for figure in response.context["key_figures"]}
    assert figures["Account"].value == "Acme"
    assert figures["Account"].url == reverse("admin:crm_account_change", args=[contact.account_id])


@pytest.mark.django_db
def test_composer_logs_a_call_plans_a_task_and_writes_a_note(admin_client, admin_user, stages):
    deal = OpportunityFactory(stage=stages["New"], account=AccountFactory(), contact=ContactFactory())
    page = reverse("admin:sales_opportunity_change", args=[deal.pk])
    base = {"record_type": "opportunity", "record_id": deal.pk, "next": page}

    call = admin_client.post(reverse(COMPOSE), {**base, "kind": "call", "subject": "", "body": "Talked"})
    task = admin_client.post(
        reverse(COMPOSE), {**base, "kind": "task", "subject": "Send the quote", "when": "2027-01-05T09:30"}
    )
    note = admin_client.post(reverse(COMPOSE), {**base, "kind": "note", "body": "Likes **blue**"})

    assert [r.status_code for r in (call, task, note)] == [302, 302, 302]
    assert call["Location"] == page
    logged = Activity.objects.get(activity_type="call")
    assert (logged.status, logged.opportunity, logged.account, logged.contact, logged.owner) == (
        ActivityStatus.COMPLETED,
        deal,
        deal.account,
        deal.contact,
        admin_user,
    )
    assert logged.subject.startswith("Call with ") and logged.description == "Talked"
    assert abs(logged.due_date - timezone.now()) < datetime.timedelta(minutes=2)
    planned = Activity.objects.get(activity_type="task")
    assert (planned.subject, planned.status) == ("Send the quote", ActivityStatus.SCHEDULED)
    assert timezone.localtime(planned.due_date).strftime("%Y-%m-%d %H:%M") == "2027-01-05 09:30"
    assert Note.objects.get().body == "Likes **blue**"
    timeline = admin_client.get(page).content.decode()
    assert "Send the quote" in timeline and "Note" in timeline


@pytest.mark.django_db
def test_composer_refuses_bad_input_and_hidden_records(admin_as, people):
    client = admin_as("owner")
    theirs = people.records["outsider"].lead
    url = reverse(COMPOSE)

    assert client.get(url).status_code == 405
    bad = client.post(url, {"kind": "poem", "record_type": "lead", "record_id": "x"})
    hidden = client.post(url, {"kind": "call", "record_type": "lead", "record_id": theirs.pk})
    empty_note = client.post(
        url, {"kind": "note", "record_type": "lead", "record_id": people.records["owner"].lead.pk}
    )
    unknown = client.post(url, {"kind": "call", "record_type": "planet", "record_id": 1})

    assert [r.status_code for r in (bad, hidden, empty_note, unknown)] == [302, 302, 302, 302]
    assert not Activity.objects.filter(lead=theirs, subject__startswith="Call").exists()
    assert not Note.objects.exists()


@pytest.mark.django_db
def test_record_page_query_count_is_fixed(admin_client, stages, django_assert_max_num_queries):
    lead = LeadFactory(stage=stages["New"])
    url = reverse("admin:crm_lead_change", args=[lead.pk])
    admin_client.get(url)
    with django_assert_max_num_queries(80) as first:
        admin_client.get(url)
    for _ in range(5):
        Activity.objects.create(lead=lead, subject="x", activity_type="call")
    with django_assert_max_num_queries(len(first.captured_queries)):
        admin_client.get(url)


@pytest.mark.django_db
def test_a_login_that_owns_no_activity_sees_everyones(admin_client, admin_user, stages):
    from tests.factories import ActivityFactory, UserFactory

    lead = LeadFactory(stage=stages["New"])
    soon = timezone.now() + datetime.timedelta(days=1)
    theirs = ActivityFactory(subject="Call for Dana", owner=UserFactory(), due_date=soon, lead=lead)
    dashboard = admin_client.get(reverse("admin:index"))
    assert dashboard.context["agenda_everyone"] is True
    assert theirs.subject in dashboard.content.decode()
    calendar = admin_client.get(reverse("admin:activities_activity_calendar"))
    assert (calendar.context["everyone"], calendar.context["fallback_everyone"]) == (True, True)
    mine = admin_client.get(reverse("admin:activities_activity_calendar"), {"everyone": "0"})
    assert mine.context["everyone"] is False

    ActivityFactory(subject="My own", owner=admin_user, due_date=soon, lead=lead)
    dashboard = admin_client.get(reverse("admin:index"))
    assert dashboard.context["agenda_everyone"] is False
    assert theirs.subject not in dashboard.content.decode()
    assert admin_client.get(reverse("admin:activities_activity_calendar")).context["everyone"] is False


@pytest.mark.django_db
def test_technical_apps_are_off_the_dashboard_for_non_superusers(admin_as, people, superuser):
    from django.test import Client

    crm_admin = admin_as("crm_admin").get(reverse("admin:index"))
    labels = {app["app_label"] for app in crm_admin.context["app_list"]}
    assert labels.isdisjoint({"auth", "authtoken", "axes"}) and "crm" in labels
    assert "django_celery_beat" in labels  # the schedules are a CRM Admin's to set
    client = Client()
    client.force_login(superuser)
    superuser = client.get(reverse("admin:index"))
    assert "axes" in {app["app_label"] for app in superuser.context["app_list"]}


@pytest.mark.django_db
def test_the_funnel_says_it_counts_deals_from_leads(admin_client):
    html = admin_client.get(reverse("admin:index")).content.decode()
    assert "Won deals from these leads" in html and "data-funnel-note" in html
