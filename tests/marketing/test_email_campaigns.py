"""Email campaigns (issue 19, item 3) through real components: a Celery worker on Redis sends the
campaign in batches to an SMTP server on loopback (aiosmtpd); every message carries its signed
unsubscribe link and the RFC 8058 headers; opted-out, unsubscribed and address-less recipients get
nothing, and the preview says how many and why; the public unsubscribe page (no login) records it."""

import re

import pytest
from django.core import signing
from django.test import Client
from django.urls import reverse

from crm.actors import SYSTEM
from crm.marketing import links, services
from crm.messaging.services import email_template_create
from crm.models import CampaignMember, Contact, EmailUnsubscribe, OutgoingEmail
from tests.backbone import wait_until
from tests.factories import ContactFactory, LeadFactory

API = "/api/v1/crm/"


@pytest.fixture
def newsletter(db):
    return email_template_create(
        user=SYSTEM,
        data={
            "name": "Newsletter",
            "subject": "News for {{ recipient.first_name }}",
            "body_html": '<p>Hello {{ recipient.first_name }}, read <a href="https://example.com/post?a=1">this</a>.</p>',
        },
    )


def _audience(stages, template, *, track=False):
    """A campaign whose members are: two plain contacts, a lead, a contact that opted out, a lead at an
    opted-out contact's address, an unsubscribed address, a lead without address, a duplicate address."""
    campaign = services.campaign_create(
        user=SYSTEM,
        data={"name": "Spring news", "email_template": template, "track_opens": track, "track_clicks": track},
    )
    ok = [
        ContactFactory(first_name="Ann", email="ann@ok.example"),
        ContactFactory(first_name="Bob", email="bob@ok.example"),
    ]
    lead = LeadFactory(contact_name="Cy Lead", email="cy@ok.example", stage=stages["New"])
    opted = ContactFactory(first_name="Opt", email="opt@out.example", email_opt_out=True)
    lead_at_opted = LeadFactory(contact_name="Same Address", email="OPT@out.example", stage=stages["New"])
    gone = ContactFactory(first_name="Gone", email="gone@out.example")
    EmailUnsubscribe.objects.create(email="gone@out.example")
    silent = LeadFactory(contact_name="No Address", email="", stage=stages["New"])
    twin = ContactFactory(first_name="Twin", email="ANN@ok.example")
    services.campaign_members_add(
        campaign=campaign,
        user=SYSTEM,
        lead_ids=[lead.pk, lead_at_opted.pk, silent.pk],
        contact_ids=[c.pk for c in (*ok, opted, gone, twin)],
    )
    return campaign


def unfolded(header: str) -> str:
    """A header as a mail client reads it: long ones are folded onto several lines when sent."""
    return re.sub(r"\r?\n[ \t]+", " ", header).strip()


EXPECTED_EXCLUDED = {
    "no_email": 1,
    "opted_out": 2,
    "unsubscribed": 1,
    "email_off": 0,
    "no_consent": 0,
    "duplicate": 1,
}


def test_the_preview_counts_who_is_left_out_and_why(api_as, stages, newsletter):
    campaign = _audience(stages, newsletter)
    response = api_as("crm_admin").get(API + f"campaigns/{campaign.pk}/send-preview/")
    assert response.status_code == 200
    assert response.json() == {
        "template_id": newsletter.pk,
        "recipients": 3,
        "excluded": EXPECTED_EXCLUDED,
        "already_sent": 0,
    }
    assert not CampaignMember.objects.exclude(send_status="").exists()  # a preview writes nothing


def test_a_send_without_a_template_is_refused_and_sends_nothing(api_as, stages):
    campaign = services.campaign_create(user=SYSTEM, data={"name": "No template"})
    services.campaign_members_add(
        campaign=campaign, user=SYSTEM, contact_ids=[ContactFactory(email="x@ok.example").pk]
    )
    response = api_as("crm_admin").post(API + f"campaigns/{campaign.pk}/send/")
    assert response.status_code == 400 and "email_template_id" in response.data
    assert not OutgoingEmail.objects.exists()
    assert not CampaignMember.objects.exclude(send_status="").exists()
    # A Sales Rep may not send a campaign at all.
    assert api_as("owner").post(API + f"campaigns/{campaign.pk}/send/").status_code == 403


@pytest.mark.celery_worker
@pytest.mark.django_db(transaction=True)
def test_a_worker_sends_the_campaign_with_unsubscribe_headers_and_never_to_the_excluded(
    stages, newsletter, smtp_server, start_worker, settings
):
    settings.CRM_CAMPAIGN_BATCH_SIZE = 2  # several batches, two senders at once
    start_worker(CRM_CAMPAIGN_BATCH_SIZE="2", CRM_BASE_URL=settings.CRM_BASE_URL)
    campaign = _audience(stages, newsletter, track=True)

    result = services_send(campaign)
    assert result == {"queued": 3, "excluded": EXPECTED_EXCLUDED}

    smtp_server.wait_for(3, timeout=60)
    wait_until(lambda: campaign.members.filter(send_status="sent").count() == 3, 30)
    received = smtp_server.received()
    assert sorted(m["To"] for m in received) == ["ann@ok.example", "bob@ok.example", "cy@ok.example"]
    for message in received:
        unsubscribe = unfolded(message["List-Unsubscribe"])
        assert re.fullmatch(r"<https?://[^>]+/m/u/[^>]+/>", unsubscribe), unsubscribe
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        parts = {
            part.get_content_type(): part.get_payload(decode=True).decode()
            for part in message.walk()
            if not part.is_multipart()
        }
        url = unsubscribe[1:-1]
        assert url in parts["text/plain"]
        assert url.replace("&", "&amp;") in parts["text/html"] or url in parts["text/html"]
        assert "/m/o/" in parts["text/html"] and "/m/c/" in parts["text/html"]  # tracking asked for
        assert "https://example.com/post" not in parts["text/html"]  # the link goes through us
    # The send log: one line per member, with the reason for those left out.
    log = {
        (m.lead or m.contact).email.lower() or "-": (m.send_status, m.excluded_reason)
        for m in campaign.members.select_related("lead", "contact")
    }
    assert log["ann@ok.example"] in {("sent", ""), ("excluded", "duplicate")}
    assert log["opt@out.example"] == ("excluded", "opted_out")
    assert log["gone@out.example"] == ("excluded", "unsubscribed")
    assert log["-"] == ("excluded", "no_email")
    assert campaign.members.filter(send_status="sent", status="sent").count() == 3
    # Sending again reaches nobody twice.
    assert services_send(campaign)["queued"] == 0


def services_send(campaign):
    from crm.marketing.sending import campaign_send

    return campaign_send(campaign=campaign, user=SYSTEM)


@pytest.mark.django_db
def test_the_unsubscribe_link_works_without_login_and_flips_the_preference(
    stages, newsletter, smtp_server, django_capture_on_commit_callbacks
):
    campaign = _audience(stages, newsletter)
    with django_capture_on_commit_callbacks(execute=True):
        services_send(campaign)  # no broker: the batches run in this process after the commit
    messages = smtp_server.wait_for(3)
    bob_message = next(m for m in messages if m["To"] == "bob@ok.example")
    path = unfolded(bob_message["List-Unsubscribe"])[1:-1].split("://", 1)[1].split("/", 1)[1]
    client = Client(enforce_csrf_checks=True)
    page = client.get("/" + path)
    assert page.status_code == 200 and "bob@ok.example" in page.content.decode()
    assert not EmailUnsubscribe.objects.filter(email="bob@ok.example").exists()  # GET only shows
    # The mail client's one-click POST (RFC 8058): no session, no CSRF token.
    done = client.post("/" + path, {"List-Unsubscribe": "One-Click"})
    assert done.status_code == 200
    assert EmailUnsubscribe.objects.get(email="bob@ok.example").one_click is True
    bob = Contact.objects.get(email="bob@ok.example")
    assert bob.email_opt_out is True
    assert bob.history.first().email_opt_out is True  # the audit trail has it
    member = campaign.members.get(contact=bob)
    assert member.status == "unsubscribed"
    # Posting again changes nothing more.
    assert client.post("/" + path, {"List-Unsubscribe": "One-Click"}).status_code == 200
    assert EmailUnsubscribe.objects.filter(email="bob@ok.example").count() == 1
    # Bob is never emailed again, by a campaign or a template send.
    again = services.campaign_create(user=SYSTEM, data={"name": "Summer news", "email_template": newsletter})
    services.campaign_members_add(campaign=again, user=SYSTEM, contact_ids=[bob.pk])
    before = len(smtp_server.received())
    assert services_send(again) == {
        "queued": 0,
        "excluded": {
            "no_email": 0,
            "opted_out": 0,
            "unsubscribed": 1,
            "email_off": 0,
            "no_consent": 0,
            "duplicate": 0,
        },
    }
    assert len(smtp_server.received()) == before


@pytest.mark.django_db
def test_a_tampered_or_expired_link_changes_nothing(stages, newsletter, settings):
    campaign = _audience(stages, newsletter)
    member = campaign.members.filter(contact__email="bob@ok.example").get()
    url = links.unsubscribe_url(member.pk, "bob@ok.example")
    path = "/" + url.split("://", 1)[1].split("/", 1)[1]
    client = Client()
    tampered = path[:-5] + ("A" if path[-5] != "A" else "B") + path[-4:]
    assert client.post(tampered).status_code == 400
    forged = signing.dumps({"m": member.pk, "e": "bob@ok.example"}, salt="another purpose")
    assert client.post(reverse("campaign-unsubscribe", args=[forged])).status_code == 400
    settings.CRM_CAMPAIGN_LINK_MAX_AGE = 60
    expired_token = signing.dumps(
        {"m": member.pk, "e": "bob@ok.example"}, salt=links.UNSUBSCRIBE_SALT, compress=True
    )
    with pytest.MonkeyPatch.context() as patch:
        import time

        now = time.time()
        patch.setattr(time, "time", lambda: now + 120)
        response = client.post(reverse("campaign-unsubscribe", args=[expired_token]))
    assert response.status_code == 410 and "expired" in response.content.decode()
    assert not EmailUnsubscribe.objects.filter(email="bob@ok.example").exists()
    assert Contact.objects.get(email="bob@ok.example").email_opt_out is False
    assert client.get(reverse("campaign-click", args=["nonsense"])).status_code == 400
    assert client.get(reverse("campaign-open", args=["nonsense"])).status_code == 200  # an image anyway


@pytest.mark.django_db
def test_opens_and_clicks_are_tracked_through_signed_urls(stages, newsletter):
    campaign = _audience(stages, newsletter, track=True)
    member = campaign.members.filter(contact__email="bob@ok.example").get()
    client = Client()
    assert client.get(links.open_url(member.pk).split("8000", 1)[-1]).status_code == 200
    member.refresh_from_db()
    assert member.opened_at is not None and member.status == "opened"
    response = client.get(links.click_url(member.pk, "https://example.com/post?a=1").split("8000", 1)[-1])
    assert response.status_code == 302 and response["Location"] == "https://example.com/post?a=1"
    member.refresh_from_db()
    assert member.clicked_at is not None and member.status == "clicked"


@pytest.mark.django_db
def test_a_test_send_goes_to_me_only(
    api_as, stages, newsletter, smtp_server, django_capture_on_commit_callbacks
):
    campaign = _audience(stages, newsletter)
    with django_capture_on_commit_callbacks(execute=True):
        response = api_as("crm_admin").post(
            API + f"campaigns/{campaign.pk}/test-send/", {"to": "me@test.example"}, format="json"
        )
    assert response.status_code == 202, response.data
    (message,) = smtp_server.wait_for(1)
    assert message["To"] == "me@test.example" and message["List-Unsubscribe-Post"]
    assert not campaign.members.exclude(send_status="").exists()
    empty = services.campaign_create(user=SYSTEM, data={"name": "Empty", "email_template": newsletter})
    response = api_as("crm_admin").post(API + f"campaigns/{empty.pk}/test-send/", {"to": "me@test.example"})
    assert response.status_code == 400


@pytest.mark.django_db
def test_the_admin_sends_a_campaign_and_shows_the_preview(
    admin_as, people, newsletter, smtp_server, django_capture_on_commit_callbacks
):
    campaign = _audience(people.stages, newsletter)
    client = admin_as("crm_admin")
    page = client.get(f"/admin/crm/campaign/{campaign.pk}/change/").content.decode()
    assert "3 would get the email" in page and "opted out: 2" in page
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/admin/crm/campaign/", {"action": "send_email", "_selected_action": [campaign.pk]}, follow=True
        )
    assert "3 queued for sending, 5 left out" in response.content.decode()
    assert len(smtp_server.wait_for(3)) == 3
