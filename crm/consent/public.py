"""The preference centre: a public page (no login) reached from the signed link in a campaign's
email, where a person sees and changes their channel preferences and consents by purpose. A
tampered link (400), or one that no longer works (410: expired, or the address it was sent to is not
the person's any more), is the same page as the unsubscribe link's (``links.refused_page``): what is
wrong, what to do instead, and nothing changes."""

from django.db.models import Q
from django.template.response import TemplateResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from crm.actors import SYSTEM
from crm.consent import selectors, services
from crm.marketing import links
from crm.models import Channel, ConsentPurpose, Contact, Lead

TITLE = "Your preferences"
PREFERENCES_ELSE = (
    "Every email we send you has a link to your preferences; to stop our marketing email at once, use its "
    "unsubscribe link."
)


def person_from_link(token: str):
    """The lead or contact a preference link names, if its address is still the one it was sent to."""
    payload = links.link_payload(token, links.PREFERENCES_SALT)
    model = {"lead": Lead, "contact": Contact}.get(payload.get("k"))
    if model is None:
        raise links.LinkRefused(links.INVALID)
    record = model.objects.filter(pk=payload["m"]).first()
    if record is None or (record.email or "").strip().lower() != payload.get("e"):
        # Ours, but for an address that is not the person's any more (or a person gone): Gone, as an
        # expired link is.
        raise links.LinkRefused(
            "This link is no longer valid: it was sent to an address we no longer have for you. Use the "
            "link in a more recent email from us.",
            expired=True,
        )
    return record


def _offered(record) -> list[ConsentPurpose]:
    """The active purposes, and any other the person has a consent in force for (to withdraw it)."""
    field = "lead" if isinstance(record, Lead) else "contact"
    return list(
        ConsentPurpose.objects.filter(
            Q(is_active=True) | Q(**{f"records__{field}": record, "records__withdrawn_at__isnull": True})
        )
        .distinct()
        .order_by("name", "id")
    )


def _page(request, record, *, saved: bool, status: int = 200):
    channels = selectors.person_channels(record)
    given = {c.purpose_id: c for c in selectors.person_consents(record) if c.withdrawn_at is None}
    context = {
        "title": TITLE,
        "email": record.email,
        "saved": saved,
        "channels": [
            {"value": value, "label": label, "allowed": channels[value]["allowed"]}
            for value, label in Channel.choices
        ],
        "purposes": [
            {
                "id": purpose.pk,
                "name": purpose.name,
                "description": purpose.description,
                "given": purpose.pk in given,
                "since": given[purpose.pk].granted_at if purpose.pk in given else None,
            }
            for purpose in _offered(record)
        ],
    }
    return TemplateResponse(request, "crm/consent/preferences.html", context, status=status)


@never_cache
@require_http_methods(["GET", "POST"])
def consent_preferences(request, token: str):
    try:
        record = person_from_link(token)
    except links.LinkRefused as refused:
        return links.refused_page(request, refused, title=TITLE, what_else=PREFERENCES_ELSE)
    if request.method == "GET":
        return _page(request, record, saved=False)
    services.preference_centre_save(
        person_record=record,
        user=SYSTEM,
        channels={value: request.POST.get(f"channel_{value}") == "1" for value in Channel.values},
        purposes={purpose: request.POST.get(f"purpose_{purpose.pk}") == "1" for purpose in _offered(record)},
        evidence=f"Preference centre, through the link sent to {record.email}.",
    )
    return _page(request, record, saved=True)
