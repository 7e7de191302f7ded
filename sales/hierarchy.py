"""The account hierarchy: an account's tree of subsidiaries with each one's open and won value and the
roll-up of each subtree.

Two queries whatever the size of the tree: the tree itself by a recursive CTE (PostgreSQL and SQLite
both run WITH RECURSIVE), then the deals of every account in it grouped by account, counting only the
deals the reader sees. The roll-ups are added up in Python, bottom-up, in one pass; the API renders the
nodes as they are built (``hierarchy_json``), with no second copy of the tree.
"""

import json
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
    # PostgreSQL gives a Decimal with the rate's places, SQLite a float: cents, half up, once per figure.
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


def account_hierarchy(*, user: Actor, account: Account) -> dict[str, Any]:
    """``account`` and its descendants, depth first (children by name): each with its own figures
    (open and won deals: count and value in the company currency) and its subtree's roll-up.

    Each account's own values are rounded to cents once; a roll-up is the sum of the figures shown
    for its accounts (so a group's total is what its rows add up to). The nodes are plain dicts in the
    shape the API documents (HierarchySerializer): ``hierarchy_json`` renders them as they are.
    """
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
        deal_rows = cursor.fetchall()

    zero = Decimal("0.00")
    # Per account: [open_count, open_value, won_count, won_value] (own), then the same and the
    # number of accounts for the subtree, filled bottom-up.
    own: dict[int, tuple] = {
        pk: (open_count or 0, _money(open_value or 0), won_count or 0, _money(won_value or 0))
        for pk, open_count, open_value, won_count, won_value in deal_rows
    }
    nothing = (0, zero, 0, zero)
    root = account.pk
    totals: dict[int, list] = {}
    children: dict[int, list] = {}
    names: dict[int, str] = {}
    for pk, name, parent_id, _depth in rows:
        figures = own.get(pk, nothing)
        totals[pk] = [figures[0], figures[1], figures[2], figures[3], 1]
        names[pk] = name
        if pk != root:
            children.setdefault(parent_id, []).append(pk)
    # The rows come by depth: in reverse, each subtree is complete before it is added to its parent's.
    for pk, _name, parent_id, _depth in reversed(rows):
        if pk != root:
            subtree, parent = totals[pk], totals[parent_id]
            parent[0] += subtree[0]
            parent[1] += subtree[1]
            parent[2] += subtree[2]
            parent[3] += subtree[3]
            parent[4] += subtree[4]
    info = {pk: (parent_id, depth) for pk, _name, parent_id, depth in rows}
    ordered = []
    append = ordered.append
    stack = [root]
    while stack:
        pk = stack.pop()
        kids = children.get(pk, ())
        figures, total = own.get(pk, nothing), totals[pk]
        parent_id, depth = info[pk]
        append(
            {
                "id": pk,
                "name": names[pk],
                "parent_id": parent_id,
                "depth": depth,
                "child_count": len(kids),
                "open_count": figures[0],
                "open_value": figures[1],
                "won_count": figures[2],
                "won_value": figures[3],
                "rollup": {
                    "open_count": total[0],
                    "open_value": total[1],
                    "won_count": total[2],
                    "won_value": total[3],
                    "accounts": total[4],
                },
            }
        )
        if len(kids) > 1:
            kids = sorted(kids, key=lambda c: (names[c].lower(), c))
        stack.extend(reversed(kids))
    return {
        "account_id": account.pk,
        "account_name": account.name,
        "parent_id": account.parent_id,
        "currency": company_currency(),
        "conversion": conversion_note(),
        "rollup": ordered[0]["rollup"],
        "nodes": ordered,
    }


def hierarchy_json(tree: dict[str, Any]) -> bytes:
    """The tree as the API answers it: JSON with every amount a string of cents ("1250.00"), as
    HierarchySerializer documents. The encoder's C path writes it; only the amounts call back (str)."""
    return json.dumps(tree, default=str, ensure_ascii=False, separators=(",", ":")).encode()
