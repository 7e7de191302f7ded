"""Benchmark: the API's lead list (page 1, a deep page, search) against hand-written SQL and plain DRF.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/crm_bench_full \\
        .venv/bin/python benchmarks/api_lists.py [--runs 30] [--warmup 3] [--only search]

Run against a database seeded with ``manage.py crm_seed`` (full volume: 1,000,000 leads). Cases:

* ``GET /api/v1/crm/leads/?page_size=50`` — page 1 in the default order (newest first);
* a deep page, 500,000 leads in: with ``?cursor=`` (keyset pagination) when the API offers it, else
  ``?page=10001`` (an OFFSET of 500,000 rows) — the note under the table says which;
* ``?search=`` for a contact's name, an email and a company name (substring, any case), with whether
  PostgreSQL's plan reads an index;
* ``GET /api/v1/crm/opportunities/?search=`` for a word of an account's name (a deal's search reads its
  name, its description and its account's name), and for a word found nowhere.

Baselines, in the same run: the hand-written SQL returning the same rows and columns (the page joined
to its pipeline, stage, owner, lost reason and converted opportunity; the tags of its rows; the count
when the response carries one), and a plain DRF ``ModelViewSet`` + ``ModelSerializer(fields="__all__")``
+ ``PageNumberPagination`` (+ DRF's ``SearchFilter`` for search) with no query tuning, mounted at
``/bench/plain/`` by this script only. See benchmarks/_harness.py for how timing works.
"""

import sys
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as h

PAGE_SIZE = 50
DEEP_OFFSET = 500_000  # rows before the deep page; half the leads on a smaller data set


def deep_offset() -> int:
    """500,000, or half the leads if fewer, a multiple of 200 so every page size starts a page there."""
    from crm.models import Lead

    return max(200, min(DEEP_OFFSET, Lead.objects.count() // 2 // 200 * 200))


API = "/api/v1/crm/leads/"
PLAIN = "/bench/plain/leads/"
SEARCH_FIELDS = ("name", "contact_name", "email", "company_name", "phone")  # crm.filters.LeadFilter's

# A substring in any case, in one of the searched columns: one LIKE on the leads' search text (crm 0046:
# the columns upper-cased and joined, with its trigram index), the same rows as UPPER(column) LIKE
# UPPER(pattern) for each column (what Django's icontains emits), which no index serves any more for
# the name, the email and the phone.
SEARCH_WHERE = "l.search_text LIKE UPPER(%s)"


def plain_drf_urlpatterns():
    """A stock DRF list of leads, as the tutorial writes it: no select_related, no prefetch."""
    from django.urls import include, path
    from rest_framework import filters, pagination, routers, serializers, viewsets

    from crm.models import Lead

    class PlainLeadSerializer(serializers.ModelSerializer):
        class Meta:
            model = Lead
            fields = "__all__"

    class PlainPagination(pagination.PageNumberPagination):
        page_size = PAGE_SIZE
        page_size_query_param = "page_size"
        max_page_size = 200

    class PlainLeadViewSet(viewsets.ModelViewSet):
        queryset = Lead.objects.all()
        serializer_class = PlainLeadSerializer
        pagination_class = PlainPagination
        filter_backends = [filters.SearchFilter]
        search_fields = list(SEARCH_FIELDS)

    router = routers.SimpleRouter()
    router.register("leads", PlainLeadViewSet, basename="bench-plain-lead")
    return [path("bench/plain/", include(router.urls))]


def same_rows(client, url: str, sql_call) -> str:
    """The endpoint's rows are the SQL baseline's, in the same order (else the benchmark stops)."""
    api_ids = [row["id"] for row in h.get_ok(client, url).json()["results"]]
    sql_ids = [row[0] for row in sql_call()[0]]
    if api_ids != sql_ids:
        raise SystemExit(f"{url}: the SQL baseline returns other rows ({sql_ids[:5]}… vs {api_ids[:5]}…)")
    return f"same {len(api_ids)} rows as the SQL baseline, in the same order"


def search_plan(term: str) -> tuple[str, bool]:
    """How PostgreSQL finds the leads matching the search's condition (every searched column
    ``icontains`` the term): through indexes, or reading them all."""
    from crm.models import Lead
    from crm.search_indexes import search_condition

    match = search_condition(Lead, SEARCH_FIELDS, term, "default")
    plan, indexes = h.explain(Lead.objects.filter(match).order_by())
    if "Seq Scan on crm_lead" in plan or not indexes:
        return "index used: no, the count reads every lead (Seq Scan on crm_lead)", False
    return f"index used: yes ({', '.join(indexes)})", True


def search_terms() -> list[tuple[str, str]]:
    """Search words taken from the data (the lead at the middle id): a contact's last name, an email's
    local part and the first word of a company's name."""
    from crm.models import Lead

    ids = Lead.objects.order_by("id").values_list("id", flat=True)
    middle = Lead.objects.filter(id__gte=ids.last() // 2).exclude(email="").exclude(company_name="")
    lead = middle.order_by("id").first()
    return [
        ("contact name", lead.contact_name.split()[-1]),
        ("email", lead.email.split("@")[0]),
        ("company", lead.company_name.split()[0]),
    ]


def cursor_paging(client) -> bool:
    """Whether the API pages by ``?cursor=`` (empty for the first page; then no count, a cursor link)."""
    first = h.get_ok(client, f"{API}?page_size={PAGE_SIZE}&cursor=").json()
    return "count" not in first and "cursor=" in (first.get("next") or "")


def deep_page(client, by_cursor: bool) -> tuple[Callable[[int], str], str, tuple]:
    """The deep page's URL for a page size, what kind it is, and the (created_at, id) of the row just
    before it."""
    from crm.models import Lead

    offset = deep_offset()
    boundary = Lead.objects.order_by("-created_at", "-id").values_list("created_at", "id")[offset - 1]
    if by_cursor:
        # The first page of the leads created on or before the boundary's day: its "next" cursor is a
        # position about ``offset`` rows in, which the unfiltered list then pages from.
        created = boundary[0].date().isoformat()
        probe = h.get_ok(client, f"{API}?page_size={PAGE_SIZE}&cursor=&created_before={created}").json()
        cursor = parse_qs(urlsplit(probe["next"]).query)["cursor"][0]
        last = Lead.objects.filter(pk=probe["results"][-1]["id"]).values_list("created_at", "id").get()
        return (
            lambda size: f"{API}?{urlencode({'page_size': size, 'cursor': cursor})}",
            f"?cursor= (keyset), about {offset:,} rows in",
            last,
        )
    note = f"the API has no ?cursor= yet: ?page=N (OFFSET {offset:,}); the SQL baseline is keyset"
    return lambda size: f"{API}?page_size={size}&page={offset // size + 1}", note, boundary


def cases(args) -> list[h.Case]:
    from crm import selectors
    from crm.models import Lead

    user, token = h.bench_superuser()
    client = h.api_client(token)

    def lead_page_sql(where: str = "", params=(), limit: int = PAGE_SIZE):
        def step(results):
            return (
                f"SELECT {h.LEAD_COLUMNS} {h.LEAD_JOINS} {where} "
                "ORDER BY l.created_at DESC, l.id DESC LIMIT %s",
                [*params, limit],
            )

        return step

    def count_sql(where: str = "", params=()):
        return lambda results: (f"SELECT count(*) FROM crm_lead l {where}", list(params))

    page1_url = f"{API}?page_size={PAGE_SIZE}"
    page1_sql = h.sql_chain(lead_page_sql(), h.lead_tags_sql, count_sql())
    result = [
        h.Case(
            name="API lead list, page 1 of 50",
            call=h.request_call(client, page1_url),
            sql=page1_sql,
            plain=h.request_call(client, f"{PLAIN}?page_size={PAGE_SIZE}"),
            target="p95 ≤ 60 ms and ≤ 2× SQL (issue 24)",
            target_p95_ms=60,
            max_sql_ratio=2,
            sizes=[
                ("page_size=10", h.request_call(client, f"{API}?page_size=10")),
                ("page_size=200", h.request_call(client, f"{API}?page_size=200")),
            ],
            parts=[
                ("page", h.sql_chain(lead_page_sql())),
                ("tags", h.sql_chain(lead_page_sql(), h.lead_tags_sql)),
                ("count", h.sql_chain(count_sql())),
            ],
            check=lambda: (same_rows(client, page1_url, page1_sql), None),
        )
    ]

    by_cursor = cursor_paging(client)
    page1 = "API lead list, page 1 of 50"
    if by_cursor:
        page1 = "API lead list, page 1 of 50 by cursor"
        cursor_url = f"{API}?page_size={PAGE_SIZE}&cursor="
        cursor_sql = h.sql_chain(lead_page_sql(), h.lead_tags_sql)
        result.append(
            h.Case(
                name=page1,
                call=h.request_call(client, cursor_url),
                sql=cursor_sql,
                plain=h.request_call(client, f"{PLAIN}?page_size={PAGE_SIZE}"),
                target="p95 ≤ 60 ms and ≤ 2× SQL (issue 24)",
                target_p95_ms=60,
                max_sql_ratio=2,
                sizes=[
                    ("page_size=10", h.request_call(client, f"{API}?page_size=10&cursor=")),
                    ("page_size=200", h.request_call(client, f"{API}?page_size=200&cursor=")),
                ],
                check=lambda: (same_rows(client, cursor_url, cursor_sql), None),
                notes=["the first page by cursor has no count, nor has its SQL baseline"],
            )
        )
    deep_url_for, deep_kind, (before_created, before_id) = deep_page(client, by_cursor)
    deep_url = deep_url_for(PAGE_SIZE)
    keyset = "WHERE (l.created_at, l.id) < (%s, %s)"
    deep_steps = [lead_page_sql(keyset, (before_created, before_id)), h.lead_tags_sql]
    if not by_cursor:
        deep_steps.append(count_sql())
    deep_sql = h.sql_chain(*deep_steps)
    plain_page = deep_offset() // PAGE_SIZE + 1
    result.append(
        h.Case(
            name="API lead list, deep page",
            call=h.request_call(client, deep_url),
            sql=deep_sql,
            plain=h.request_call(client, f"{PLAIN}?page_size={PAGE_SIZE}&page={plain_page}"),
            target=f"p95 ≤ 1.5× “{page1}”" + (", ≤ 60 ms and ≤ 2× SQL (issue 24)" if by_cursor else ""),
            target_p95_ms=lambda earlier: min(1.5 * earlier[page1].ours.p95, 60 if by_cursor else 1e9),
            max_sql_ratio=2 if by_cursor else None,
            sizes=[
                ("page_size=10", h.request_call(client, deep_url_for(10))),
                ("page_size=200", h.request_call(client, deep_url_for(200))),
            ],
            check=lambda: (same_rows(client, deep_url, deep_sql), None),
            notes=[f"deep page: {deep_kind}; plain DRF: ?page={plain_page}"],
        )
    )

    for label, term in search_terms():
        pattern = f"%{term}%"
        where = f"WHERE {SEARCH_WHERE}"
        params = [pattern]
        query = urlencode({"search": term, "page_size": PAGE_SIZE})
        url = f"{API}?{query}"
        search_sql = h.sql_chain(lead_page_sql(where, params), h.lead_tags_sql, count_sql(where, params))
        matches = selectors.lead_list(user=user, filters={"search": term}).count()
        result.append(
            h.Case(
                name=f"API search, {label} “{term}”",
                call=h.request_call(client, url),
                sql=search_sql,
                plain=h.request_call(client, f"{PLAIN}?{query}"),
                target="p95 ≤ 150 ms, index used",
                target_p95_ms=150,
                sizes=[
                    ("page_size=10", h.request_call(client, url.replace("page_size=50", "page_size=10"))),
                    ("page_size=200", h.request_call(client, url.replace("page_size=50", "page_size=200"))),
                ],
                parts=[
                    ("page", h.sql_chain(lead_page_sql(where, params))),
                    ("count", h.sql_chain(count_sql(where, params))),
                ],
                check=lambda term=term, url=url, search_sql=search_sql: (
                    lambda plan: (f"{same_rows(client, url, search_sql)}; {plan[0]}", plan[1])
                )(search_plan(term)),
                notes=[f"{matches:,} of {Lead.objects.count():,} leads match"],
            )
        )
    result.extend(deal_search_cases(client))
    return result


DEALS = "/api/v1/crm/opportunities/"
# A deal's search (sales.filters.OpportunityFilter): its name, its description or its account's name,
# written by hand: the ids of the accounts whose name matches first, then the deals.
ACCOUNTS_NAMED = "SELECT coalesce(array_agg(id), '{}') FROM crm_account WHERE UPPER(name) LIKE UPPER(%s)"
DEAL_SEARCH_WHERE = (
    "WHERE UPPER(o.name) LIKE UPPER(%s) OR UPPER(o.description) LIKE UPPER(%s) OR o.account_id = ANY(%s)"
)


def deal_search_terms() -> list[tuple[str, str]]:
    """A word of the account at the middle id's name (a surname, in the seeded names), and a word that
    no deal or account holds."""
    from crm.models import Account

    ids = Account.objects.order_by("id").values_list("id", flat=True)
    account = Account.objects.filter(id__gte=ids.last() // 2).order_by("id").first()
    word = account.name.replace("-", " ").replace(",", " ").split()[0]
    return [("an account's name", word), ("a word found nowhere", "zqxjv")]


def deal_search_cases(client) -> list[h.Case]:
    from sales.models import Opportunity

    result = []
    for label, term in deal_search_terms():
        pattern = f"%{term}%"
        url = f"{DEALS}?{urlencode({'search': term, 'page_size': PAGE_SIZE})}"

        def accounts(results, pattern=pattern):
            return ACCOUNTS_NAMED, [pattern]

        def page(results, pattern=pattern):
            return (
                f"SELECT o.id, o.name, o.amount, o.stage_id, o.account_id, o.owner_id, o.created_at "
                f"FROM sales_opportunity o {DEAL_SEARCH_WHERE} "
                "ORDER BY o.created_at DESC, o.id DESC LIMIT %s",
                [pattern, pattern, results[0][0][0], PAGE_SIZE],
            )

        def count(results, pattern=pattern):
            params = [pattern, pattern, results[0][0][0]]
            return f"SELECT count(*) FROM sales_opportunity o {DEAL_SEARCH_WHERE}", params

        steps = h.sql_chain(accounts, page, count)

        def search_sql(steps=steps):
            return steps()[1:]  # the page's rows first, as same_rows reads them

        matches = h.get_ok(client, url).json()["count"]
        result.append(
            h.Case(
                name=f"API deal search, {label} “{term}”",
                call=h.request_call(client, url),
                sql=search_sql,
                target="p95 ≤ 150 ms",
                target_p95_ms=150,
                sizes=[("page_size=10", h.request_call(client, url.replace("page_size=50", "page_size=10")))],
                check=lambda url=url, search_sql=search_sql: (same_rows(client, url, search_sql), None),
                notes=[f"{matches:,} of {Opportunity.objects.count():,} deals match"],
            )
        )
    return result


def main(argv=None):
    h.setup_django(extra_urlpatterns=plain_drf_urlpatterns)
    args = h.arguments("API lead list benchmark", argv)
    h.run("API lead lists", cases(args), args)


if __name__ == "__main__":
    main()
