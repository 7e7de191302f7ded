"""Benchmark: rendering a quote of 50 lines to PDF (target: p95 at most 500 ms).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/crm_quote_bench \\
        .venv/bin/python benchmarks/quote_pdf.py [--lines 50] [--runs 40] [--warmup 3]

The database must be migrated (a fresh one is fine); the deal, its lines and the quote are made in a
transaction that is rolled back at the end. Times, interleaved run by run:

1. ``quote_pdf_bytes(quote)``: what sending a quote and downloading a draft's PDF call (read the
   lines, render the HTML template, WeasyPrint to PDF);
2. baseline: WeasyPrint on a one-line HTML page (its fixed cost: the fonts, a page, the PDF writer);
3. baseline: the HTML template alone (``quote_html``), without the PDF.

Each is timed twice: wall-clock, and the CPU time of this process (``time.process_time``). Rendering is
single-threaded and does no I/O, so on a machine shared with other work the CPU time is what the wall
time would be on an idle one; both are reported.

Not a test: numbers go to benchmarks/BENCHMARKS.md.
"""

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crm_project.settings")
os.environ.setdefault("SECRET_KEY", "benchmark-only-secret-key")
os.environ.setdefault("LOG_LEVEL", "WARNING")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=50)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()

    import django

    django.setup()
    from decimal import Decimal

    from django.db import transaction
    from weasyprint import HTML

    from benchmarks._harness import Timing, commit, load
    from crm.actors import SYSTEM
    from crm.models import Pipeline, Stage
    from sales.models import Opportunity
    from sales.quote_pdf import quote_html, quote_pdf_bytes
    from sales.services_quotes import opportunity_line_create, quote_create

    print(f"commit {commit()}, load {load()}, database {django.db.connection.vendor}")
    with transaction.atomic():
        pipeline = Pipeline.objects.create(name="Quote bench")
        stage = Stage.objects.create(pipeline=pipeline, name="New", sequence=0, probability=10)
        deal = Opportunity.objects.create(
            name="Benchmark deal", pipeline=pipeline, stage=stage, probability=10
        )
        for n in range(args.lines):
            opportunity_line_create(
                opportunity=deal,
                user=SYSTEM,
                data={
                    "description": f"Item {n + 1}: a service with a longer description that wraps",
                    "quantity": Decimal(n % 7 + 1),
                    "unit_price": Decimal("19.99") + n,
                    "discount_percent": Decimal(n % 4 * 5),
                    "tax_rate": (Decimal("20"), Decimal("5.5"), Decimal("0"))[n % 3],
                },
            )
        quote = quote_create(opportunity=deal, user=SYSTEM)
        minimal = "<!DOCTYPE html><html><body><p>One line.</p></body></html>"
        calls = [
            lambda: quote_pdf_bytes(quote),
            lambda: HTML(string=minimal).write_pdf(),
            lambda: quote_html(quote),
        ]
        for _ in range(args.warmup):
            for call in calls:
                call()
        wall: list[list[float]] = [[] for _ in calls]
        cpu: list[list[float]] = [[] for _ in calls]
        for _ in range(args.runs):
            for index, call in enumerate(calls):
                started, started_cpu = time.perf_counter(), time.process_time()
                call()
                wall[index].append((time.perf_counter() - started) * 1000)
                cpu[index].append((time.process_time() - started_cpu) * 1000)
        size = len(quote_pdf_bytes(quote))
        transaction.set_rollback(True)

    print(f"{args.lines}-line quote, PDF of {size:,} bytes, {args.runs} runs after {args.warmup} warm-up")
    print("| case | wall p50 ms | wall p95 ms | CPU p50 ms | CPU p95 ms |")
    print("|---|---:|---:|---:|---:|")
    names = (
        f"quote_pdf_bytes, {args.lines} lines",
        "baseline: WeasyPrint, one-line page",
        f"baseline: HTML template only, {args.lines} lines",
    )
    for name, wall_ms, cpu_ms in zip(names, wall, cpu, strict=True):
        w, c = Timing.of(wall_ms), Timing.of(cpu_ms)
        print(f"| {name} | {w.p50:.1f} | {w.p95:.1f} | {c.p50:.1f} | {c.p95:.1f} |")


if __name__ == "__main__":
    main()
