"""Project-level views that belong to no app: the health check, and the error pages of the API."""

from django.db import DatabaseError, connection
from django.http import JsonResponse
from django.views import defaults
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET


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
