"""Global search: one box in the admin's header across the kinds of record other apps register.

Each kind is a ``SearchSource``: the model, the columns searched (each with a trigram index on
PostgreSQL, crm.search_indexes, so ``icontains`` is a bitmap scan rather than a table scan; SQLite
scans), how a hit reads, and its admin page. Sources read through ``record_visible_to``: a record the
user may not see is never found, nor counted. crm registers leads, contacts and accounts; sales
registers deals; tickets and articles join the same way (``register_search_source``).
"""

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import reduce
from operator import or_

from django.db import connections
from django.db.models import Model, Q, QuerySet
from django.urls import NoReverseMatch, reverse

from crm.actors import Actor
from crm.models import Account, Contact, Lead
from crm.selectors import record_visible_to

SEARCH_MIN_LENGTH = 2
SEARCH_MAX_LENGTH = 100
SEARCH_PER_KIND = 5


@dataclass(frozen=True)
class SearchSource:
    key: str
    label: str
    model: type[Model]
    fields: tuple[str, ...]
    # (record) -> the line under the title ("Acme · ann@acme.test").
    subtitle: Callable[[Model], str] = lambda record: ""
    # Columns loaded with the hits (the title, the subtitle's), fewer than the whole row.
    select_related: tuple[str, ...] = ()
    ordering: tuple[str, ...] = ("-pk",)
    # The permission that lets a user search this kind ("crm.view_lead").
    permission: str = ""


@dataclass
class SearchHit:
    title: str
    subtitle: str
    url: str


@dataclass
class SearchGroup:
    key: str
    label: str
    hits: list[SearchHit] = field(default_factory=list)
    more: bool = False
    list_url: str = ""


_sources: dict[str, SearchSource] = {}


def register_search_source(source: SearchSource) -> None:
    """Add (or replace) a kind of record in the global search; shown in registration order."""
    _sources[source.key] = source


def search_sources() -> list[SearchSource]:
    return list(_sources.values())


def search_matches(source: SearchSource, user: Actor, term: str) -> QuerySet:
    """The records of ``source`` that ``user`` sees and whose searched columns contain ``term``."""
    condition = reduce(or_, (Q(**{f"{name}__icontains": term}) for name in source.fields))
    return record_visible_to(source.model, user).filter(condition)


# A term the planner expects to match at least this share of a table's rows is read from the table in
# its order, which meets the first few matches within its first pages and stops (a three-letter fragment:
# a few ms); a rarer one through the trigram indexes (a materialized CTE), since that read would go
# through every row to find none. A share, not a number of rows: the planner's estimate of a long
# pattern grows with the table (an email address in 5,000,000 leads: 2,421 expected, 52 found), and
# the read in table order then went through 300,000 rows for its first six (0.3-1 s).
COMMON_TERM_SHARE = 0.001
# Where the table's size is unknown (never analysed): the matches expected that make a term common.
COMMON_TERM_ROWS = 1000


def common_term(estimate: float, table_rows: float) -> bool:
    """Whether a term the planner expects in ``estimate`` rows of a table of ``table_rows`` (0 or less:
    unknown, as for a table never analysed) is read in table order rather than through the trigram
    indexes."""
    if table_rows <= 0:
        return estimate >= COMMON_TERM_ROWS
    return estimate >= COMMON_TERM_SHARE * table_rows


def table_rows(models: list[type[Model]], using: str) -> dict[type[Model], float]:
    """The planner's count of each model's rows (``pg_class.reltuples``: -1 never analysed), one query."""
    tables = {model._meta.db_table: model for model in models}
    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT relname, reltuples FROM pg_class WHERE oid = ANY(%s::regclass[])", [list(tables)]
        )
        return {tables[name]: rows for name, rows in cursor.fetchall()}


def first_match_ids(matches: QuerySet, count: int, rows: float) -> list:
    """The ids of up to ``count`` of ``matches``, in no order.

    On PostgreSQL the path is chosen from the planner's estimate of the matches (``EXPLAIN``, which
    applies the pattern to the column's statistics) against the table's rows (``rows``: ``table_rows``;
    0 or less when unknown): a common term is read with the LIMIT, a rare one through the trigram indexes
    (``common_term``). The latter is a materialized CTE: planned with the LIMIT in sight, the planner
    would read the table from the start hoping to meet a few matches soon, which for a rare term is every
    row (300,000 contacts: 100 ms quiet, seconds under load); the CTE is still read lazily, so it too
    stops at ``count``. One path for every term was 1 s or more for the other kind of term.
    """
    ids = matches.order_by().values_list("pk", flat=True)
    connection = connections[ids.db]
    if connection.vendor != "postgresql":
        return list(ids[:count])
    sql, params = ids.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
        estimate = (json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]["Plan Rows"]
        if common_term(estimate, rows):
            cursor.execute(f"{sql} LIMIT %s", [*params, count])
        else:
            cursor.execute(
                f"WITH matches AS MATERIALIZED ({sql}) SELECT * FROM matches LIMIT %s", [*params, count]
            )
        return [row[0] for row in cursor.fetchall()]


def _admin_url(model: type[Model], name: str, *args) -> str:
    opts = model._meta
    try:
        return reverse(f"admin:{opts.app_label}_{opts.model_name}_{name}", args=args)
    except NoReverseMatch:
        return ""


def global_search(*, user: Actor, term: str, per_kind: int = SEARCH_PER_KIND) -> list[SearchGroup]:
    """The first ``per_kind`` matches of each kind the user may view, grouped; empty groups left out.

    Two queries a kind (three on PostgreSQL, and one for the tables' sizes): the matching ids
    (unordered, by the path the term's estimate chooses, stopping at ``per_kind + 1``:
    ``first_match_ids``), then those records with what their lines show.
    """
    term = " ".join((term or "").replace("\x00", "").split())[:SEARCH_MAX_LENGTH]
    if len(term) < SEARCH_MIN_LENGTH:
        return []
    groups = []
    sources = [s for s in _sources.values() if not s.permission or user.has_perm(s.permission)]
    sizes = None
    for source in sources:
        matches = search_matches(source, user, term)
        if sizes is None:
            vendor = connections[matches.db].vendor
            sizes = table_rows([s.model for s in sources], matches.db) if vendor == "postgresql" else {}
        ids = first_match_ids(matches, per_kind + 1, sizes.get(source.model, -1))
        if not ids:
            continue
        records = (
            source.model._default_manager.filter(pk__in=ids[:per_kind])
            .select_related(*source.select_related)
            .order_by(*source.ordering)
        )
        group = SearchGroup(
            key=source.key,
            label=source.label,
            more=len(ids) > per_kind,
            list_url=_admin_url(source.model, "changelist"),
        )
        for record in records:
            group.hits.append(
                SearchHit(
                    title=str(record),
                    subtitle=source.subtitle(record),
                    url=_admin_url(source.model, "change", record.pk),
                )
            )
        groups.append(group)
    return groups


def _join(*parts) -> str:
    return " · ".join(str(part) for part in parts if part)


register_search_source(
    SearchSource(
        key="leads",
        label="Leads",
        model=Lead,
        fields=("name", "contact_name", "email", "company_name", "phone"),
        subtitle=lambda lead: _join(lead.company_name, lead.contact_name, lead.email, lead.stage.name),
        select_related=("stage",),
        permission="crm.view_lead",
    )
)
register_search_source(
    SearchSource(
        key="contacts",
        label="Contacts",
        model=Contact,
        fields=("first_name", "last_name", "email", "phone", "mobile"),
        subtitle=lambda contact: _join(contact.account, contact.email, contact.phone),
        select_related=("account",),
        permission="crm.view_contact",
    )
)
register_search_source(
    SearchSource(
        key="accounts",
        label="Accounts",
        model=Account,
        fields=("name", "website", "phone", "billing_city", "billing_country"),
        subtitle=lambda account: _join(account.get_industry_display(), account.billing_city, account.website),
        permission="crm.view_account",
    )
)
