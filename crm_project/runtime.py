"""What a server process does once the application is loaded, before its first request."""

import gc


def settle_after_startup() -> None:
    """Import every view (the URLconf), then take every object made so far out of the garbage
    collector's reach (``gc.freeze``).

    A Django process holds some 200,000 long-lived objects after startup (modules, classes, the URL
    resolver, the admin's registry); a full collection walks all of them, and a request that builds a
    large answer (the account hierarchy's 5,000 nodes, a page of 1,000 rows) triggers one now and
    then: 50 to 100 ms added to that request. Frozen, they are never walked again; objects made by
    requests are collected as before. A forking server (gunicorn) also keeps the frozen pages shared
    between its workers. Called by the WSGI and ASGI entry points, and by the benchmarks' harness so
    that it measures what the server runs."""
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018 - loads the URLconf and with it every view module
    gc.collect()
    gc.freeze()
