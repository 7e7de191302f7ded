"""The signed, expiring links in a campaign's email: unsubscribe (one click), open and click tracking,
and the person's preference centre."""

from django.conf import settings
from django.core import signing
from django.urls import reverse

UNSUBSCRIBE_SALT = "crm.campaign.unsubscribe"
OPEN_SALT = "crm.campaign.open"
CLICK_SALT = "crm.campaign.click"
PREFERENCES_SALT = "crm.consent.preferences"


INVALID = "This link is not valid: check that it was copied whole, from the email we sent."
EXPIRED = "This link has expired: it works for a limited time. Use the link in a more recent email from us."


class LinkRefused(Exception):
    """The link is not one we signed (tampered: 400), or was ours but no longer works (``expired``: too
    old, or its person's address changed or the person is gone: 410 Gone). Every public link of a
    campaign's email (unsubscribe, click, preference centre) answers it with the same page
    (``refused_page``) and changes nothing, as the quote and survey links do."""

    def __init__(self, reason: str, expired: bool = False):
        super().__init__(reason)
        self.reason, self.expired = reason, expired

    @property
    def status(self) -> int:
        return 410 if self.expired else 400


def refused_page(request, refused: LinkRefused, *, title: str, what_else: str = ""):
    """The page a refused link shows: what is wrong, that nothing changed, and what to do instead."""
    from django.template.response import TemplateResponse

    return TemplateResponse(
        request,
        "crm/marketing/link_refused.html",
        {"title": title, "message": refused.reason, "what_else": what_else},
        status=refused.status,
    )


def _absolute(path: str) -> str:
    return settings.CRM_BASE_URL.rstrip("/") + path


def unsubscribe_url(member_id: int, email: str) -> str:
    token = signing.dumps({"m": member_id, "e": email.lower()}, salt=UNSUBSCRIBE_SALT, compress=True)
    return _absolute(reverse("campaign-unsubscribe", args=[token]))


def open_url(member_id: int) -> str:
    return _absolute(reverse("campaign-open", args=[signing.dumps({"m": member_id}, salt=OPEN_SALT)]))


def click_url(member_id: int, target: str) -> str:
    token = signing.dumps({"m": member_id, "u": target}, salt=CLICK_SALT, compress=True)
    return _absolute(reverse("campaign-click", args=[token]))


def preferences_url(person) -> str:
    """The preference centre of ``person`` (a lead or a contact), for the address it has now: the
    link stops working once the address changes (it was sent to the old one)."""
    kind = "lead" if person._meta.model_name == "lead" else "contact"
    payload = {"m": person.pk, "k": kind, "e": (person.email or "").strip().lower()}
    token = signing.dumps(payload, salt=PREFERENCES_SALT, compress=True)
    return _absolute(reverse("consent-preferences", args=[token]))


def link_payload(token: str, salt: str) -> dict:
    try:
        payload = signing.loads(token, salt=salt, max_age=settings.CRM_CAMPAIGN_LINK_MAX_AGE)
    except signing.SignatureExpired as exc:
        raise LinkRefused(EXPIRED, expired=True) from exc
    except signing.BadSignature as exc:
        raise LinkRefused(INVALID) from exc
    if not isinstance(payload, dict) or not isinstance(payload.get("m"), int):
        raise LinkRefused(INVALID)
    return payload
