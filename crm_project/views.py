"""Project-level views that belong to no app: the health check, the error pages of the API, and the
API's schema."""

from django.db import DatabaseError, connection
from django.http import JsonResponse
from django.utils import translation
from django.views import defaults
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from drf_spectacular.views import SpectacularAPIView
from rest_framework.response import Response


@never_cache
@require_GET
def healthz(request):
    """200 when the database answers a query, 503 otherwise; for load balancers and monitors.

    The broker is reported beside it (``ok``, ``unavailable``, or ``embedded`` when there is none):
    a broker that is down makes the status ``degraded`` but still 200, since writes go on and their
    events wait in the outbox.
    """
    from crm.events.dispatch import broker_status

    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError:
        return JsonResponse(
            {"status": "error", "database": "unavailable", "broker": broker_status()}, status=503
        )
    broker = broker_status()
    return JsonResponse(
        {"status": "degraded" if broker == "unavailable" else "ok", "database": "ok", "broker": broker}
    )


# --- errors outside the API's views -----------------------------------------------------------------
# A URL under /api/ that no view matches, or a request Django refuses before any view runs (a bad
# Host, a body over DATA_UPLOAD_MAX_MEMORY_SIZE, too many fields), answers in the API's JSON shape;
# elsewhere (the admin) Django's own pages stay.

API_PREFIX = "/api/"


def _is_api(request) -> bool:
    return request.path_info.startswith(API_PREFIX)


def bad_request(request, exception):
    if _is_api(request):
        return JsonResponse({"detail": "Bad request: the request could not be read."}, status=400)
    return defaults.bad_request(request, exception)


def permission_denied(request, exception):
    if _is_api(request):
        return JsonResponse({"detail": "You do not have permission to perform this action."}, status=403)
    return defaults.permission_denied(request, exception)


def page_not_found(request, exception):
    if _is_api(request):
        return JsonResponse({"detail": "Not found."}, status=404)
    return defaults.page_not_found(request, exception)


def server_error(request):
    if _is_api(request):
        return JsonResponse({"detail": "Server error: the error was logged."}, status=500)
    return defaults.server_error(request)


class SchemaView(SpectacularAPIView):
    """``/api/schema/``: the OpenAPI document, generated once per process and language.

    Generating it walks every view and serializer of the API (about 10 s here); it depends on the
    code alone (``SERVE_PUBLIC``: the same document for every reader), which a process does not
    change. The docs pages and clients that fetch it on each visit get the kept copy."""

    _kept: dict[tuple, dict] = {}

    def _get_schema_response(self, request):
        version = self.api_version or request.version or self._get_version_parameter(request)
        key = (version, translation.get_language())
        schema = self._kept.get(key)
        if schema is None:
            generator = self.generator_class(
                urlconf=self.urlconf, api_version=version, patterns=self.patterns
            )
            schema = self._kept[key] = generator.get_schema(request=request, public=self.serve_public)
        return Response(
            data=schema,
            headers={"Content-Disposition": f'inline; filename="{self._get_filename(request, version)}"'},
        )
