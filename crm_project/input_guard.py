"""A query parameter that holds a null character is refused at the door, with a 400 naming it.

PostgreSQL's text cannot hold a NUL (``\\x00``): a value carrying one into a statement raises
``DataError`` when the statement runs, after the code that parses parameters has let it through. The
admin passes any field of a changelist's model from the query string to the queryset
(``?status__exact=a%00b``), and so do other pages that filter by what the URL names: each was a
500 on PostgreSQL (SQLite stores the character). Forms and DRF's string fields already refuse it in a
body (``ProhibitNullCharactersValidator``); a query string is checked here, once, for every page of
the site, the pages to come included.

The API is left to DRF: it authenticates first (a caller without credentials gets a 401 and learns
nothing, not even which parameters would be refused), then its filters and serializers answer a NUL
with their own per-field 400; a parameter no filter reads is ignored there.
"""

from django.http import HttpResponseBadRequest

MESSAGE = "Null characters are not allowed."


class NullCharacterQueryMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        # The raw query string first: a NUL arrives percent-encoded, so most requests cost one search.
        query = request.META.get("QUERY_STRING", "")
        if ("%00" in query or "\x00" in query) and not request.path_info.startswith("/api/"):
            refused = sorted(
                {
                    name
                    for name, values in request.GET.lists()
                    if "\x00" in name or any("\x00" in value for value in values)
                }
            )
            if refused:
                shown = ", ".join(name.replace("\x00", "\\x00") for name in refused)
                return HttpResponseBadRequest(
                    f"{MESSAGE} The query parameter {shown} holds one.\n",
                    content_type="text/plain; charset=utf-8",
                )
        return self.get_response(request)
