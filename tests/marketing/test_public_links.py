"""Issue 19: the public links of a campaign's email (unsubscribe, click, preference centre) refuse a bad
link the same way, as the product's rule for bad input says (a 4xx with a clear message): a tampered
link is a 400 page, one that was ours but no longer works (expired, or sent to an address the person
no longer has) a 410 page; each says what is wrong, that nothing changed and what to do instead, and
nothing changes."""

import time

import pytest
from django.conf import settings as django_settings
from django.core import signing
from django.test import Client
from django.urls import reverse

from crm.actors import SYSTEM
from crm.marketing import links, services
from crm.messaging.services import email_template_create
from crm.models import CampaignMember, ChannelPreference, ConsentRecord, Contact, EmailUnsubscribe
from tests.factories import ContactFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def member(db):
    template = email_template_create(
        user=SYSTEM, data={"name": "News", "subject": "News", "body_html": "<p>Hi</p>"}
    )
    campaign = services.campaign_create(user=SYSTEM, data={"name": "News", "email_template": template})
    bob = ContactFactory(first_name="Bob", email="bob@ok.example")
    return CampaignMember.objects.create(campaign=campaign, contact=bob)


def _tokens(member):
    """Each link kind's view name, a token as we sign it, and the salt it is signed with."""
    bob = member.contact
    return {
        "campaign-unsubscribe": ({"m": member.pk, "e": "bob@ok.example"}, links.UNSUBSCRIBE_SALT),
        "campaign-click": ({"m": member.pk, "u": "https://example.com/offer"}, links.CLICK_SALT),
        "consent-preferences": ({"m": bob.pk, "k": "contact", "e": "bob@ok.example"}, links.PREFERENCES_SALT),
    }


def _nothing_changed(member):
    member.refresh_from_db()
    assert member.status == "planned" and member.clicked_at is None
    assert not EmailUnsubscribe.objects.exists()
    assert not ChannelPreference.objects.exists() and not ConsentRecord.objects.exists()
    assert Contact.objects.get(pk=member.contact_id).email_opt_out is False


def _page(response, status, *words):
    body = response.content.decode()
    assert response.status_code == status, body
    assert "Nothing was changed." in body
    for word in words:
        assert word in body
    return body


@pytest.mark.parametrize("view", ["campaign-unsubscribe", "campaign-click", "consent-preferences"])
@pytest.mark.parametrize("method", ["get", "post"])
def test_a_tampered_link_is_a_400_page_and_changes_nothing(member, view, method):
    payload, salt = _tokens(member)[view]
    token = signing.dumps(payload, salt=salt, compress=True)
    tampered = token[:-5] + ("A" if token[-5] != "A" else "B") + token[-4:]
    forged = signing.dumps(payload, salt="another purpose", compress=True)
    client = Client()

    for bad in (tampered, forged, "nonsense"):
        response = getattr(client, method)(reverse(view, args=[bad]), {"channel_sms": "1"})
        if view == "campaign-click" and method == "post":
            assert response.status_code == 405  # a click is a GET
            continue
        _page(response, 400, "not valid")

    _nothing_changed(member)


@pytest.mark.parametrize("view", ["campaign-unsubscribe", "campaign-click", "consent-preferences"])
def test_an_expired_link_is_a_410_page_that_says_what_to_do_and_changes_nothing(member, view, settings):
    payload, salt = _tokens(member)[view]
    token = signing.dumps(payload, salt=salt, compress=True)
    settings.CRM_CAMPAIGN_LINK_MAX_AGE = 60
    client = Client()
    now = time.time()

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(time, "time", lambda: now + 120)
        get = client.get(reverse(view, args=[token]))
        post = client.post(reverse(view, args=[token]), {"channel_email": "1", "channel_sms": "1"})

    body = _page(get, 410, "expired", "more recent email")
    if view == "campaign-unsubscribe":
        assert "unsubscribe link" in body and "<form" not in body
    if view != "campaign-click":
        _page(post, 410, "expired")
    _nothing_changed(member)


def test_the_same_link_still_works_before_it_expires(member):
    """The refusals above are about the link, not the page: the fresh link opens it."""
    assert django_settings.CRM_CAMPAIGN_LINK_MAX_AGE >= 60
    client = Client()
    for view, (payload, salt) in _tokens(member).items():
        response = client.get(reverse(view, args=[signing.dumps(payload, salt=salt, compress=True)]))
        assert response.status_code in {"campaign-click": {302}}.get(view, {200}), view


def test_a_preference_link_of_a_person_gone_or_moved_is_a_410_page(member):
    payload, salt = _tokens(member)["consent-preferences"]
    path = reverse("consent-preferences", args=[signing.dumps(payload, salt=salt, compress=True)])
    client = Client()

    Contact.objects.filter(pk=member.contact_id).update(email="bob@elsewhere.example")
    _page(client.get(path), 410, "no longer valid", "unsubscribe link")

    Contact.objects.filter(pk=member.contact_id).update(email="bob@ok.example")
    gone = signing.dumps({**payload, "m": 999999}, salt=salt, compress=True)
    _page(
        client.post(reverse("consent-preferences", args=[gone]), {"channel_sms": "1"}), 410, "no longer valid"
    )
    _nothing_changed(member)
