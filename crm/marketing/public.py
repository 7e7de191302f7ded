"""The public pages of a campaign's email, reached from its signed links without logging in: the
unsubscribe page (GET shows it, POST records it; a mail client's one-click POST too, RFC 8058), the
open-tracking image and the click redirect. A tampered link (400) or one that no longer works (410:
expired) is a page that says so and what to do instead (``links.refused_page``), and changes nothing."""

import base64
import contextlib

from django.http import HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods

from crm.marketing import links, sending

PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


UNSUBSCRIBE_ELSE = (
    "To stop our marketing email, use the unsubscribe link of a more recent email from us, or reply to "
    "one and ask us to."
)


@never_cache
@csrf_exempt  # the signed token is the key, and a mail client's one-click POST carries no CSRF token
@require_http_methods(["GET", "POST"])
def campaign_unsubscribe(request, token: str):
    try:
        if request.method == "GET":
            _member, payload = sending.member_from_link(token, links.UNSUBSCRIBE_SALT)
            return TemplateResponse(
                request,
                "crm/marketing/unsubscribe.html",
                {"title": "Unsubscribe", "email": payload.get("e", ""), "done": False},
            )
        one_click = request.POST.get("List-Unsubscribe") == "One-Click"
        address = sending.email_unsubscribe(token=token, one_click=one_click)
    except links.LinkRefused as refused:
        return links.refused_page(request, refused, title="Unsubscribe", what_else=UNSUBSCRIBE_ELSE)
    return TemplateResponse(
        request, "crm/marketing/unsubscribe.html", {"title": "Unsubscribed", "email": address, "done": True}
    )


@never_cache
@require_GET
def campaign_open(request, token: str):
    with contextlib.suppress(links.LinkRefused):  # an image: answered whatever, recording nothing
        sending.email_opened(token=token)
    return HttpResponse(PIXEL, content_type="image/gif")


@never_cache
@require_GET
def campaign_click(request, token: str):
    try:
        target = sending.email_clicked(token=token)
    except links.LinkRefused as refused:
        return links.refused_page(request, refused, title="This link does not work")
    return HttpResponseRedirect(target)
