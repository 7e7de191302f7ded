"""The public pages of a campaign's email, reached from its signed links without logging in: the
unsubscribe page (GET shows it, POST records it; a mail client's one-click POST too, RFC 8058), the
open-tracking image and the click redirect. A tampered or expired link is a page that says so (400,
410) and changes nothing."""

import base64
import contextlib

from django.http import HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods

from crm.marketing import links, sending

PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


def _refused(request, refused: links.LinkRefused):
    return TemplateResponse(
        request,
        "crm/marketing/link_refused.html",
        {"message": refused.reason, "title": "Unsubscribe"},
        status=410 if refused.expired else 400,
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
        return _refused(request, refused)
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
        return _refused(request, refused)
    return HttpResponseRedirect(target)
