"""Campaigns (issue 19, item 2): members with a status each, the leads and deals a campaign sourced,
its figures and ROI (checked by hand below), in the API and the admin."""

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from crm.actors import SYSTEM
from crm.marketing import selectors, services
from crm.models import Campaign, CampaignMember
from sales import services as sales_services
from tests.factories import ContactFactory, LeadFactory, OpportunityFactory

pytestmark = pytest.mark.django_db

API = "/api/v1/crm/"


@pytest.fixture
def campaign(people):
    """A webinar that cost 1,000.00: three leads (two the owner's, one the outsider's), four members,
    and three deals: won 3,000.00 and 1,500.00 (the outsider's), open 500.00."""
    stages, users = people.stages, people.users
    webinar = services.campaign_create(
        user=SYSTEM,
        data={
            "name": "Spring webinar",
            "campaign_type": "webinar",
            "status": "completed",
            "budget": Decimal("1200.00"),
            "actual_cost": Decimal("1000.00"),
            "expected_revenue": Decimal("5000.00"),
        },
    )
    leads = [
        LeadFactory(name=f"Webinar lead {n}", owner=who, stage=stages["New"], campaign=webinar)
        for n, who in enumerate([users["owner"], users["owner"], users["outsider"]])
    ]
    contacts = [ContactFactory(first_name=f"Attendee {n}") for n in range(2)]
    services.campaign_members_add(
        campaign=webinar, user=SYSTEM, lead_ids=[lead.pk for lead in leads[:2]], contact_ids=[contacts[0].pk]
    )
    services.campaign_members_add(
        campaign=webinar, user=SYSTEM, contact_ids=[contacts[1].pk], status="responded"
    )
    won = OpportunityFactory(
        name="Won deal", owner=users["owner"], stage=stages["New"], amount=3000, campaign=webinar
    )
    sales_services.opportunity_mark_won(opportunity=won, user=SYSTEM)
    theirs = OpportunityFactory(
        name="Their won deal", owner=users["outsider"], stage=stages["New"], amount=1500, campaign=webinar
    )
    sales_services.opportunity_mark_won(opportunity=theirs, user=SYSTEM)
    OpportunityFactory(
        name="Open deal", owner=users["owner"], stage=stages["New"], amount=500, campaign=webinar
    )
    OpportunityFactory(name="Other deal", owner=users["owner"], stage=stages["New"], amount=9999)
    return webinar


def test_campaign_figures_and_roi_checked_by_hand(api_as, campaign):
    response = api_as("crm_admin").get(API + f"campaigns/{campaign.pk}/stats/")
    assert response.status_code == 200
    stats = response.json()
    # 4 members: 2 leads and 1 contact planned, 1 contact responded.
    assert stats["members"] == 4 and stats["responses"] == 1
    assert stats["members_by_status"]["planned"] == 3 and stats["members_by_status"]["responded"] == 1
    # 3 leads, 3 deals of which 2 won: 3,000 + 1,500 = 4,500.
    assert (stats["leads"], stats["opportunities"], stats["won_opportunities"]) == (3, 3, 2)
    assert stats["won_revenue"] == "4500.00"
    # Cost per lead = 1,000 / 3 = 333.33; ROI = (4,500 − 1,000) / 1,000 = 3.5.
    assert stats["cost_per_lead"] == "333.33"
    assert stats["roi"] == "3.5000"
    assert (stats["budget"], stats["actual_cost"], stats["expected_revenue"]) == (
        "1200.00",
        "1000.00",
        "5000.00",
    )


def test_campaign_figures_count_only_what_the_reader_sees(api_as, campaign):
    stats = api_as("owner").get(API + f"campaigns/{campaign.pk}/stats/").json()
    # The outsider's lead and won deal are not the owner's to count: 2 leads, 2 deals, 1 won (3,000).
    assert (stats["leads"], stats["opportunities"], stats["won_opportunities"]) == (2, 2, 1)
    assert stats["won_revenue"] == "3000.00"
    assert stats["cost_per_lead"] == "500.00" and stats["roi"] == "2.0000"


def test_no_cost_means_no_roi_and_no_cost_per_lead(people):
    free = services.campaign_create(user=SYSTEM, data={"name": "Free"})
    stats = selectors.campaign_stats(campaign=free, user=SYSTEM)
    assert stats["roi"] is None and stats["cost_per_lead"] is None and stats["members"] == 0


def test_a_converted_lead_passes_its_campaign_to_the_deal(people, campaign):
    lead = LeadFactory(name="Convert me", contact_name="Jo", stage=people.stages["New"], campaign=campaign)
    result = sales_services.lead_convert(lead=lead, user=SYSTEM)
    assert result.opportunity.campaign == campaign


def test_the_api_runs_a_campaign_and_its_members(api_as, people):
    api = api_as("crm_admin")
    bad = api.post(
        API + "campaigns/",
        {"name": "Bad", "start_date": "2026-05-02", "end_date": "2026-05-01"},
        format="json",
    )
    assert bad.status_code == 400 and "end_date" in bad.data
    bad = api.post(API + "campaigns/", {"name": "Bad", "actual_cost": "-1"}, format="json")
    assert bad.status_code == 400 and "actual_cost" in bad.data
    created = api.post(
        API + "campaigns/",
        {"name": "Fair", "campaign_type": "event", "start_date": "2026-05-01", "actual_cost": "250.00"},
        format="json",
    )
    assert created.status_code == 201, created.data
    campaign_id = created.data["id"]
    lead = people.records["owner"].lead
    contact = people.records["owner"].contact
    segment = services.segment_create(
        user=SYSTEM,
        data={"name": "All the owner's", "entity": "lead", "definition": {"owner": people.users["owner"].pk}},
    )
    added = api.post(
        API + f"campaigns/{campaign_id}/members/",
        {"lead_ids": [lead.pk], "contact_ids": [contact.pk], "segment_id": segment.pk},
        format="json",
    )
    assert added.status_code == 201 and added.data == {"added": 2}  # the segment's lead is the same lead
    again = api.post(API + f"campaigns/{campaign_id}/members/", {"lead_ids": [lead.pk]}, format="json")
    assert again.data == {"added": 0}
    listed = api.get(API + f"campaigns/{campaign_id}/members/").json()
    assert listed["count"] == 2
    member = next(row for row in listed["results"] if row["lead_id"] == lead.pk)
    assert member["status"] == "planned" and member["name"] == lead.name
    changed = api.patch(
        API + f"campaigns/{campaign_id}/members/{member['id']}/", {"status": "responded"}, format="json"
    )
    assert changed.status_code == 200 and changed.data["status"] == "responded"
    assert (
        api.patch(
            API + f"campaigns/{campaign_id}/members/{member['id']}/", {"status": "asleep"}, format="json"
        ).status_code
        == 400
    )
    assert api.get(API + f"campaigns/{campaign_id}/stats/").json()["responses"] == 1
    assert api.delete(API + f"campaigns/{campaign_id}/members/{member['id']}/").status_code == 204
    assert api.delete(API + f"campaigns/{campaign_id}/members/{member['id']}/").status_code == 404
    assert CampaignMember.objects.filter(campaign_id=campaign_id).count() == 1
    # A lead's campaign is written as campaign_id.
    response = api.patch(API + f"leads/{lead.pk}/", {"campaign_id": campaign_id}, format="json")
    assert response.status_code == 200 and response.data["campaign_id"] == campaign_id
    assert api.get(API + f"campaigns/{campaign_id}/stats/").json()["leads"] == 1


def test_members_of_unknown_or_unseen_records_are_refused(api_as, people, campaign):
    manager = api_as("manager")
    theirs = people.records["outsider"].lead
    response = manager.post(
        API + f"campaigns/{campaign.pk}/members/", {"lead_ids": [theirs.pk]}, format="json"
    )
    assert response.status_code == 400 and "lead_ids" in response.data
    response = manager.post(
        API + f"campaigns/{campaign.pk}/members/", {"lead_ids": [99999999]}, format="json"
    )
    assert response.status_code == 400
    account_segment = services.segment_create(user=SYSTEM, data={"name": "Accts", "entity": "account"})
    response = manager.post(
        API + f"campaigns/{campaign.pk}/members/", {"segment_id": account_segment.pk}, format="json"
    )
    assert response.status_code == 400 and "segment_id" in response.data
    assert campaign.members.count() == 4
    # A Sales Rep reads campaigns but does not create them.
    assert api_as("owner").post(API + "campaigns/", {"name": "Mine"}, format="json").status_code == 403


def test_the_members_list_leaves_out_leads_the_reader_cannot_see(api_as, people, campaign):
    theirs = people.records["outsider"].lead
    services.campaign_members_add(campaign=campaign, user=SYSTEM, lead_ids=[theirs.pk])
    seen_by_admin = api_as("crm_admin").get(API + f"campaigns/{campaign.pk}/members/").json()["count"]
    seen_by_owner = api_as("owner").get(API + f"campaigns/{campaign.pk}/members/").json()["count"]
    assert (seen_by_admin, seen_by_owner) == (5, 4)


def _queries(client, path):
    with CaptureQueriesContext(connection) as context:
        assert client.get(API + path).status_code == 200
    return len(context.captured_queries)


def test_campaign_lists_cost_a_fixed_number_of_queries(
    api_as, people, campaign, django_assert_max_num_queries
):
    api = api_as("crm_admin")
    _queries(api, "campaigns/")
    few = _queries(api, "campaigns/?page_size=100")
    few_members = _queries(api, f"campaigns/{campaign.pk}/members/?page_size=100")
    for n in range(10):
        services.campaign_create(user=SYSTEM, data={"name": f"More {n}"})
        services.campaign_members_add(campaign=campaign, user=SYSTEM, contact_ids=[ContactFactory().pk])
    with django_assert_max_num_queries(few):
        _queries(api, "campaigns/?page_size=100")
    with django_assert_max_num_queries(few_members):
        _queries(api, f"campaigns/{campaign.pk}/members/?page_size=100")


# --- the admin -------------------------------------------------------------------------------------


def test_the_admin_campaign_page_shows_the_figures(admin_as, campaign):
    client = admin_as("crm_admin")
    page = client.get(f"/admin/crm/campaign/{campaign.pk}/change/").content.decode()
    assert "$4,500" in page and "350.00 %" in page and "$333.33" in page
    listing = client.get("/admin/crm/campaign/").content.decode()
    assert "Spring webinar" in listing


def test_the_admin_adds_a_campaign_and_members(admin_as, people, campaign):
    client = admin_as("crm_admin")
    response = client.post(
        "/admin/crm/campaign/add/", {"name": "Trade fair", "campaign_type": "event", "status": "planned"}
    )
    assert response.status_code == 302
    fair = Campaign.objects.get(name="Trade fair")
    lead = people.records["owner"].lead
    response = client.post(
        "/admin/crm/lead/",
        {"action": "add_to_campaign", "_selected_action": [lead.pk], "apply": "1", "campaign": fair.pk},
    )
    assert response.status_code == 302
    member = fair.members.get()
    assert member.lead == lead
    response = client.post(f"/admin/crm/campaignmember/{member.pk}/change/", {"status": "clicked"})
    assert response.status_code == 302
    member.refresh_from_db()
    assert member.status == "clicked"
