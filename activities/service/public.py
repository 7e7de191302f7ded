"""The doors of customer service outside the admin and the API: the public support form (no login:
throttled per address, CSRF-protected, with a honeypot field), the inbound-email endpoint a mail
forwarder posts raw messages to (authenticated by a shared secret), the published knowledge-base
articles that replies link to, and the satisfaction survey's signed link."""

import hmac
import json

from django import forms
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_http_methods, require_POST

from activities.service.intake import ticket_from_email, ticket_from_web_form
from activities.service.models import Article, ArticleStatus
from activities.service.satisfaction import SurveyLinkRefused, survey_answer, survey_from_token


def _throttled(request, scope: str, rate: int) -> bool:
    key = f"activities:{scope}:{request.META.get('REMOTE_ADDR', '')}"
    cache.add(key, 0, timeout=60)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=60)
        count = 1
    return count > rate


class SupportForm(forms.Form):
    name = forms.CharField(max_length=200)
    email = forms.EmailField()
    subject = forms.CharField(max_length=200)
    message = forms.CharField(widget=forms.Textarea, max_length=20_000)
    # Hidden from people by the page's style; a form filler that fills every field fills it too.
    website = forms.CharField(required=False, label="Leave this empty")


@never_cache
@csrf_protect
@require_http_methods(["GET", "POST"])
def support_form(request):
    if request.method == "POST" and _throttled(request, "support-form", settings.CRM_SUPPORT_FORM_RATE):
        response = TemplateResponse(
            request,
            "activities/support_form.html",
            {
                "form": SupportForm(),
                "error": "Too many requests from your address: wait a minute and try again.",
            },
            status=429,
        )
        response["Retry-After"] = "60"
        return response
    form = SupportForm(request.POST or None)
    context = {"form": form, "title": "Contact support"}
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        if data["website"]:
            # A robot: thanked like a person, and nothing is stored.
            return TemplateResponse(request, "activities/support_form_thanks.html", {"number": None})
        ticket = ticket_from_web_form(
            name=data["name"], email_address=data["email"], subject=data["subject"], body=data["message"]
        )
        return TemplateResponse(request, "activities/support_form_thanks.html", {"number": ticket.number})
    return TemplateResponse(
        request, "activities/support_form.html", context, status=400 if form.errors else 200
    )


def _json(payload: dict, status: int) -> HttpResponse:
    return HttpResponse(json.dumps(payload), status=status, content_type="application/json")


@csrf_exempt
@never_cache
@require_POST
def inbound_email(request):
    """The raw message is the body (message/rfc822); the secret is in X-Inbound-Secret. 201 with the
    new ticket's number, or 200 with the ticket the reply was threaded onto."""
    secret = settings.CRM_INBOUND_EMAIL_SECRET
    if not secret:
        raise Http404("Inbound email is turned off.")
    given = request.headers.get("X-Inbound-Secret", "")
    if not hmac.compare_digest(given.encode(), secret.encode()):
        return _json({"detail": "The inbound secret is missing or wrong."}, 403)
    length = int(request.META.get("CONTENT_LENGTH") or 0)
    if length > settings.CRM_INBOUND_EMAIL_MAX_BYTES:
        return _json(
            {"detail": f"The message is larger than {settings.CRM_INBOUND_EMAIL_MAX_BYTES} bytes."}, 413
        )
    raw = request.body
    if not raw.strip():
        return _json({"message": ["Post the raw message as the request's body."]}, 400)
    try:
        inbound = ticket_from_email(raw=raw)
    except ValidationError as exc:
        errors = exc.message_dict if hasattr(exc, "error_dict") else {"message": exc.messages}
        return _json(errors, 400)
    return _json(
        {"ticket": inbound.ticket.number, "ticket_id": inbound.ticket.pk, "created": inbound.created},
        201 if inbound.created else 200,
    )


@never_cache
@require_http_methods(["GET"])
def kb_article_public(request, pk: int):
    """A published article, for the customers a reply linked it to (drafts and archives: 404)."""
    article = get_object_or_404(
        Article.objects.select_related("category"), pk=pk, status=ArticleStatus.PUBLISHED
    )
    return TemplateResponse(
        request, "activities/kb_article.html", {"article": article, "title": article.title}
    )


class SurveyForm(forms.Form):
    rating = forms.TypedChoiceField(
        choices=[(n, str(n)) for n in range(5, 0, -1)],
        coerce=int,
        widget=forms.RadioSelect,
        label="How satisfied are you? (5: very, 1: not at all)",
    )
    comment = forms.CharField(widget=forms.Textarea, required=False, max_length=5000, label="Comment")


def _refused(request, exc: SurveyLinkRefused):
    return TemplateResponse(
        request,
        "activities/survey_refused.html",
        {"message": exc.message, "title": "Survey"},
        status=exc.status,
    )


@never_cache
@csrf_protect
@require_http_methods(["GET", "POST"])
def survey_public(request, token: str):
    """The rating page of a signed link; ``?rating=N`` (the email's one-click choice) preselects it."""
    try:
        survey = survey_from_token(token)
    except SurveyLinkRefused as exc:
        return _refused(request, exc)
    if request.method == "GET":
        initial = {"rating": request.GET.get("rating")} if request.GET.get("rating") else {}
        form = SurveyForm(initial=initial)
        return TemplateResponse(
            request,
            "activities/survey.html",
            {"form": form, "ticket": survey.ticket, "title": "How did we do?"},
        )
    form = SurveyForm(request.POST)
    if form.is_valid():
        try:
            survey_answer(
                token=token, rating=form.cleaned_data["rating"], comment=form.cleaned_data["comment"]
            )
        except SurveyLinkRefused as exc:
            return _refused(request, exc)
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            return TemplateResponse(
                request, "activities/survey_thanks.html", {"ticket": survey.ticket, "title": "Thank you"}
            )
    return TemplateResponse(
        request,
        "activities/survey.html",
        {"form": form, "ticket": survey.ticket, "title": "How did we do?"},
        status=400,
    )
