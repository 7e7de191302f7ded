"""Benchmark: the likely-duplicate check of a lead, an account and a contact (``crm.duplicates``).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/crm_full \\
        .venv/bin/python benchmarks/duplicates.py [--sample 60] [--company "Gonzales-Gonzalez 2 Inc"]

What a lead's admin page ("possible duplicates"), ``GET leads/{id}/duplicates/`` and a create's
``X-Likely-Duplicates`` header cost: ``find_duplicates`` in-process, once per record, on a fixed sample
of seeded records (the same ids for every commit: a seeded random draw), after three untimed calls.
Prints p50, p90 and the slowest, and how many matches the records got (20 is the list's length). Then
the records of one company name, the seed's most repeated kind, five times each.

To compare commits, copy this file into each commit's worktree and run it from there, one after the
other, on the same database.
"""

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as h


def timed(call) -> tuple[float, object]:
    start = time.perf_counter()
    result = call()
    return (time.perf_counter() - start) * 1000, result


def sample(model, size: int, rng: random.Random) -> list:
    last = model.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    ids = sorted({rng.randrange(1, last + 1) for _ in range(size * 2)}) if last else []
    return list(model.objects.filter(pk__in=ids).order_by("pk"))[:size]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sample", type=int, default=60, help="leads drawn; half as many accounts and contacts"
    )
    parser.add_argument(
        "--company", default="Gonzales-Gonzalez 2 Inc", help="a company name the seed repeats"
    )
    args = parser.parse_args()
    h.setup_django()

    from crm.duplicates import find_duplicates
    from crm.models import Account, Contact, Lead

    print("# Likely duplicates")
    print(f"date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, commit {h.commit()}")
    print(f"database {h.database_summary()}")
    print(f"load before {h.load()}")
    rng = random.Random(7)
    print("| records | n | p50 ms | p90 ms | slowest ms | matches (median) | records with 20 |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for model, size in ((Lead, args.sample), (Account, args.sample // 2), (Contact, args.sample // 2)):
        records = sample(model, size, rng)
        for record in records[:3]:
            find_duplicates(record)
        times, counts = [], []
        for record in records:
            elapsed, matches = timed(lambda record=record: find_duplicates(record))
            times.append(elapsed)
            counts.append(len(matches))
        times.sort()
        print(
            f"| {model._meta.verbose_name_plural} | {len(times)} | {statistics.median(times):.1f} "
            f"| {h.percentile(times, 0.9):.1f} | {times[-1]:.1f} | {statistics.median(counts):g} "
            f"| {sum(count == 20 for count in counts)} |"
        )
    lead = Lead.objects.filter(company_name=args.company).order_by("pk").first()
    if lead is None:
        print(f"- no lead of the company “{args.company}” here")
    else:
        find_duplicates(lead)
        runs = sorted(timed(lambda: find_duplicates(lead))[0] for _ in range(5))
        print(f"- a lead of “{args.company}” (id {lead.pk}): {statistics.median(runs):.1f} ms, median of 5")
    print(f"load after {h.load()}")


if __name__ == "__main__":
    main()
