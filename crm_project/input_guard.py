"""A query parameter that holds a null character is refused at the door, with a 400 naming it.

PostgreSQL's text cannot hold a NUL (``\\x00``): a value carrying one into a statement raises
``DataError`` when the statement runs, after the code that parses parameters has let it through. The
admin passes any field of a changelist's model from the query string to the queryset
(``?status__exact=a%00b``), and so do other pages that filter by what the URL names: each was a
500 on PostgreSQL (SQLite stores the character). Forms and DRF's string fields already refuse it in a
body (``ProhibitNullCharactersValidator``); a query string is checked here, once, for every page of
the site, the pages to come included.

The answer is a 400: JSON under ``/api/`` (``{"<parameter>": ["Null characters are not allowed."]}``,
the API's per-field shape), a line of text elsewhere.
"""

from django.http import HttpResponseBadRequest, JsonResponse

MESSAGE = "Null characters are not allowed."


class NullCharacterQueryMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        # The raw query string first: a NUL arrives percent-encoded, so most requests cost one search.
        if "%00" in request.META.get("QUERY_STRING", "") or "\x00" in request.META.get("QUERY_STRING", ""):
            refused = sorted(
                {
                    name
                    for name, values in request.GET.lists()
                    if "\x00" in name or any("\x00" in v for v in values)
                }
            )
            if refused:
                return _refusal(request, refused)
        return self.get_response(request)


def _refusal(request, names: list[str]):
    shown = [name.replace("\x00", "\\x00") for name in names]
    if request.path.startswith("/api/"):
        return JsonResponse({name: [MESSAGE] for name in shown}, status=400)
    return HttpResponseBadRequest(
        f"{MESSAGE} The query parameter {', '.join(shown)} holds one.\n",
        content_type="text/plain; charset=utf-8",
    )
