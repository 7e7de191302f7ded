"""Benchmark: the API's kanban boards, forecast and dashboard against hand-written SQL.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/crm_bench_full \\
        .venv/bin/python benchmarks/boards_reports.py [--runs 30] [--warmup 3] [--only kanban]

Run against a database seeded with ``manage.py crm_seed`` (full volume: 1,000,000 leads, 200,000
opportunities). Cases:

* ``GET /api/v1/crm/leads/kanban/`` and ``/opportunities/kanban/``: the default pipeline's board, the
  first 20 cards of each column with every column's count and total;
* ``GET /api/v1/crm/opportunities/forecast/?group_by=month``: open (and won) value by close month over
  every opportunity;
* ``GET /api/v1/crm/dashboard/``: the KPIs over every lead and opportunity.

The SQL baselines return the same figures and rows: a board is the pipeline and its stages, one grouped
count and sum, the first cards of every column (a LATERAL join, LIMIT 20 per stage, newest first) and
their tags; the forecast one GROUPING SETS scan (months and the grand total); the dashboard one scan of
the leads, one of the opportunities (GROUPING SETS: per stage and overall) and the stages. No plain DRF
baseline: DRF has no board or report of its own. See benchmarks/_harness.py for how timing works.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as h

KANBAN_LIMIT = 20
API = "/api/v1/crm/"


def default_pipeline_sql(results):
    return (
        "SELECT id, name, description, is_default, is_active, sequence FROM crm_pipeline "
        "WHERE is_default ORDER BY id LIMIT 1",
        [],
    )


def stages_sql(results):
    return (
        "SELECT id, name, sequence, probability, color, is_won, is_lost FROM crm_stage "
        "WHERE pipeline_id = %s ORDER BY sequence, id",
        [results[0][0][0]],
    )


def board_sql(
    *, table: str, alias: str, columns: str, joins: str, value: str, tags_table: str, tags_column: str
):
    """The SQL steps of a board of the default pipeline: pipeline, stages, totals, cards, their tags."""

    def totals(results):
        # By the pipeline's stage ids (a record's stage is always of its pipeline): an index on the
        # stage that carries the value answers it without reading the table.
        return (
            f"SELECT stage_id, count(*), coalesce(sum({value}), 0) FROM {table} "
            "WHERE stage_id = ANY(%s) GROUP BY stage_id",
            [[row[0] for row in results[1]]],
        )

    def cards(results):
        # Every stage's first cards through an index walk per stage, not by numbering the whole pipeline.
        return (
            f"SELECT card.* FROM crm_stage st CROSS JOIN LATERAL (SELECT {columns} {joins} "
            f"WHERE {alias}.stage_id = st.id "
            f"ORDER BY {alias}.created_at DESC, {alias}.id DESC LIMIT %s) card "
            "WHERE st.pipeline_id = %s ORDER BY st.sequence, st.id, card.created_at DESC, card.id DESC",
            [KANBAN_LIMIT, results[0][0][0]],
        )

    return h.sql_chain(
        default_pipeline_sql, stages_sql, totals, cards, h.tags_sql(tags_table, tags_column, 3)
    )


def same_cards(client, url: str, sql) -> tuple[str, None]:
    """The board's columns hold the SQL baseline's cards, in the same order (else the benchmark stops)."""
    board = h.get_ok(client, url).json()
    api_ids = [card["id"] for column in board["columns"] for card in column["results"]]
    sql_ids = [row[0] for row in sql()[3]]
    if api_ids != sql_ids:
        raise SystemExit(f"{url}: the SQL baseline returns other cards ({sql_ids[:5]}… vs {api_ids[:5]}…)")
    counts = sum(column["count"] for column in board["columns"])
    return f"same {len(api_ids)} cards as the SQL baseline; {counts:,} records on the board", None


FORECAST_SQL = """
    SELECT date_trunc('month', close_date)::date AS month,
        count(*) FILTER (WHERE status = 'open'),
        coalesce(sum(amount) FILTER (WHERE status = 'open'), 0),
        coalesce(sum(amount * probability * 0.01) FILTER (WHERE status = 'open'), 0),
        count(*) FILTER (WHERE status = 'won'),
        coalesce(sum(amount) FILTER (WHERE status = 'won'), 0),
        GROUPING(date_trunc('month', close_date)::date) AS is_total
    FROM sales_opportunity
    WHERE status IN ('open', 'won')
    GROUP BY GROUPING SETS ((date_trunc('month', close_date)::date), ())
"""


def forecast_check(client, url: str, sql) -> tuple[str, None]:
    body = h.get_ok(client, url).json()
    rows = sql()[0]
    groups = [row for row in rows if not row[-1]]
    total = next(row for row in rows if row[-1])
    if len(groups) != len(body["groups"]) or total[1] != body["totals"]["count"]:
        raise SystemExit(f"{url}: the SQL baseline's figures differ ({len(groups)} groups, {total[1]} open)")
    return f"same {len(groups)} months and {total[1]:,} open opportunities as the SQL baseline", None


DASHBOARD_SQL = [
    ("SELECT count(*), count(*) FILTER (WHERE status = 'converted') FROM crm_lead", []),
    (
        """SELECT stage_id, count(*), coalesce(sum(amount), 0),
            count(*) FILTER (WHERE status = 'open'), coalesce(sum(amount) FILTER (WHERE status = 'open'), 0),
            count(*) FILTER (WHERE status = 'won'), coalesce(sum(amount) FILTER (WHERE status = 'won'), 0)
        FROM sales_opportunity GROUP BY GROUPING SETS ((stage_id), ())""",
        [],
    ),
    (
        """SELECT s.id, s.name, p.id, p.name FROM crm_stage s JOIN crm_pipeline p ON p.id = s.pipeline_id
        WHERE p.is_active ORDER BY p.sequence, p.name, p.id, s.sequence, s.id""",
        [],
    ),
]


def dashboard_check(client, url: str, sql) -> tuple[str, None]:
    body = h.get_ok(client, url).json()
    leads = sql()[0][0][0]
    if leads != body["total_leads"]:
        raise SystemExit(f"{url}: the SQL baseline counts {leads} leads, the dashboard {body['total_leads']}")
    return f"same total of {leads:,} leads as the SQL baseline", None


def cases(args) -> list[h.Case]:
    _, token = h.bench_superuser()
    client = h.api_client(token)

    lead_board = f"{API}leads/kanban/?limit={KANBAN_LIMIT}"
    lead_board_sql = board_sql(
        table="crm_lead",
        alias="l",
        columns=h.LEAD_COLUMNS,
        joins=h.LEAD_JOINS,
        value="expected_revenue",
        tags_table="crm_lead_tags",
        tags_column="lead_id",
    )
    opportunity_board = f"{API}opportunities/kanban/?limit={KANBAN_LIMIT}"
    opportunity_board_sql = board_sql(
        table="sales_opportunity",
        alias="x",
        columns=h.OPPORTUNITY_COLUMNS,
        joins=h.OPPORTUNITY_JOINS,
        value="amount",
        tags_table="sales_opportunity_tags",
        tags_column="opportunity_id",
    )
    forecast = f"{API}opportunities/forecast/?group_by=month"
    forecast_sql = h.sql_call(lambda: [(FORECAST_SQL, [])])
    dashboard = f"{API}dashboard/"
    dashboard_sql = h.sql_call(lambda: DASHBOARD_SQL)
    return [
        h.Case(
            name="API lead kanban, 20 cards a column",
            call=h.request_call(client, lead_board),
            sql=lead_board_sql,
            target="p95 ≤ 300 ms",
            target_p95_ms=300,
            sizes=[
                ("limit=5", h.request_call(client, f"{API}leads/kanban/?limit=5")),
                ("limit=100", h.request_call(client, f"{API}leads/kanban/?limit=100")),
            ],
            check=lambda: same_cards(client, lead_board, lead_board_sql),
        ),
        h.Case(
            name="API opportunity kanban, 20 cards a column",
            call=h.request_call(client, opportunity_board),
            sql=opportunity_board_sql,
            target="p95 ≤ 300 ms",
            target_p95_ms=300,
            sizes=[
                ("limit=5", h.request_call(client, f"{API}opportunities/kanban/?limit=5")),
                ("limit=100", h.request_call(client, f"{API}opportunities/kanban/?limit=100")),
            ],
            check=lambda: same_cards(client, opportunity_board, opportunity_board_sql),
        ),
        h.Case(
            name="API forecast by month, all open opportunities",
            call=h.request_call(client, forecast),
            sql=forecast_sql,
            target="p95 ≤ 500 ms",
            target_p95_ms=500,
            sizes=[
                ("group_by=quarter", h.request_call(client, f"{API}opportunities/forecast/?group_by=quarter"))
            ],
            check=lambda: forecast_check(client, forecast, forecast_sql),
        ),
        h.Case(
            name="API dashboard",
            call=h.request_call(client, dashboard),
            sql=dashboard_sql,
            target="p95 ≤ 500 ms",
            target_p95_ms=500,
            check=lambda: dashboard_check(client, dashboard, dashboard_sql),
        ),
    ]


def main(argv=None):
    h.setup_django()
    args = h.arguments("API boards and reports benchmark", argv)
    h.run("API boards and reports", cases(args), args)


if __name__ == "__main__":
    main()
