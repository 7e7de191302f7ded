"""Benchmark: the standard reports, a two-dimension builder report and the churn retraining (issue 22),
against hand-written SQL computing the same figures, in the same run.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/crm_full_copy \\
        .venv/bin/python benchmarks/reports.py [--runs 15] [--warmup 2] [--only revenue] [--churn-runs 3]

Run against a copy of a database seeded with ``manage.py crm_seed`` at full volume (1,000,000 leads,
200,000 opportunities, 100,000 accounts, 300,000 contacts, 2,000,000 activities): the benchmark signs in
as its own superuser and the churn retraining rewrites every account's score, so it writes. The seed
records no stage history; ``--history`` first gives every deal and lead that has none the history its
stage implies (one change per open stage it went through, then its won or lost stage), so the funnel,
the time in stage and "lost at stage" read a realistic history rather than an empty table.

Cases, through the real URLconf as the superuser (every record, the largest scans), each with its
default filters (all time; velocity: the last twelve months):

* ``GET /api/v1/crm/reports/<key>/`` of every standard report (funnel of deals and of leads, velocity,
  cycle and time in stage, revenue by month/source/owner/industry/campaign/new vs existing, win/loss by
  reason/stage/owner/size, activity by type/owner, lifetime value, lead sources);
* ``POST /api/v1/crm/reports/builder/``: opportunities by owner × close month, sum of the amount.

Each SQL baseline is what a person would write by hand for the same figures (the amounts converted at
the rate in force on the close date, as the reports do), run on a bare cursor; a check compares a figure
of the answer with it and stops the benchmark when they differ. Target: p95 ≤ 1 s and ≤ 1.5× the SQL's
p95, a fixed number of queries. Then ``activities.churn.churn_retrain`` over every account is timed
``--churn-runs`` times (target ≤ 60 s). See benchmarks/_harness.py for how timing works.
"""

import statistics
import sys
import time
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as h

API = "/api/v1/crm/reports/"
TARGET = "p95 ≤ 1 s, ≤ 1.5× SQL"
CENT = Decimal("0.01")


def converted(alias: str = "o") -> str:
    """A deal's amount in the company currency at the rate in force on its close date (today's without)."""
    from sales.models import company_currency

    return (
        f"CASE WHEN {alias}.currency = '{company_currency()}' THEN {alias}.amount "
        f"ELSE {alias}.amount * (SELECT r.rate FROM sales_exchangerate r WHERE r.currency = {alias}.currency "
        f"AND r.date <= coalesce({alias}.close_date, current_date) ORDER BY r.date DESC LIMIT 1) END"
    )


def money(value) -> str:
    return str(Decimal(value or 0).quantize(CENT, rounding=ROUND_HALF_UP))


def summary(body: dict, key: str):
    return next(item["value"] for item in body["summary"] if item["key"] == key)


def checked(client, url: str, sql, compare) -> tuple[str, None]:
    """``compare(answer, sql rows)`` → (ours, the SQL's) of one figure; they must be equal."""
    body = h.get_ok(client, url).json() if isinstance(url, str) else url().json()
    ours, theirs = compare(body, sql())
    if ours != theirs:
        raise SystemExit(f"{url}: the report says {ours!r}, the SQL baseline {theirs!r}")
    return f"same figure as the SQL baseline ({ours})", None


# --- the hand-written SQL of each report -----------------------------------------------------------


def funnel_sql(table: str):
    """Default pipeline, cohort month, all time: per (cohort, furthest stage reached) the records, read
    from each record's ``reached_sequence`` (crm.reached; before it, the furthest stage of each record's
    history was grouped and joined: 1.5 s at a million leads)."""
    return [
        ("SELECT id FROM crm_pipeline WHERE is_default ORDER BY id LIMIT 1", []),
        (
            "SELECT s.name, s.sequence FROM crm_stage s JOIN crm_pipeline p ON p.id = s.pipeline_id "
            "WHERE p.is_default AND NOT s.is_lost ORDER BY s.sequence, s.id",
            [],
        ),
        (
            f"""SELECT date_trunc('month', r.created_at) AS cohort, coalesce(r.reached_sequence, -1), count(*)
            FROM {table} r
            WHERE r.pipeline_id = (SELECT id FROM crm_pipeline WHERE is_default ORDER BY id LIMIT 1)
            GROUP BY 1, 2""",
            [],
        ),
    ]


def funnel_compare(body, results):
    return summary(body, "records"), sum(row[2] for row in results[2])


def velocity_sql():
    import datetime

    from django.utils import timezone

    end = timezone.localdate()
    start = datetime.date(end.year - (end.month < 12), end.month % 12 + 1, 1)
    ends, month = [], start
    now = timezone.now()
    while month <= end:
        following = datetime.date(month.year + (month.month == 12), month.month % 12 + 1, 1)
        ends.append(min(datetime.datetime.combine(following, datetime.time.min, tzinfo=datetime.UTC), now))
        month = following
    open_counts = ", ".join(
        "count(*) FILTER (WHERE created_at < %s AND (closed_at IS NULL OR closed_at >= %s))" for _ in ends
    )
    return [
        (
            f"""SELECT date_trunc('month', close_date)::date, count(*) FILTER (WHERE status = 'won'),
                count(*) FILTER (WHERE status = 'lost'), sum({converted()}) FILTER (WHERE status = 'won'),
                sum(closed_at - created_at) FILTER (WHERE status = 'won')
            FROM sales_opportunity o WHERE status IN ('won', 'lost') AND close_date BETWEEN %s AND %s
            GROUP BY 1""",
            [start, end],
        ),
        (
            f"SELECT {open_counts}, count(*) FILTER (WHERE status = 'open') FROM sales_opportunity",
            [moment for moment in ends for _ in (0, 1)],
        ),
    ]


def velocity_compare(body, results):
    return summary(body, "open_deals"), results[1][0][-1]


CYCLE_SQL = [
    (
        "SELECT count(*), sum(closed_at - created_at), min(closed_at - created_at), "
        "max(closed_at - created_at) FROM sales_opportunity WHERE status = 'won'",
        [],
    ),
    (
        """SELECT x.to_stage_id, s.name, p.name,
            count(*) FILTER (WHERE x.left_at IS NOT NULL), sum(x.left_at - x.changed_at),
            count(*) FILTER (WHERE x.left_at IS NULL),
            sum(now() - x.changed_at) FILTER (WHERE x.left_at IS NULL)
        FROM (SELECT h.to_stage_id, h.changed_at,
                lead(h.changed_at) OVER (PARTITION BY h.record_id ORDER BY h.changed_at, h.id) AS left_at
            FROM sales_opportunitystagechange h) x
        JOIN crm_stage s ON s.id = x.to_stage_id JOIN crm_pipeline p ON p.id = s.pipeline_id
        WHERE NOT s.is_won AND NOT s.is_lost
        GROUP BY x.to_stage_id, s.name, p.name, p.sequence, s.sequence
        ORDER BY p.sequence, p.name, s.sequence""",
        [],
    ),
]


def cycle_compare(body, results):
    return (
        summary(body, "won"),
        sum(row["completed"] for row in body["rows"]),
    ), (results[0][0][0], sum(row[3] for row in results[1]))


def revenue_sql(group_by: str):
    won = f"SELECT count(*), sum({converted()}) FROM sales_opportunity o WHERE status = 'won'"
    grouped = {
        "month": f"""SELECT date_trunc('month', close_date), count(*), sum({converted()})
            FROM sales_opportunity o WHERE status = 'won' GROUP BY 1""",
        "source": f"""SELECT l.source, count(*), sum({converted()})
            FROM sales_opportunity o LEFT JOIN crm_lead l ON l.id = o.lead_id
            WHERE o.status = 'won' GROUP BY 1""",
        "owner": f"""SELECT o.owner_id, u.username, count(*), sum({converted()})
            FROM sales_opportunity o LEFT JOIN auth_user u ON u.id = o.owner_id
            WHERE o.status = 'won' GROUP BY 1, 2""",
        "industry": f"""SELECT a.industry, count(*), sum({converted()})
            FROM sales_opportunity o LEFT JOIN crm_account a ON a.id = o.account_id
            WHERE o.status = 'won' GROUP BY 1""",
        "campaign": f"""SELECT o.campaign_id, c.name, count(*), sum({converted()})
            FROM sales_opportunity o LEFT JOIN crm_campaign c ON c.id = o.campaign_id
            WHERE o.status = 'won' GROUP BY 1, 2""",
        # The account's first win (by close date, then id) is "new", its later ones "existing".
        "customer": f"""SELECT kind, count(*), sum(value) FROM (
                SELECT CASE WHEN account_id IS NULL THEN 'no account'
                    WHEN row_number() OVER (PARTITION BY account_id ORDER BY close_date, id) > 1
                    THEN 'existing' ELSE 'new' END AS kind, {converted()} AS value
                FROM sales_opportunity o WHERE status = 'won') x GROUP BY kind""",
    }[group_by]
    return [(grouped, []), (won, [])] if group_by == "customer" else [(grouped, [])]


def revenue_compare(body, results):
    return money(summary(body, "won_amount")), money(sum(row[-1] or 0 for row in results[0]))


def win_loss_sql(group_by: str):
    value = converted()
    figures = (
        f"count(*) FILTER (WHERE o.status = 'won'), count(*) FILTER (WHERE o.status = 'lost'), "
        f"sum({value}) FILTER (WHERE o.status = 'won'), sum({value}) FILTER (WHERE o.status = 'lost')"
    )
    bands = (
        f"CASE WHEN {value} < 1000 THEN 0 WHEN {value} < 10000 THEN 1 WHEN {value} < 50000 THEN 2 "
        f"WHEN {value} < 100000 THEN 3 ELSE 4 END"
    )
    return [
        (
            {
                "reason": f"""SELECT o.lost_reason_id, r.name, {figures} FROM sales_opportunity o
                    LEFT JOIN crm_lostreason r ON r.id = o.lost_reason_id
                    WHERE o.status = 'lost' GROUP BY 1, 2""",
                # The stage a deal moved from into its (last) lost stage.
                "stage": f"""SELECT coalesce(at.from_stage_name, ''), {figures} FROM sales_opportunity o
                    LEFT JOIN LATERAL (SELECT h.from_stage_name FROM sales_opportunitystagechange h
                        JOIN crm_stage s ON s.id = h.to_stage_id
                        WHERE h.record_id = o.id AND s.is_lost
                        ORDER BY h.changed_at DESC, h.id DESC LIMIT 1) at ON true
                    WHERE o.status = 'lost' GROUP BY 1""",
                "owner": f"""SELECT o.owner_id, u.username, {figures} FROM sales_opportunity o
                    LEFT JOIN auth_user u ON u.id = o.owner_id
                    WHERE o.status IN ('won', 'lost') GROUP BY 1, 2""",
                "size": f"""SELECT {bands}, {figures} FROM sales_opportunity o
                    WHERE o.status IN ('won', 'lost') GROUP BY 1""",
            }[group_by],
            [],
        )
    ]


def win_loss_compare(body, results):
    return summary(body, "lost"), sum(row[-3] for row in results[0])


def activity_sql(group_by: str):
    column = {"type": "a.activity_type", "owner": "a.owner_id"}[group_by]
    return [
        (
            f"""SELECT {column}, count(*), count(*) FILTER (WHERE a.status = 'completed'),
                count(*) FILTER (WHERE a.status = 'cancelled'),
                count(*) FILTER (WHERE a.due_date < now() AND a.status NOT IN ('completed', 'cancelled'))
            FROM activities_activity a GROUP BY 1""",
            [],
        ),
        ("SELECT count(*) FROM sales_opportunity WHERE status = 'won'", []),
        (
            "SELECT count(*) FROM activities_activity a JOIN sales_opportunity o ON o.id = a.opportunity_id "
            "WHERE o.status = 'won'",
            [],
        ),
    ]


def activity_compare(body, results):
    return (summary(body, "activities"), summary(body, "won_deals")), (
        sum(row[1] for row in results[0]),
        results[1][0][0],
    )


def lifetime_value_sql():
    value = converted()
    return h.sql_chain(
        lambda results: (
            f"""SELECT account_id, count(*), coalesce(sum({value}), 0) AS amount, min(close_date),
                max(close_date) FROM sales_opportunity o WHERE status = 'won' AND account_id IS NOT NULL
            GROUP BY account_id ORDER BY amount DESC, account_id LIMIT 100""",
            [],
        ),
        lambda results: (
            f"SELECT count(DISTINCT account_id), sum({value}) FROM sales_opportunity o "
            "WHERE status = 'won' AND account_id IS NOT NULL",
            [],
        ),
        lambda results: (
            "SELECT id, name, industry FROM crm_account WHERE id = ANY(%s)",
            [[row[0] for row in results[0]]],
        ),
    )


def lifetime_value_compare(body, results):
    return [row["account_id"] for row in body["rows"]], [row[0] for row in results[0]]


def lead_sources_sql():
    return [
        (
            f"""SELECT l.source, count(*), count(*) FILTER (WHERE l.status = 'converted'),
            count(*) FILTER (WHERE o.status = 'won'), sum({converted()}) FILTER (WHERE o.status = 'won')
        FROM crm_lead l LEFT JOIN sales_opportunity o ON o.lead_id = l.id GROUP BY 1""",
            [],
        )
    ]


def lead_sources_compare(body, results):
    return (summary(body, "leads"), money(summary(body, "won_amount"))), (
        sum(row[1] for row in results[0]),
        money(sum(row[4] or 0 for row in results[0])),
    )


BUILDER = {
    "record_type": "opportunities",
    "group_by": ["owner", "close_date:month"],
    "measures": ["sum:amount"],
}


def builder_sql():
    return [
        (
            f"""SELECT o.owner_id, u.username, date_trunc('month', o.close_date) AS month, sum({converted()})
        FROM sales_opportunity o LEFT JOIN auth_user u ON u.id = o.owner_id
        GROUP BY 1, 2, 3 ORDER BY 1 NULLS LAST, 2 NULLS LAST, 3 NULLS LAST LIMIT 2001""",
            [],
        )
    ]


def builder_compare(body, results):
    ours = sum(Decimal(row["sum:amount"] or 0) for row in body["rows"])
    return (len(body["rows"]), money(ours)), (len(results[0]), money(sum(row[3] or 0 for row in results[0])))


# --- cases -------------------------------------------------------------------------------------------


def cases(args) -> list[h.Case]:
    _, token = h.bench_superuser()
    client = h.api_client(token)

    def report(name: str, path: str, statements, compare, sizes=()) -> h.Case:
        url = f"{API}{path}"
        # A list of statements, or already a call that runs its SQL.
        sql = h.sql_call(lambda: statements) if isinstance(statements, list) else statements
        return h.Case(
            name=name,
            call=h.request_call(client, url),
            sql=sql,
            target=TARGET,
            target_p95_ms=1000,
            max_sql_ratio=1.5,
            sizes=[(label, h.request_call(client, f"{API}{other}")) for label, other in sizes],
            check=lambda: checked(client, url, sql, compare),
        )

    def post_builder():
        response = client.post(f"{API}builder/", BUILDER, content_type="application/json")
        if response.status_code != 200:
            raise SystemExit(f"POST {API}builder/ answered {response.status_code}: {response.content[:500]}")
        return response

    builder_sql_call = h.sql_call(builder_sql)
    period = "date_from=2025-01-01&date_to=2025-06-30"
    result = [
        report(
            "funnel of deals, by month",
            "funnel/",
            funnel_sql("sales_opportunity"),
            funnel_compare,
            sizes=[("by year", "funnel/?cohort=year")],
        ),
        report(
            "funnel of leads, by month",
            "funnel/?kind=lead",
            funnel_sql("crm_lead"),
            funnel_compare,
        ),
        report("pipeline velocity", "velocity/", h.sql_call(velocity_sql), velocity_compare),
        report("sales cycle and time in stage", "cycle/", CYCLE_SQL, cycle_compare),
    ]
    for group in ("month", "source", "owner", "industry", "campaign", "customer"):
        result.append(
            report(
                f"revenue by {group}",
                f"revenue/?group_by={group}",
                revenue_sql(group),
                revenue_compare,
                sizes=[("half a year", f"revenue/?group_by={group}&{period}")] if group == "month" else (),
            )
        )
    for group in ("reason", "stage", "owner", "size"):
        result.append(
            report(
                f"win/loss by {group}", f"win-loss/?group_by={group}", win_loss_sql(group), win_loss_compare
            )
        )
    for group in ("type", "owner"):
        result.append(
            report(
                f"activity by {group}", f"activity/?group_by={group}", activity_sql(group), activity_compare
            )
        )
    result += [
        report(
            "customer lifetime value, top 100",
            "lifetime-value/",
            lifetime_value_sql(),
            lifetime_value_compare,
            sizes=[("top 1000", "lifetime-value/?limit=1000")],
        ),
        report("lead source effectiveness", "lead-sources/", lead_sources_sql(), lead_sources_compare),
        h.Case(
            name="builder: deals by owner × close month, sum of amount",
            call=post_builder,
            sql=builder_sql_call,
            target=TARGET,
            target_p95_ms=1000,
            max_sql_ratio=1.5,
            check=lambda: checked(client, post_builder, builder_sql_call, builder_compare),
        ),
    ]
    return result


# --- churn retraining --------------------------------------------------------------------------------


def churn(runs: int) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from activities.churn import churn_retrain
    from crm.actors import SYSTEM

    print(f"\n## churn retraining over every account, {runs} runs; load before {h.load()}", flush=True)
    timings, queries, result = [], None, None
    for index in range(runs):
        started = time.perf_counter()
        if index == 0:
            with CaptureQueriesContext(connection) as captured:
                result = churn_retrain(user=SYSTEM)
            queries = len(captured.captured_queries)
        else:
            result = churn_retrain(user=SYSTEM)
        timings.append(time.perf_counter() - started)
    met = "met" if max(timings) <= 60 else "**not met**"
    print(f"load after {h.load()}")
    print(
        f"| churn retraining | p50 {statistics.median(timings):.1f} s | max {max(timings):.1f} s | "
        f"{queries} queries (first run; DEBUG off hides none) | {result['scored']:,} accounts scored, "
        f"model {'fitted' if result['fitted'] else 'default'} on {result['accounts']:,} | ≤ 60 s | {met} |"
    )


# --- stage history for the seeded data -----------------------------------------------------------------


def add_history() -> None:
    """Give every deal and lead without stage history the history its stage implies: it entered the
    pipeline's first open stage when created, each later open stage up to its own (or, closed, up to a
    stage drawn from its id) at even steps, then its won or lost stage when it closed."""
    from django.db import connection

    for table, history, closed in (
        ("sales_opportunity", "sales_opportunitystagechange", "r.closed_at"),
        ("crm_lead", "crm_leadstagechange", "coalesce(r.converted_at, r.updated_at)"),
    ):
        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                WITH open_stages AS (
                    SELECT s.id, s.name, s.pipeline_id, s.sequence,
                        row_number() OVER (PARTITION BY s.pipeline_id ORDER BY s.sequence, s.id) AS n
                    FROM crm_stage s WHERE NOT s.is_won AND NOT s.is_lost),
                records AS (
                    SELECT r.id, r.pipeline_id, r.created_at, st.id AS stage_id, st.name AS stage_name,
                        st.is_won OR st.is_lost AS closed, {closed} AS closed_at,
                        CASE WHEN st.is_won OR st.is_lost
                            THEN 1 + mod(r.id, (SELECT count(*) FROM open_stages o
                                WHERE o.pipeline_id = r.pipeline_id))
                            ELSE (SELECT o.n FROM open_stages o WHERE o.id = st.id) END AS last_open
                    FROM {table} r JOIN crm_stage st ON st.id = r.stage_id
                    WHERE NOT EXISTS (SELECT 1 FROM {history} h WHERE h.record_id = r.id)),
                steps AS (
                    SELECT r.id AS record_id, o.id AS to_stage_id, o.name AS to_stage_name, o.n,
                        r.created_at + (coalesce(r.closed_at, now()) - r.created_at) * (o.n - 1)
                            / (r.last_open + 1) AS changed_at
                    FROM records r JOIN open_stages o ON o.pipeline_id = r.pipeline_id AND o.n <= r.last_open
                    UNION ALL
                    SELECT r.id, r.stage_id, r.stage_name, r.last_open + 1, r.closed_at
                    FROM records r WHERE r.closed AND r.closed_at IS NOT NULL)
                INSERT INTO {history} (record_id, from_stage_id, from_stage_name, to_stage_id, to_stage_name,
                    changed_at)
                SELECT record_id,
                    lag(to_stage_id) OVER w, coalesce(lag(to_stage_name) OVER w, ''),
                    to_stage_id, to_stage_name, changed_at
                FROM steps WINDOW w AS (PARTITION BY record_id ORDER BY n)
                """
            )
            added = cursor.rowcount
            cursor.execute(f"ANALYZE {history}")
        print(f"{history}: {added:,} changes added in {time.perf_counter() - started:.0f} s", flush=True)


def main(argv=None):
    h.setup_django()
    parser_args = list(sys.argv[1:] if argv is None else argv)
    churn_runs, history, skip_churn = 3, False, False
    if "--history" in parser_args:
        parser_args.remove("--history")
        history = True
    if "--no-churn" in parser_args:
        parser_args.remove("--no-churn")
        skip_churn = True
    if "--churn-runs" in parser_args:
        index = parser_args.index("--churn-runs")
        churn_runs = int(parser_args[index + 1])
        del parser_args[index : index + 2]
    args = h.arguments("Reports benchmark", parser_args, runs=15, warmup=2)
    if history:
        add_history()
    if args.only != "churn":
        h.run("Reports at full volume", cases(args), args)
    if not skip_churn and churn_runs:
        churn(churn_runs)


if __name__ == "__main__":
    main()
