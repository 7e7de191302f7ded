"""The signed, expiring public link a customer opens to read a quote and accept or decline it."""

from django.conf import settings
from django.core import signing
from django.urls import reverse

from sales.models import Quote

SALT = "sales.quote.public-link"


class LinkRefused(Exception):
    """The link is not one we signed (tampered), or too old (expired)."""

    def __init__(self, reason: str, expired: bool = False):
        super().__init__(reason)
        self.reason, self.expired = reason, expired


def quote_token(quote: Quote) -> str:
    return signing.dumps({"q": quote.pk, "v": quote.version}, salt=SALT, compress=True)


def quote_public_url(quote: Quote) -> str:
    return settings.CRM_BASE_URL.rstrip("/") + reverse("quote-public", args=[quote_token(quote)])


def quote_from_token(token: str) -> Quote:
    try:
        payload = signing.loads(token, salt=SALT, max_age=settings.CRM_QUOTE_LINK_MAX_AGE)
    except signing.SignatureExpired as exc:
        raise LinkRefused("This link has expired. Ask us for a new one.", expired=True) from exc
    except signing.BadSignature as exc:
        raise LinkRefused("This link is not valid. Check that it was copied whole.") from exc
    if not isinstance(payload, dict) or not isinstance(payload.get("q"), int):
        raise LinkRefused("This link is not valid. Check that it was copied whole.")
    quote = (
        Quote.objects.select_related("opportunity__account", "opportunity__contact")
        .filter(pk=payload["q"], version=payload.get("v"))
        .first()
    )
    if quote is None:
        raise LinkRefused("This quote no longer exists.")
    return quote
