"""Benchmark: the performance board and the account hierarchy against hand-written SQL.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/crm_bench_full \\
        .venv/bin/python benchmarks/sales_operations.py [--runs 30] [--warmup 3] [--only hierarchy]

Run against a database seeded with ``manage.py crm_seed`` (full volume: 200,000 opportunities,
2,000,000 activities, 50 sales users, 100,000 accounts). The seeder makes no teams, quotas, rates or
account trees, so the first run adds them (idempotently, marked by their names), as an admin would:

* 5 teams "Bench team 1..5" of 10 seeded users each, managed by 5 more users; a quarterly quota for
  every member and team in every quarter of the seeded two years;
* a EUR rate each month and one deal in ten in EUR, so the conversion takes its costly branch;
* two trees of 5,000 descendants under "Bench tree wide" (each account has 5 subsidiaries: 6 levels)
  and "Bench tree deep" (a chain 5,000 levels deep), made of seeded accounts and their deals.

Cases:

* ``GET /api/v1/crm/performance/?period=quarter`` as a superuser (every team and member) and as a
  manager of one team, for the last full quarter of the data;
* ``GET /api/v1/crm/accounts/{id}/hierarchy/`` of each tree's root, and the same tree through the code
  as it was before its speed-up (``_hierarchy_before.py``, at a benchmark-only URL), in the same run.

The SQL baselines return the same figures: the board's deals grouped by owner (with the conversion),
its activities grouped by owner and its quotas; the hierarchy's recursive CTE and its deals grouped by
account. See benchmarks/_harness.py for how timing works.
"""

import datetime
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as h

API = "/api/v1/crm/"
TREE_SIZE = 5000


def prepare() -> dict:
    """Teams, quotas, rates, foreign-currency deals and the two trees (once)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group, Permission
    from django.db import connection, transaction
    from django.db.models import Max, Min

    from crm.models import Account, SalesTeam
    from sales.models import ExchangeRate, Opportunity, Quota, period_bounds

    User = get_user_model()
    bounds = Opportunity.objects.aggregate(first=Min("close_date"), last=Max("close_date"))
    with transaction.atomic():
        if not SalesTeam.objects.filter(name="Bench team 1").exists():
            users = list(User.objects.filter(is_superuser=False).order_by("pk")[:55])
            # A small seed (the scripts' test) has fewer users: the rest are made here.
            users += [User.objects.create(username=f"bench-user-{n}") for n in range(len(users), 55)]
            for index in range(5):
                team = SalesTeam.objects.create(name=f"Bench team {index + 1}", manager=users[50 + index])
                team.members.add(*users[index * 10 : index * 10 + 10])
            start = period_bounds("quarter", bounds["first"])[0]
            quotas = []
            while start <= bounds["last"]:
                end = period_bounds("quarter", start)[1]
                for team in SalesTeam.objects.filter(name__startswith="Bench team"):
                    quotas.append(
                        Quota(
                            team=team,
                            period="quarter",
                            period_start=start,
                            period_end=end,
                            target_amount=10**6,
                        )
                    )
                    for member in team.members.all():
                        quotas.append(
                            Quota(
                                user=member,
                                period="quarter",
                                period_start=start,
                                period_end=end,
                                target_count=20,
                            )
                        )
                start = end + datetime.timedelta(days=1)
            Quota.objects.bulk_create(quotas)
            month = period_bounds("month", bounds["first"] - datetime.timedelta(days=31))[0]
            rates = []
            while month <= bounds["last"]:
                rates.append(ExchangeRate(currency="EUR", date=month, rate="1.08"))
                month = period_bounds("month", month)[1] + datetime.timedelta(days=1)
            ExchangeRate.objects.bulk_create(rates)
            with connection.cursor() as cursor:
                cursor.execute("UPDATE sales_opportunity SET currency = 'EUR' WHERE id %% %s = 0", [10])
        if not Account.objects.filter(name="Bench tree wide").exists():
            ids = list(
                # Accounts in no tree yet (the seeder gives some a parent): the trees are exactly these.
                Account.objects.filter(parent__isnull=True, children__isnull=True)
                .order_by("pk")
                .values_list("pk", flat=True)[: 2 * (TREE_SIZE + 1)]
            )
            # A small seed (the scripts' test) makes smaller trees.
            half = len(ids) // 2
            wide, deep = ids[:half], ids[half:]
            Account.objects.filter(pk=wide[0]).update(name="Bench tree wide")
            Account.objects.filter(pk=deep[0]).update(name="Bench tree deep")
            with connection.cursor() as cursor:
                # Each account's parent: the wide tree's (i - 1) // 5, the deep chain's i - 1.
                cursor.executemany(
                    "UPDATE crm_account SET parent_id = %s WHERE id = %s",
                    [(wide[(i - 1) // 5], wide[i]) for i in range(1, len(wide))]
                    + [(deep[i - 1], deep[i]) for i in range(1, len(deep))],
                )
    # The last full quarter of won deals (open deals' close dates run into the future).
    last_won = Opportunity.objects.filter(status="won").aggregate(last=Max("close_date"))["last"]
    last_quarter = period_bounds("quarter", last_won)[0] - datetime.timedelta(days=1)
    team = SalesTeam.objects.get(name="Bench team 1")
    # The managers hold the Sales Manager role (the users made for a small seed hold none). A database
    # without the roles (a test database an earlier test emptied) gets the role with what the board
    # and the hierarchy read.
    role, made = Group.objects.get_or_create(name="Sales Manager")
    if made:
        role.permissions.set(
            Permission.objects.filter(
                content_type__app_label__in=("crm", "sales"),
                codename__in=("view_opportunity", "view_account", "view_quota"),
            )
        )
    role.user_set.add(
        *SalesTeam.objects.filter(name__startswith="Bench team").values_list("manager", flat=True)
    )
    return {
        "day": last_quarter,
        "manager": team.manager,
        "wide": Account.objects.get(name="Bench tree wide").pk,
        "deep": Account.objects.get(name="Bench tree deep").pk,
    }


CONVERTED = """CASE WHEN o.currency = 'USD' THEN o.amount ELSE o.amount * (
    SELECT r.rate FROM sales_exchangerate r WHERE r.currency = o.currency AND r.date <= o.close_date
    ORDER BY r.date DESC LIMIT 1) END"""


def board_sql(day: datetime.date, member_sql: str, member_params: list):
    from sales.models import period_bounds

    start, end = period_bounds("quarter", day)
    since = datetime.datetime.combine(start, datetime.time.min, tzinfo=datetime.UTC)
    until = datetime.datetime.combine(
        end + datetime.timedelta(days=1), datetime.time.min, tzinfo=datetime.UTC
    )
    return lambda: [
        (member_sql, member_params),
        (
            f"""SELECT o.owner_id, count(*) FILTER (WHERE o.status = 'won'),
                count(*) FILTER (WHERE o.status = 'lost'),
                sum({CONVERTED}) FILTER (WHERE o.status = 'won'),
                sum(o.closed_at - o.created_at) FILTER (WHERE o.status = 'won')
            FROM sales_opportunity o
            WHERE o.owner_id IN (SELECT user_id FROM ({member_sql}) m) AND o.status IN ('won', 'lost')
                AND o.close_date BETWEEN %s AND %s
            GROUP BY o.owner_id""",
            [*member_params, start, end],
        ),
        (
            f"""SELECT owner_id, count(*) FROM activities_activity
            WHERE owner_id IN (SELECT user_id FROM ({member_sql}) m) AND created_at >= %s AND created_at < %s
            GROUP BY owner_id""",
            [*member_params, since, until],
        ),
        (
            "SELECT user_id, team_id, target_amount, target_count FROM sales_quota "
            "WHERE period = 'quarter' AND period_start = %s",
            [start],
        ),
    ]


ALL_MEMBERS = (
    "SELECT t.id AS team_id, tm.user_id FROM sales_salesteam t "
    "JOIN sales_salesteam_members tm ON tm.salesteam_id = t.id WHERE t.is_active"
)
TEAM_MEMBERS = ALL_MEMBERS + " AND t.manager_id = %s"


def hierarchy_sql(root: int):
    tree = (
        "WITH RECURSIVE tree(id, depth) AS (SELECT id, 0 FROM crm_account WHERE id = %s UNION ALL "
        "SELECT c.id, t.depth + 1 FROM crm_account c JOIN tree t ON c.parent_id = t.id)"
    )
    return lambda: [
        (
            f"{tree} SELECT a.id, a.name, a.parent_id, tree.depth "
            "FROM tree JOIN crm_account a ON a.id = tree.id",
            [root],
        ),
        (
            f"""{tree} SELECT o.account_id, count(*) FILTER (WHERE o.status = 'open'),
                sum({CONVERTED}) FILTER (WHERE o.status = 'open'),
                count(*) FILTER (WHERE o.status = 'won'), sum({CONVERTED}) FILTER (WHERE o.status = 'won')
            FROM sales_opportunity o WHERE o.account_id IN (SELECT id FROM tree) GROUP BY o.account_id""",
            [root],
        ),
    ]


def board_check(client, url: str, sql) -> tuple[str, None]:
    body = h.get_ok(client, url).json()
    rows = sql()
    won = sum(row[1] for row in rows[1])
    ours = sum(team["won_count"] for team in body["teams"])
    if won != ours:
        raise SystemExit(f"{url}: the SQL baseline counts {won} deals won, the board {ours}")
    return (
        f"{len(body['users'])} users, {len(body['teams'])} teams, {won:,} deals won as the SQL baseline",
        None,
    )


def hierarchy_check(client, url: str, sql) -> tuple[str, None]:
    body = h.get_ok(client, url).json()
    rows = sql()
    deals = sum(row[1] + row[3] for row in rows[1])
    ours = body["rollup"]["open_count"] + body["rollup"]["won_count"]
    if deals != ours or len(rows[0]) != len(body["nodes"]):
        raise SystemExit(f"{url}: the SQL baseline counts {deals} deals, the API {ours}")
    return f"{len(body['nodes']) - 1:,} descendants, {deals:,} open and won deals as the SQL baseline", None


def cases(args) -> list[h.Case]:
    from rest_framework.authtoken.models import Token

    setup = prepare()
    _, token = h.bench_superuser()
    client = h.api_client(token)
    manager_token, _ = Token.objects.get_or_create(user=setup["manager"])
    manager = h.api_client(manager_token.key)
    board = f"{API}performance/?period=quarter&date={setup['day']:%Y-%m-%d}"
    everyone_sql = h.sql_call(board_sql(setup["day"], ALL_MEMBERS, []))
    team_sql = h.sql_call(board_sql(setup["day"], TEAM_MEMBERS, [setup["manager"].pk]))
    result = [
        h.Case(
            name="API performance board, a quarter, every team (superuser)",
            call=h.request_call(client, board),
            sql=everyone_sql,
            target="p95 ≤ 300 ms",
            target_p95_ms=300,
            sizes=[("period=year", h.request_call(client, board.replace("quarter", "year")))],
            check=lambda: board_check(client, board, everyone_sql),
        ),
        h.Case(
            name="API performance board, a quarter, one manager's team",
            call=h.request_call(manager, board),
            sql=team_sql,
            target="p95 ≤ 300 ms",
            target_p95_ms=300,
            check=lambda: board_check(manager, board, team_sql),
        ),
    ]
    for shape in ("wide", "deep"):
        url = f"{API}accounts/{setup[shape]}/hierarchy/"
        sql = h.sql_call(hierarchy_sql(setup[shape]))
        before = f"/bench/hierarchy-before/{setup[shape]}/"
        result.append(
            h.Case(
                name=f"API account hierarchy, {TREE_SIZE:,} descendants ({shape}), before (67243c4)",
                call=h.request_call(client, before),
                sql=sql,
                target="p95 ≤ 200 ms",
                target_p95_ms=200,
                check=lambda before=before, sql=sql: hierarchy_check(client, before, sql),
            )
        )
        result.append(
            h.Case(
                name=f"API account hierarchy, {TREE_SIZE:,} descendants ({shape})",
                call=h.request_call(client, url),
                sql=sql,
                target="p95 ≤ 200 ms",
                target_p95_ms=200,
                check=lambda url=url, sql=sql: hierarchy_check(client, url, sql),
            )
        )
    return result


def before_urlpatterns() -> list:
    """The hierarchy's code before its speed-up, at a benchmark-only URL: measured in the same run."""
    import _hierarchy_before

    return _hierarchy_before.urlpatterns()


def main(argv=None):
    h.setup_django(extra_urlpatterns=before_urlpatterns)
    args = h.arguments("Performance board and account hierarchy benchmark", argv)
    h.run("Performance board and account hierarchy", cases(args), args)


if __name__ == "__main__":
    main()
