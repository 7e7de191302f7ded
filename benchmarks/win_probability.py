"""Benchmark: the win-probability models on a seeded database (``manage.py crm_seed``, 1,000,000 leads).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/crm_seed_bench \\
        .venv/bin/python benchmarks/win_probability.py [--repeat 5]

Times, median of ``--repeat`` runs:

1. rebuild — ``win_models_rebuild()`` (what ``crm_recompute_win_probabilities`` does) for leads and
   opportunities, every pipeline;
2. close + reopen — ``lead_mark_lost`` then ``lead_reopen`` of one open lead (the incremental path:
   the record's snapshot and one locked WinModel row each way), and the same with
   ``opportunity_mark_won`` / ``opportunity_reopen``; the data is as before afterwards;
3. estimates — ``win_estimate_cached`` for a page of 25 open leads (the one query for the models and
   the arithmetic);
4. pages — ``GET /api/v1/crm/leads/`` and ``/opportunities/`` (25 records, with their automated
   probability) and the leads board, as a superuser (their query counts are fixed by the tests).

Not a test: numbers go to benchmarks/BENCHMARKS.md.
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

from crm.actors import SYSTEM

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crm_project.settings")
os.environ.setdefault("SECRET_KEY", "benchmark-only-secret-key")
os.environ.setdefault("LOG_LEVEL", "WARNING")


def timed(function, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from rest_framework.test import APIClient

    from crm import services as crm_services
    from crm.models import Lead
    from crm.selectors import lead_list
    from crm.win_probability import win_estimate_cached, win_models_rebuild
    from sales import services as sales_services
    from sales.models import Opportunity

    settings.ALLOWED_HOSTS = ["testserver", *settings.ALLOWED_HOSTS]
    print(f"leads {Lead.objects.count():,}, opportunities {Opportunity.objects.count():,}")
    print(
        f"closed leads {Lead.objects.exclude(status='open').count():,}, "
        f"closed opportunities {Opportunity.objects.exclude(status='open').count():,}"
    )

    seconds, models = timed(win_models_rebuild, args.repeat)
    print(f"rebuild, every pipeline, leads and opportunities: {seconds:.2f} s ({len(models)} models)")

    lead = Lead.objects.filter(status="open").order_by("pk").first()
    opportunity = Opportunity.objects.filter(status="open").order_by("pk").first()

    def lead_round_trip():
        crm_services.lead_mark_lost(lead=lead, user=SYSTEM)
        crm_services.lead_reopen(lead=lead, user=SYSTEM)

    def opportunity_round_trip():
        sales_services.opportunity_mark_won(opportunity=opportunity, user=SYSTEM)
        sales_services.opportunity_reopen(opportunity=opportunity, user=SYSTEM)

    for label, function in (
        ("lead mark lost + reopen", lead_round_trip),
        ("opportunity mark won + reopen", opportunity_round_trip),
    ):
        with CaptureQueriesContext(connection) as context:
            function()
        seconds, _ = timed(function, args.repeat)
        print(f"{label}: {seconds * 1000:.1f} ms, {len(context.captured_queries)} queries")

    admin = get_user_model().objects.filter(is_superuser=True).first()
    if admin is None:
        admin = get_user_model().objects.create_superuser("bench-admin", "bench@example.com", "x" * 16)
    page = list(lead_list(user=admin)[:25])

    def estimate_page():
        cache = {}
        return [win_estimate_cached(record, cache) for record in page]

    seconds, estimates = timed(estimate_page, args.repeat)
    print(
        f"estimates for a page of 25 leads (models query included): {seconds * 1000:.2f} ms, "
        f"e.g. {[e.probability for e in estimates[:5]]}"
    )
    client = APIClient()
    client.force_authenticate(admin)
    for path in ("leads/", "opportunities/", "leads/kanban/"):
        url = f"/api/v1/crm/{path}"
        response = client.get(url)
        assert response.status_code == 200, response.content[:500]
        seconds, _ = timed(lambda url=url: client.get(url), args.repeat)
        print(f"GET {url}: {seconds * 1000:.0f} ms")


if __name__ == "__main__":
    main()
