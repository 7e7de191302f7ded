"""The account hierarchy as it was before the speed-up (sales/hierarchy.py and the API's
hierarchy_data at 67243c4), kept for benchmarks/sales_operations.py to measure in the same run as the
current code: mounted at a benchmark-only URL, behind the same authentication and permissions."""

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.db import connection
from django.db.models import Count, Q, Sum
from django.db.models.expressions import RawSQL
from rest_framework.response import Response

from crm.actors import Actor
from crm.api.viewsets import requires
from crm.models import Account
from sales.currencies import conversion_note, converted
from sales.models import OpportunityStatus, company_currency
from sales.selectors import opportunity_visible_to

CENT = Decimal("0.01")
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


def hierarchy_data(tree: dict) -> dict:
    """The tree as HierarchySerializer documents it, built directly: a tree of thousands of accounts
    through a serializer per node cost ten times the queries' time."""

    def rollup(figures: dict) -> dict:
        return {
            "open_count": figures["open_count"],
            "open_value": str(figures["open_value"]),
            "won_count": figures["won_count"],
            "won_value": str(figures["won_value"]),
            "accounts": figures["accounts"],
        }

    return {
        "account_id": tree["account_id"],
        "account_name": tree["account_name"],
        "parent_id": tree["parent_id"],
        "currency": tree["currency"],
        "conversion": tree["conversion"],
        "rollup": rollup(tree["rollup"]),
        "nodes": [
            {
                "id": node["id"],
                "name": node["name"],
                "parent_id": node["parent_id"],
                "depth": node["depth"],
                "child_count": node["child_count"],
                "open_count": node["open_count"],
                "open_value": str(node["open_value"]),
                "won_count": node["won_count"],
                "won_value": str(node["won_value"]),
                "rollup": rollup(node["rollup"]),
            }
            for node in tree["nodes"]
        ],
    }


def urlpatterns() -> list:
    """``bench/hierarchy-before/<id>/``: the account viewset's own object lookup (as the real action's),
    then the old selector and rendering."""
    from django.urls import path

    from crm.api.views import AccountViewSet

    class HierarchyBeforeViewSet(AccountViewSet):
        def hierarchy_before(self, request, pk=None):
            account = self.get_object()
            return Response(hierarchy_data(account_hierarchy(user=request.user, account=account)))

    view = HierarchyBeforeViewSet.as_view(
        {"get": "hierarchy_before"},
        permission_classes=[requires("crm.view_account", "sales.view_opportunity")],
        filter_backends=[],
    )
    return [path("bench/hierarchy-before/<int:pk>/", view)]
