"""Consent and communication preferences (issue 19, item 4): consent records by purpose and lawful
basis, channel preferences, the signed preference-centre link in every campaign email, and sends that
reach no one without consent for a purpose that requires it, nor anyone who turned email off. Real
SMTP on loopback (aiosmtpd); the preference page is used as a person would, without logging in."""

import datetime
import re
import time

import pytest
from django.core import signing
from django.db import IntegrityError, connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from crm.actors import SYSTEM
from crm.consent import services as consent_services
from crm.marketing import links, services
from crm.marketing.sending import campaign_send
from crm.messaging.services import email_template_create
from crm.models import ChannelPreference, ConsentPurpose, ConsentRecord, Contact, OutgoingEmail
from tests.factories import ContactFactory, LeadFactory

API = "/api/v1/crm/"


@pytest.fixture
def newsletter_purpose(db):
    return consent_services.consent_purpose_create(
        user=SYSTEM,
        data={"name": "Newsletter", "description": "Our monthly news.", "requires_consent": True},
    )


@pytest.fixture
def template(db):
    return email_template_create(
        user=SYSTEM,
        data={
            "name": "Consented news",
            "subject": "News for {{ recipient.first_name }}",
            "body_html": "<p>Hello {{ recipient.first_name }}.</p>"
            '<p><a href="{{ campaign.preferences_url }}">Your choices</a></p>',
        },
    )


def _grant(person, purpose, **extra):
    field = "lead" if person._meta.model_name == "lead" else "contact"
    return consent_services.consent_grant(user=SYSTEM, data={field: person, "purpose": purpose, **extra})


def _audience(stages, template, purpose):
    """Ann (contact) and Cy (lead) consented; Bob never did; Dee withdrew; Eve consented but turned
    email off; Fay consented on another purpose only."""
    campaign = services.campaign_create(
        user=SYSTEM,
        data={"name": "Consented news", "email_template": template, "consent_purpose": purpose},
    )
    ann = ContactFactory(first_name="Ann", email="ann@ok.example")
    bob = ContactFactory(first_name="Bob", email="bob@no.example")
    cy = LeadFactory(contact_name="Cy Lead", email="cy@ok.example", stage=stages["New"])
    dee = ContactFactory(first_name="Dee", email="dee@no.example")
    eve = ContactFactory(first_name="Eve", email="eve@no.example")
    fay = LeadFactory(contact_name="Fay Lead", email="fay@no.example", stage=stages["New"])
    for person in (ann, cy, dee, eve):
        _grant(person, purpose, source="web_form", evidence="Signup form v3")
    consent_services.consent_withdraw(consent=dee.consents.get(), user=SYSTEM)
    consent_services.channel_preference_set(user=SYSTEM, person_record=eve, channel="email", allowed=False)
    events = consent_services.consent_purpose_create(
        user=SYSTEM, data={"name": "Event invitations", "requires_consent": True}
    )
    _grant(fay, events)
    services.campaign_members_add(
        campaign=campaign, user=SYSTEM, lead_ids=[cy.pk, fay.pk], contact_ids=[ann.pk, bob.pk, dee.pk, eve.pk]
    )
    return campaign


EXCLUDED = {
    "no_email": 0,
    "opted_out": 0,
    "unsubscribed": 0,
    "email_off": 1,
    "no_consent": 3,
    "duplicate": 0,
}


def _path(url: str) -> str:
    return "/" + url.split("://", 1)[1].split("/", 1)[1]


def _parts(message) -> dict[str, str]:
    return {
        part.get_content_type(): part.get_payload(decode=True).decode()
        for part in message.walk()
        if not part.is_multipart()
    }


@pytest.mark.django_db
def test_unconsented_recipients_and_those_who_turned_email_off_receive_nothing(
    api_as, stages, template, newsletter_purpose, smtp_server, django_capture_on_commit_callbacks
):
    campaign = _audience(stages, template, newsletter_purpose)
    preview = api_as("crm_admin").get(API + f"campaigns/{campaign.pk}/send-preview/")
    assert preview.status_code == 200
    assert preview.json()["recipients"] == 2 and preview.json()["excluded"] == EXCLUDED

    with django_capture_on_commit_callbacks(execute=True):
        result = campaign_send(campaign=campaign, user=SYSTEM)
    assert result == {"queued": 2, "excluded": EXCLUDED}
    received = smtp_server.wait_for(2)
    time.sleep(0.3)  # nothing else arrives
    assert sorted(m["To"] for m in smtp_server.received()) == ["ann@ok.example", "cy@ok.example"]
    log = {
        (m.lead or m.contact).email: (m.send_status, m.excluded_reason)
        for m in campaign.members.select_related("lead", "contact")
    }
    assert log["bob@no.example"] == ("excluded", "no_consent")
    assert log["dee@no.example"] == ("excluded", "no_consent")  # withdrawn
    assert log["fay@no.example"] == ("excluded", "no_consent")  # another purpose's consent
    assert log["eve@no.example"] == ("excluded", "email_off")
    assert not OutgoingEmail.objects.filter(to__in=["bob@no.example", "dee@no.example"]).exists()
    # Every message carries its person's preference link: the footer and the template's placeholder.
    for message in received:
        parts = _parts(message)
        found = re.findall(r"https?://[^\s\"<>]+/m/p/[^\s\"<>]+/", parts["text/plain"])
        assert found, parts["text/plain"]
        assert found[0] in parts["text/html"]
        assert parts["text/html"].count("/m/p/") == 2  # the placeholder and the footer
        assert "Manage your preferences" in parts["text/html"]


@pytest.mark.django_db
def test_the_preference_link_flips_preferences_and_consents_and_the_history_keeps_them(
    stages, template, newsletter_purpose, smtp_server, django_capture_on_commit_callbacks
):
    campaign = _audience(stages, template, newsletter_purpose)
    with django_capture_on_commit_callbacks(execute=True):
        campaign_send(campaign=campaign, user=SYSTEM)
    ann_message = next(m for m in smtp_server.wait_for(2) if m["To"] == "ann@ok.example")
    url = re.search(r"https?://[^\s]+/m/p/[^\s]+/", _parts(ann_message)["text/plain"]).group(0)
    ann = Contact.objects.get(email="ann@ok.example")
    client = Client()  # no login

    page = client.get(_path(url))
    assert page.status_code == 200
    html = page.content.decode()
    assert "ann@ok.example" in html and "Newsletter" in html
    assert f'name="purpose_{newsletter_purpose.pk}" value="1" checked' in html
    assert 'name="channel_email" value="1" checked' in html

    # Ann turns email off, allows SMS, and withdraws her newsletter consent (an unticked box is absent).
    saved = client.post(_path(url), {"channel_phone": "1", "channel_sms": "1", "channel_post": "1"})
    assert saved.status_code == 200 and "saved" in saved.content.decode()
    email = ChannelPreference.objects.get(contact=ann, channel="email")
    assert email.allowed is False and email.source == "preference_centre"
    assert email.history.count() == 1 and email.history.first().allowed is False
    consent = ann.consents.get()
    assert consent.withdrawn_at is not None
    assert [v.withdrawn_at is None for v in consent.history.order_by("history_date")] == [True, False]
    ann.refresh_from_db()
    assert ann.email_opt_out is True  # every sender respects it now
    assert ann.history.first().email_opt_out is True

    # A new campaign leaves her out.
    again = services.campaign_create(
        user=SYSTEM,
        data={"name": "More news", "email_template": template, "consent_purpose": newsletter_purpose},
    )
    services.campaign_members_add(campaign=again, user=SYSTEM, contact_ids=[ann.pk])
    assert campaign_send(campaign=again, user=SYSTEM)["queued"] == 0

    # She changes her mind: email on and consent given again, as a new record (the old one is evidence).
    client.post(
        _path(url), {"channel_email": "1", "channel_sms": "1", f"purpose_{newsletter_purpose.pk}": "1"}
    )
    email.refresh_from_db()
    assert email.allowed is True and email.history.count() == 2
    assert ann.consents.count() == 2
    renewed = ann.consents.get(withdrawn_at__isnull=True)
    assert renewed.source == "preference_centre" and renewed.lawful_basis == "consent"
    assert "ann@ok.example" in renewed.evidence
    ann.refresh_from_db()
    assert ann.email_opt_out is False


@pytest.mark.django_db
def test_a_tampered_expired_or_outdated_preference_link_changes_nothing(stages, settings):
    ann = ContactFactory(first_name="Ann", email="ann@ok.example")
    url = links.preferences_url(ann)
    path = _path(url)
    client = Client()
    tampered = path[:-5] + ("A" if path[-5] != "A" else "B") + path[-4:]
    for response in (client.get(tampered), client.post(tampered, {"channel_sms": "1"})):
        assert response.status_code == 400
        assert "not valid" in response.content.decode()
    forged = signing.dumps({"m": ann.pk, "k": "contact", "e": "ann@ok.example"}, salt="another purpose")
    assert client.post(reverse("consent-preferences", args=[forged])).status_code == 400
    wrong_kind = signing.dumps(
        {"m": ann.pk, "k": "account", "e": "ann@ok.example"}, salt=links.PREFERENCES_SALT
    )
    assert client.get(reverse("consent-preferences", args=[wrong_kind])).status_code == 400

    settings.CRM_CAMPAIGN_LINK_MAX_AGE = 60
    with pytest.MonkeyPatch.context() as patch:
        now = time.time()
        patch.setattr(time, "time", lambda: now + 120)
        expired = client.post(path, {"channel_sms": "1"})
    assert expired.status_code == 410 and "expired" in expired.content.decode()

    # The address changed since the link was sent: the link no longer opens the page.
    Contact.objects.filter(pk=ann.pk).update(email="ann@new.example")
    moved = client.post(path, {"channel_sms": "1"})
    assert moved.status_code == 410 and "no longer valid" in moved.content.decode()
    assert not ChannelPreference.objects.exists() and not ConsentRecord.objects.exists()
    ann.refresh_from_db()
    assert ann.email_opt_out is False


@pytest.mark.django_db
def test_the_consent_api_creates_withdraws_and_answers_400_per_field(api_as, people, newsletter_purpose):
    api = api_as("owner")
    lead = people.records["owner"].lead
    contact = people.records["owner"].contact
    created = api.post(
        API + "consents/",
        {
            "purpose_id": newsletter_purpose.pk,
            "lead_id": lead.pk,
            "source": "web_form",
            "evidence": "Form v3",
        },
        format="json",
    )
    assert created.status_code == 201, created.data
    body = created.json()
    assert body["in_force"] is True and body["lawful_basis"] == "consent"
    assert body["recorded_by_id"] == people.users["owner"].pk and body["purpose_name"] == "Newsletter"
    consent = ConsentRecord.objects.get(pk=body["id"])
    assert consent.history.get().history_user == people.users["owner"]

    legitimate = consent_services.consent_purpose_create(
        user=SYSTEM, data={"name": "Service news", "requires_consent": False}
    )
    bad = {
        "both people": (
            {"purpose_id": newsletter_purpose.pk, "lead_id": lead.pk, "contact_id": contact.pk},
            "lead_id",
        ),
        "nobody": ({"purpose_id": newsletter_purpose.pk}, "lead_id"),
        "no purpose": ({"lead_id": lead.pk}, "purpose_id"),
        "unknown purpose": ({"purpose_id": 999999, "lead_id": lead.pk}, "purpose_id"),
        "in force already": ({"purpose_id": newsletter_purpose.pk, "lead_id": lead.pk}, "purpose_id"),
        "consent purpose on another basis": (
            {"purpose_id": newsletter_purpose.pk, "contact_id": contact.pk, "lawful_basis": "contract"},
            "lawful_basis",
        ),
        "unknown basis": (
            {"purpose_id": legitimate.pk, "contact_id": contact.pk, "lawful_basis": "whim"},
            "lawful_basis",
        ),
        "another team's lead": (
            {"purpose_id": newsletter_purpose.pk, "lead_id": people.records["outsider"].lead.pk},
            "lead_id",
        ),
        "withdrawn on creation": (
            {"purpose_id": legitimate.pk, "contact_id": contact.pk, "withdrawn_at": "2026-01-01T00:00:00Z"},
            "withdrawn_at",
        ),
    }
    for case, (payload, field) in bad.items():
        response = api.post(API + "consents/", payload, format="json")
        assert response.status_code == 400, (case, response.status_code, response.data)
        assert field in response.data, (case, response.data)
    assert ConsentRecord.objects.count() == 1

    # Legitimate interests on a purpose that does not require consent: fine.
    other = api.post(
        API + "consents/",
        {"purpose_id": legitimate.pk, "contact_id": contact.pk, "lawful_basis": "legitimate_interests"},
        format="json",
    )
    assert other.status_code == 201, other.data

    early = (consent.granted_at - datetime.timedelta(days=1)).isoformat()
    response = api.patch(API + f"consents/{consent.pk}/", {"withdrawn_at": early}, format="json")
    assert response.status_code == 400 and "withdrawn_at" in response.data
    response = api.patch(
        API + f"consents/{consent.pk}/", {"lead_id": people.records["teammate"].lead.pk}, format="json"
    )
    assert response.status_code == 400 and "lead_id" in response.data

    withdrawn = api.post(
        API + f"consents/{consent.pk}/withdraw/", {"evidence": "Asked by phone"}, format="json"
    )
    assert withdrawn.status_code == 200 and withdrawn.json()["in_force"] is False
    assert "Asked by phone" in withdrawn.json()["evidence"]
    response = api.patch(API + f"consents/{consent.pk}/", {"withdrawn_at": None}, format="json")
    assert response.status_code == 400 and "withdrawn_at" in response.data
    assert [v.withdrawn_at is None for v in consent.history.order_by("history_date")] == [True, False]

    # Filters, and bad filter values.
    listed = api.get(API + f"consents/?lead={lead.pk}&in_force=false").json()
    assert [row["id"] for row in listed["results"]] == [consent.pk]
    assert api.get(API + "consents/?lead=abc").status_code == 400
    # A rep may not delete evidence; a CRM Admin may.
    assert api.delete(API + f"consents/{consent.pk}/").status_code == 403
    assert api_as("crm_admin").delete(API + f"consents/{consent.pk}/").status_code == 204


@pytest.mark.django_db
def test_consents_are_seen_only_with_their_record_and_list_at_a_fixed_cost(
    api_as, people, newsletter_purpose, django_assert_max_num_queries
):
    mine = _grant(people.records["owner"].lead, newsletter_purpose)
    theirs = _grant(people.records["outsider"].lead, newsletter_purpose)
    shared = _grant(people.records["outsider"].contact, newsletter_purpose)  # contacts are shared data
    ids = {row["id"] for row in api_as("owner").get(API + "consents/").json()["results"]}
    assert ids == {mine.pk, shared.pk}
    assert api_as("owner").get(API + f"consents/{theirs.pk}/").status_code == 404
    all_ids = {row["id"] for row in api_as("crm_admin").get(API + "consents/").json()["results"]}
    assert {mine.pk, theirs.pk, shared.pk} <= all_ids

    def cost() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert api_as("manager").get(API + "consents/?page_size=50").status_code == 200
        return len(queries)

    cost()  # the user's permissions are cached after the first request
    few = cost()
    for n in range(6):
        _grant(
            LeadFactory(name=f"More {n}", owner=people.users["owner"], stage=people.stages["New"]),
            newsletter_purpose,
        )
    assert cost() == few


@pytest.mark.django_db
def test_the_preferences_endpoints_of_a_lead_and_a_contact(api_as, people):
    api = api_as("owner")
    lead = people.records["owner"].lead
    url = API + f"leads/{lead.pk}/preferences/"
    response = api.get(url)
    assert response.status_code == 200
    assert response.json()["email"] == {"allowed": True, "stated": False, "updated_at": None}

    response = api.patch(url, {"email": False, "sms": True, "source": "phone"}, format="json")
    assert response.status_code == 200, response.data
    assert response.json()["email"]["allowed"] is False and response.json()["email"]["stated"] is True
    preference = ChannelPreference.objects.get(lead=lead, channel="email")
    assert preference.source == "phone" and preference.recorded_by == people.users["owner"]
    assert preference.history.get().history_user == people.users["owner"]

    assert api.patch(url, {}, format="json").status_code == 400
    response = api.patch(url, {"email": "perhaps"}, format="json")
    assert response.status_code == 400 and "email" in response.data
    response = api.patch(url, {"sms": False, "source": "pigeon"}, format="json")
    assert response.status_code == 400 and "source" in response.data
    assert ChannelPreference.objects.get(lead=lead, channel="sms").allowed is True  # nothing changed

    outsiders_lead = people.records["outsider"].lead
    assert api.get(API + f"leads/{outsiders_lead.pk}/preferences/").status_code == 404

    contact = people.records["owner"].contact
    response = api.patch(API + f"contacts/{contact.pk}/preferences/", {"phone": False}, format="json")
    assert response.status_code == 200 and response.json()["phone"]["allowed"] is False
    # Another team's contact is read by all, changed by its team only.
    theirs = people.records["outsider"].contact
    assert api.get(API + f"contacts/{theirs.pk}/preferences/").status_code == 200
    assert (
        api.patch(API + f"contacts/{theirs.pk}/preferences/", {"phone": False}, format="json").status_code
        == 403
    )


@pytest.mark.django_db
def test_the_database_holds_the_consent_invariants(newsletter_purpose, stages):
    contact = ContactFactory()
    lead = LeadFactory(stage=stages["New"])
    now = timezone.now()
    for bad in (
        {"purpose": newsletter_purpose, "lead": lead, "contact": contact},
        {"purpose": newsletter_purpose},
        {
            "purpose": newsletter_purpose,
            "contact": contact,
            "granted_at": now,
            "withdrawn_at": now - datetime.timedelta(1),
        },
    ):
        with pytest.raises(IntegrityError), transaction.atomic():
            ConsentRecord.objects.create(**bad)
    ConsentRecord.objects.create(purpose=newsletter_purpose, contact=contact)
    with pytest.raises(IntegrityError), transaction.atomic():
        ConsentRecord.objects.create(purpose=newsletter_purpose, contact=contact)  # two in force
    ChannelPreference.objects.create(contact=contact, channel="email", allowed=False)
    with pytest.raises(IntegrityError), transaction.atomic():
        ChannelPreference.objects.create(contact=contact, channel="email", allowed=True)
    with pytest.raises(IntegrityError), transaction.atomic():
        ChannelPreference.objects.create(lead=lead, contact=contact, channel="sms")


@pytest.mark.django_db
def test_the_admin_shows_consents_on_the_record_pages_at_a_fixed_cost(admin_as, people, newsletter_purpose):
    client = admin_as("crm_admin")
    lead = people.records["owner"].lead
    contact = people.records["owner"].contact
    purposes = [newsletter_purpose] + [
        consent_services.consent_purpose_create(user=SYSTEM, data={"name": f"Purpose {n}"}) for n in range(5)
    ]

    def cost(url: str) -> int:
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url)
        assert response.status_code == 200
        return len(queries)

    pages = [
        f"/admin/crm/lead/{lead.pk}/change/",
        f"/admin/crm/contact/{contact.pk}/change/",
        "/admin/crm/consentrecord/",
        "/admin/crm/channelpreference/",
    ]
    _grant(lead, purposes[0])
    _grant(contact, purposes[0])
    consent_services.channel_preference_set(user=SYSTEM, person_record=lead, channel="email", allowed=False)
    [cost(url) for url in pages]  # the user's permissions are cached after the first request
    before = [cost(url) for url in pages]
    for purpose in purposes[1:]:
        _grant(lead, purpose, evidence="Signed form")
        _grant(contact, purpose)
    for channel in ("phone", "sms", "post"):
        consent_services.channel_preference_set(
            user=SYSTEM, person_record=lead, channel=channel, allowed=True
        )
        consent_services.channel_preference_set(
            user=SYSTEM, person_record=contact, channel=channel, allowed=False
        )
    assert [cost(url) for url in pages] == before
    page = client.get(f"/admin/crm/lead/{lead.pk}/change/").content.decode().lower()
    assert "purpose 4" in page and "signed form" in page and "channel preferences" in page

    # The consents' list: a rep sees the consents of records they see, and withdraws through the action.
    rep = admin_as("owner")
    listing = rep.get("/admin/crm/consentrecord/").content.decode()
    assert lead.name in listing
    outsider_consent = _grant(people.records["outsider"].lead, newsletter_purpose)
    assert rep.get(f"/admin/crm/consentrecord/{outsider_consent.pk}/change/").status_code == 302
    chosen = lead.consents.filter(purpose=purposes[1]).get()
    response = rep.post(
        "/admin/crm/consentrecord/",
        {"action": "withdraw_selected", "_selected_action": [chosen.pk]},
        follow=True,
    )
    assert "1 consent(s) withdrawn" in response.content.decode()
    chosen.refresh_from_db()
    assert chosen.withdrawn_at is not None


@pytest.mark.django_db
def test_the_admin_records_a_consent_through_the_service(admin_as, people, newsletter_purpose):
    client = admin_as("owner")
    contact = people.records["owner"].contact
    response = client.post(
        "/admin/crm/consentrecord/add/",
        {
            "purpose": newsletter_purpose.pk,
            "contact": contact.pk,
            "lawful_basis": "contract",
            "source": "phone",
            "granted_at_0": "2026-11-02",
            "granted_at_1": "10:00:00",
            "evidence": "Call note",
        },
        follow=True,
    )
    assert "requires the person" in response.content.decode()  # the service's refusal, on the page
    assert not ConsentRecord.objects.exists()
    response = client.post(
        "/admin/crm/consentrecord/add/",
        {
            "purpose": newsletter_purpose.pk,
            "contact": contact.pk,
            "lawful_basis": "consent",
            "source": "phone",
            "granted_at_0": "2026-11-02",
            "granted_at_1": "10:00:00",
            "evidence": "Call note",
        },
    )
    assert response.status_code == 302
    consent = ConsentRecord.objects.get()
    assert consent.recorded_by == people.users["owner"] and consent.contact == contact
    assert consent.history.get().history_user == people.users["owner"]
    assert ConsentPurpose.objects.filter(pk=newsletter_purpose.pk).exists()
