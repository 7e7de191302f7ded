"""Global search: one box in the admin's header across the kinds of record other apps register.

Each kind is a ``SearchSource``: the model, the columns searched (each with a trigram index on
PostgreSQL, crm.search_indexes, so ``icontains`` is a bitmap scan rather than a table scan; SQLite
scans), how a hit reads, and its admin page. Sources read through ``record_visible_to``: a record the
user may not see is never found, nor counted. crm registers leads, contacts and accounts; sales
registers deals; tickets and articles join the same way (``register_search_source``).
"""

from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import connections
from django.db.models import Model, QuerySet
from django.urls import NoReverseMatch, reverse

from crm.actors import Actor
from crm.models import Account, Contact, Lead
from crm.search_indexes import first_match_ids, search_condition, table_rows
from crm.selectors import record_visible_keyed, record_visible_to

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
    visible = record_visible_to(source.model, user)
    matches = visible.filter(search_condition(source.model, source.fields, term, visible.db))
    # The rule again on the owner key, where an index on it carries the search text (the leads'): a
    # rep's first matches are then read from that index, not picked out of everyone's (a rep's
    # "Carrillo" at five million leads: 23 ms -> 4).
    keyed = record_visible_keyed(source.model, user)
    return matches if keyed is None else matches.filter(keyed)


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
