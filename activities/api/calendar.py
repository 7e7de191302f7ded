"""The personal calendar feed: ``calendar/feed/`` (is there one, when was it made), ``calendar/feed/
regenerate/`` (a new secret URL, shown once), and the feed itself at ``calendar/feed/<token>.ics``,
which needs no session: its secret is the credential."""

from urllib.parse import urlparse

from django.conf import settings
from django.core.cache import cache
from django.http import Http404, HttpResponse
from django.urls import reverse
from django.views.decorators.http import require_safe
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from activities import selectors, services
from activities.ical import feed_ics
from activities.models import CalendarFeed
from crm.api.serializers import NoInputSerializer
from crm.api.viewsets import ObjectSchema


class CalendarFeedSerializer(serializers.Serializer):
    exists = serializers.BooleanField(help_text="Whether I have a feed URL.")
    created_at = serializers.DateTimeField(allow_null=True, help_text="When its secret was made.")
    url = serializers.CharField(
        allow_null=True,
        help_text="The secret URL: given only by regenerate (only a hash of it is kept). Subscribe to it "
        "from Google Calendar (From URL), Outlook (Subscribe from web) or Apple Calendar.",
    )


def feed_url(token: str) -> str:
    path = reverse("calendar-feed", kwargs={"token": token})
    return f"{settings.CRM_BASE_URL.rstrip('/')}{path}"


def feed_state(user, token: str | None = None) -> dict:
    feed = CalendarFeed.objects.filter(user=user).first()
    return {
        "exists": feed is not None,
        "created_at": feed.created_at if feed else None,
        "url": feed_url(token) if token else None,
    }


class CalendarFeedViewSet(viewsets.GenericViewSet):
    """My personal iCalendar feed: a secret URL serving my activities (RRULE for recurring ones)."""

    permission_classes = [IsAuthenticated]
    serializer_class = CalendarFeedSerializer
    pagination_class = None
    schema = ObjectSchema()  # "list" answers one object: my feed

    def get_queryset(self):
        return CalendarFeed.objects.none()

    @extend_schema(summary="My calendar feed", responses={200: CalendarFeedSerializer})
    def list(self, request):
        return Response(feed_state(request.user))

    @extend_schema(
        summary="Make a new secret URL for my calendar feed",
        description="The old URL stops working at once. The answer is the only time the URL is shown.",
        request=NoInputSerializer,
        responses={200: CalendarFeedSerializer},
    )
    @action(detail=False, methods=["post"])
    def regenerate(self, request):
        token = services.calendar_feed_regenerate(user=request.user)
        return Response(feed_state(request.user, token))


# A feed is rebuilt only when what it holds changed (calendar_feed_version), at most this often reused.
FEED_CACHE_SECONDS = 300


@require_safe
def calendar_feed(request, token: str):
    """The feed of the user whose secret ``token`` is: 404 for any other token, and nothing but their
    own dated activities. Built once per version of what it holds (cached), with an ETag so a client
    that sends If-None-Match gets a 304."""
    owner = selectors.calendar_feed_owner(token=token)
    if owner is None:
        raise Http404("No such calendar.")
    version = selectors.calendar_feed_version(owner=owner)
    etag = f'"{version}"'
    if etag in request.headers.get("If-None-Match", ""):
        response = HttpResponse(status=304)
    else:
        key = f"crm:calendar-feed:{owner.pk}:{version}"
        body = cache.get(key)
        if body is None:
            body = feed_ics(
                list(selectors.calendar_feed_activities(owner=owner)),
                name=f"CRM: {owner.get_username()}",
                domain=urlparse(settings.CRM_BASE_URL).hostname or "crm",
            ).encode()
            cache.set(key, body, FEED_CACHE_SECONDS)
        response = HttpResponse(body, content_type="text/calendar; charset=utf-8")
        response["Content-Disposition"] = 'inline; filename="crm.ics"'
    response["ETag"] = etag
    response["Cache-Control"] = "private, max-age=300"
    response["Referrer-Policy"] = "no-referrer"
    return response
