"""The customer's page of a quote, opened from the signed link in its email: read it, accept or decline.

Outside the admin and the API (no login): the signed token is the only key. CSRF-protected (Django's
middleware: the form carries the token), throttled per address, and every refusal is a page that says
why (a tampered link 400, an expired one 410, an answered quote 409, too many requests 429).
"""

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_http_methods

from crm.actors import SYSTEM
from sales.models import QuoteStatus
from sales.quote_links import LinkRefused, quote_from_token
from sales.quote_pdf import quote_context
from sales.services_quotes import quote_answer


def _throttled(request) -> bool:
    """More than CRM_QUOTE_PUBLIC_RATE requests this minute from this address."""
    key = f"sales:quote-public:{request.META.get('REMOTE_ADDR', '')}"
    cache.add(key, 0, timeout=60)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=60)
        count = 1
    return count > settings.CRM_QUOTE_PUBLIC_RATE


def _refusal(request, message: str, status: int):
    return TemplateResponse(
        request, "sales/quote_public_refused.html", {"message": message, "title": "Quote"}, status=status
    )


@never_cache
@csrf_protect
@require_http_methods(["GET", "POST"])
def quote_public(request, token: str):
    if _throttled(request):
        response = _refusal(request, "Too many requests from your address: wait a minute and try again.", 429)
        response["Retry-After"] = "60"
        return response
    try:
        quote = quote_from_token(token)
    except LinkRefused as refused:
        return _refusal(request, refused.reason, 410 if refused.expired else 400)
    error = ""
    if request.method == "POST":
        decision = request.POST.get("decision")
        if decision not in ("accept", "decline"):
            error = "Choose to accept or to decline the quote."
        else:
            try:
                quote_answer(
                    quote=quote,
                    user=SYSTEM,
                    accept=decision == "accept",
                    name=request.POST.get("name", "")[:200],
                    address=request.META.get("REMOTE_ADDR") or None,
                )
            except ValidationError as exc:
                if not hasattr(exc, "error_dict"):  # the quote's state: answered, expired, replaced
                    return _refusal(request, " ".join(exc.messages), 409)
                error = " ".join(exc.messages)
            else:
                return HttpResponseRedirect(request.path)
    context = {
        **quote_context(quote),
        "title": f"Quote {quote.number}",
        "answerable": quote.status == QuoteStatus.SENT and not quote.is_frozen,
        "error": error,
        "name": request.POST.get("name", "") if request.method == "POST" else "",
    }
    return TemplateResponse(request, "sales/quote_public.html", context, status=400 if error else 200)
