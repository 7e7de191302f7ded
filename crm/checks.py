"""System checks and set-up for the shared cache that holds the API throttles' counters."""

from django.conf import settings
from django.core import checks
from django.core.management import call_command

# Backends whose counters live in one process (or nowhere): each gunicorn worker would count its own.
PER_PROCESS_CACHES = {
    "django.core.cache.backends.locmem.LocMemCache",
    "django.core.cache.backends.dummy.DummyCache",
}


@checks.register(checks.Tags.caches, deploy=True)
def check_shared_cache(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """In production the throttles' counters must be shared by every worker."""
    backend = settings.CACHES.get("default", {}).get("BACKEND", "")
    if settings.DEBUG or backend not in PER_PROCESS_CACHES:
        return []
    return [
        checks.Warning(
            f"The default cache ({backend.rsplit('.', 1)[-1]}) is not shared between processes: each "
            "worker counts its own API throttles, so N workers allow N times the rate.",
            hint="Set CACHE_URL=redis://HOST:6379/1, or leave CACHE_URL unset to use the database cache.",
            id="crm.W001",
        )
    ]


def create_cache_tables(*, using: str = "default", **kwargs) -> None:
    """After ``migrate``: the database cache's table (crm_cache), when the settings use one, so the
    production default works without a separate ``createcachetable`` step. Does nothing otherwise."""
    call_command("createcachetable", database=using, verbosity=0)
