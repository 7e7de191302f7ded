"""Benchmark: knowledge-base search (issue 20 item 5): target p95 ≤ 100 ms over 50,000 articles.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/crm_i20kb_bench \\
        .venv/bin/python benchmarks/knowledge_base.py [--runs 30]   # BENCH_ARTICLES=50000

The database is migrated first; the articles are bulk-inserted once (kept for the next run): published,
a title of 6 and a body of 150 words drawn from a 3,000-word vocabulary (Zipf-like: a few words in many
articles, most in few), so a query of a common word ranks thousands of matches and a rare one a few.
Cases, through the real URLconf as a superuser: the API search ``kb/articles/?q=`` of a common word, a
rare word and two words; baseline: the first page of ids read with a bare cursor through the GIN index
of the stored vector (``@@``, ``ts_rank`` of every match, ordered and limited), which is what ranking
every match costs (the API ranks at most ``SEARCH_CANDIDATES`` of them).

Not a test: numbers go to benchmarks/BENCHMARKS.md.
"""

import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (
    api_client,
    arguments,
    bench_superuser,
    percentile,
    request_call,
    setup_django,
    time_interleaved,
)

VOCABULARY = 3000


def _words(rng: random.Random, vocabulary: list[str], count: int) -> str:
    # Zipf-like: index ~ vocabulary size × u³ puts most draws on the first words.
    return " ".join(vocabulary[int(len(vocabulary) * rng.random() ** 3)] for _ in range(count))


def main() -> None:
    args = arguments(__doc__, runs=30, warmup=3)
    count = int(os.environ.get("BENCH_ARTICLES", "50000"))
    setup_django()
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    from activities.models import Article

    call_command("migrate", verbosity=0)
    _user, token = bench_superuser()
    rng = random.Random(20)
    vocabulary = [f"w{n:04d}x" for n in range(VOCABULARY)]
    have = Article.objects.count()
    if have < count:
        started, now, batch = time.perf_counter(), timezone.now(), []
        for _ in range(have, count):
            batch.append(
                Article(
                    title=_words(rng, vocabulary, 6),
                    body=_words(rng, vocabulary, 150),
                    status="published",
                    version=1,
                    published_at=now,
                )
            )
            if len(batch) == 2000:
                Article.objects.bulk_create(batch)
                batch = []
        Article.objects.bulk_create(batch)
        print(f"inserted {count - have} articles in {time.perf_counter() - started:.0f} s", flush=True)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE activities_article")

    common, rare = vocabulary[0], vocabulary[-50]
    queries = {
        "one common word": common,
        "one rare word": rare,
        "two words": f"{vocabulary[3]} {vocabulary[40]}",
    }
    api = api_client(token)
    calls = [request_call(api, f"/api/v1/crm/kb/articles/?q={q.replace(' ', '+')}") for q in queries.values()]
    # The stored vector (a trigger keeps it; migration activities 0021).
    vector = "search_vector"

    def sql_page(q):
        def run():
            with connection.cursor() as cursor:
                cursor.execute(
                    f"SELECT id, ts_rank({vector}, websearch_to_tsquery('english', %s)) AS rank "
                    f"FROM activities_article WHERE ({vector}) @@ websearch_to_tsquery('english', %s) "
                    "ORDER BY rank DESC, id LIMIT 50",
                    [q, q],
                )
                return cursor.fetchall()

        return run

    baselines = [sql_page(q) for q in queries.values()]
    timings = time_interleaved([*calls, *baselines], args.runs, args.warmup)
    with connection.cursor() as cursor:
        for name, q in queries.items():
            cursor.execute(
                f"SELECT count(*) FROM activities_article "
                f"WHERE ({vector}) @@ websearch_to_tsquery('english', %s)",
                [q],
            )
            print(f"{name}: {cursor.fetchone()[0]:,} matches")
    load = os.getloadavg()
    print(f"\n{count:,} articles; load average {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}")
    for index, name in enumerate(queries):
        ours, sql = timings[index], timings[len(queries) + index]
        print(
            f"| API kb/articles/?q= ({name}) | {percentile(ours, 0.5):.1f} ms "
            f"| {percentile(ours, 0.95):.1f} ms "
            f"| SQL page {percentile(sql, 0.5):.1f} / {percentile(sql, 0.95):.1f} ms |"
        )


if __name__ == "__main__":
    main()
