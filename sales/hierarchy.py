"""The account hierarchy: an account's tree of subsidiaries with each one's open and won value and the
roll-up of each subtree.

Two queries whatever the size of the tree: the tree itself by a recursive CTE (PostgreSQL and SQLite
both run WITH RECURSIVE), then the deals of every account in it grouped by account, counting only the
deals the reader sees. The roll-ups are added up in Python, bottom-up, in one pass.
"""

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.db import connection
from django.db.models import Count, Q, Sum
from django.db.models.expressions import RawSQL

from crm.actors import Actor
from crm.models import Account
from sales.currencies import conversion_note, converted
from sales.models import OpportunityStatus, company_currency
from sales.selectors import opportunity_visible_to

CENT = Decimal("0.01")
# A guard, not a limit anyone meets: the services refuse cycles, and a tree this deep is a data error.
MAX_DEPTH = 10_000


def _tree_sql() -> str:
    quote = connection.ops.quote_name
    table = quote(Account._meta.db_table)
    return (
        f"WITH RECURSIVE tree(id, depth) AS ("
        f" SELECT id, 0 FROM {table} WHERE id = %s"
        f" UNION ALL"
        f" SELECT child.id, tree.depth + 1 FROM {table} child"
        f" JOIN tree ON child.{quote('parent_id')} = tree.id"
        f" WHERE tree.depth < {MAX_DEPTH})"
    )


def _money(value) -> Decimal:
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


def account_hierarchy(*, user: Actor, account: Account) -> dict[str, Any]:
    """``account`` and its descendants, depth first (children by name): each with its own figures
    (open and won deals: count and value in the company currency) and its subtree's roll-up."""
    tree_sql = _tree_sql()
    quote = connection.ops.quote_name
    is_open, is_won = Q(status=OpportunityStatus.OPEN), Q(status=OpportunityStatus.WON)
    amount = converted()
    deals = (
        opportunity_visible_to(user)
        .filter(account_id__in=RawSQL(f"{tree_sql} SELECT id FROM tree", [account.pk]))
        .order_by()
        .values_list("account_id")
        .annotate(
            open_count=Count("pk", filter=is_open),
            open_value=Sum(amount, filter=is_open),
            won_count=Count("pk", filter=is_won),
            won_value=Sum(amount, filter=is_won),
        )
    )
    # Built by the ORM (visibility, conversion), read as plain rows: thousands of accounts through
    # the ORM's per-value converters cost more than the query.
    deals_sql, deals_params = deals.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(
            f"{tree_sql} SELECT a.id, a.{quote('name')}, a.{quote('parent_id')}, tree.depth"
            f" FROM tree JOIN {quote(Account._meta.db_table)} a ON a.id = tree.id ORDER BY tree.depth",
            [account.pk],
        )
        rows = cursor.fetchall()
        cursor.execute(deals_sql, deals_params)
        own = {row[0]: row[1:] for row in cursor.fetchall()}

    root = account.pk
    zero = Decimal("0")
    nodes: dict[int, dict[str, Any]] = {}
    rollups: dict[int, list] = {}  # [open_count, open_value, won_count, won_value, accounts]
    children: dict[int, list[int]] = {}
    for pk, name, parent_id, depth in rows:
        open_count, open_value, won_count, won_value = own.get(pk, (0, zero, 0, zero))
        figures = [open_count or 0, open_value or zero, won_count or 0, won_value or zero]
        nodes[pk] = {"id": pk, "name": name, "parent_id": parent_id, "depth": depth, "_own": figures}
        rollups[pk] = [*figures, 1]
        if pk != root:
            children.setdefault(parent_id, []).append(pk)
    # Roll-ups bottom-up: the rows come by depth, so in reverse each subtree is complete before it is
    # added to its parent's.
    for pk, _name, parent_id, _depth in reversed(rows):
        if pk != root:
            subtree, parent = rollups[pk], rollups[parent_id]
            for index in range(5):
                parent[index] += subtree[index]
    ordered = []
    stack = [root]
    while stack:
        pk = stack.pop()
        node = nodes[pk]
        kids = children.get(pk, ())
        own_figures, total = node.pop("_own"), rollups[pk]
        node.update(
            child_count=len(kids),
            open_count=own_figures[0],
            open_value=_money(own_figures[1]),
            won_count=own_figures[2],
            won_value=_money(own_figures[3]),
            rollup={
                "open_count": total[0],
                "open_value": _money(total[1]),
                "won_count": total[2],
                "won_value": _money(total[3]),
                "accounts": total[4],
            },
        )
        ordered.append(node)
        if len(kids) > 1:
            kids = sorted(kids, key=lambda c: (nodes[c]["name"].lower(), c))
        stack.extend(reversed(kids))
    return {
        "account_id": account.pk,
        "account_name": account.name,
        "parent_id": account.parent_id,
        "currency": company_currency(),
        "conversion": conversion_note(),
        "rollup": nodes[root]["rollup"],
        "nodes": ordered,
    }
