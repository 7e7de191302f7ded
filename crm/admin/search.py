"""The global search page (``/admin/search/?q=``) and its JSON for the header's box (``&format=json``)."""

from dataclasses import asdict

from django.http import JsonResponse
from django.template.response import TemplateResponse

from crm.search import SEARCH_MAX_LENGTH, SEARCH_MIN_LENGTH, global_search

PAGE_PER_KIND = 20


def global_search_view(request, admin_site):
    term = request.GET.get("q", "")
    as_json = request.GET.get("format") == "json"
    groups = global_search(user=request.user, term=term, per_kind=5 if as_json else PAGE_PER_KIND)
    if as_json:
        return JsonResponse({"q": term[:SEARCH_MAX_LENGTH], "groups": [asdict(group) for group in groups]})
    context = {
        **admin_site.each_context(request),
        "title": "Search",
        "q": term[:SEARCH_MAX_LENGTH],
        "groups": groups,
        "too_short": 0 < len(term.strip()) < SEARCH_MIN_LENGTH,
        "min_length": SEARCH_MIN_LENGTH,
    }
    request.current_app = admin_site.name
    return TemplateResponse(request, "admin/crm/search.html", context)
