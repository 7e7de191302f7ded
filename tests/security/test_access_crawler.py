"""The access crawler (issue 14, "What to build" 5): every admin URL pattern and every API operation of
the OpenAPI schema, tried by each persona against another team's record, for read, change, delete,
history and actions. A refusal is 403, 404, a redirect (302) or 405, and the database is exactly as it
was, audit trail included; reads of accounts and contacts are allowed (every member of staff sees them)
and lists must not name the other team's record.

A new admin page or API operation fails ``test_every_admin_url_and_api_operation_is_crawled`` until the
crawler knows how to try it (or it is listed as touching no record, with the reason)."""

import csv
import datetime
import functools
import io
import json
import os
import re
from dataclasses import dataclass, field
from decimal import Decimal
from html.parser import HTMLParser
from types import SimpleNamespace

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth.models import Group
from django.db import connection, transaction
from django.test import Client, override_settings
from django.urls import URLPattern, URLResolver
from django.utils import timezone
from drf_spectacular.settings import spectacular_settings
from rest_framework.test import APIClient

from activities.models import ActivityTemplate, SlaPolicy, WorkingCalendar
from activities.service.kb import article_category_save, article_create
from activities.service.services import ticket_create
from crm.actors import SYSTEM
from crm.models import SavedReport
from sales import services_catalog, services_quotes, services_territories
from sales.models import ExchangeRate, Quota, TerritoryRun
from tests.conftest import make_personas, make_records
from tests.factories import (
    LostReasonFactory,
    PipelineFactory,
    ProductFactory,
    SalesTeam,
    StageFactory,
    TagFactory,
)

# The crawl is the suite's longest (about 1,600 cases); CI runs it once, on PostgreSQL. Who may see and
# change what is decided by querysets and services that are the same on both databases, and the rest of
# the suite tries them on SQLite too. CRM_ACCESS_CRAWL_ON_SQLITE=1 runs it there as well.
pytestmark = pytest.mark.skipif(
    connection.vendor == "sqlite" and not os.environ.get("CRM_ACCESS_CRAWL_ON_SQLITE"),
    reason="the access crawl runs on PostgreSQL (CRM_ACCESS_CRAWL_ON_SQLITE=1 runs it here too)",
)

# Who tries: the CRM Admin may act on every record, so the crawl is about the others. Each tries the
# records of another team: the West personas the outsider's, the outsider (team East) the owner's.
# The teammate is left out: against the outsider's records it is the owner's twin (same role, same
# team), and the crawl stays within its time.
PERSONAS = ("owner", "manager", "outsider")
REFUSED = {302, 403, 404, 405}
OWNED = {
    "lead": "crm.lead",
    "opportunity": "sales.opportunity",
    "activity": "activities.activity",
    # A quote is seen and changed by whoever sees and changes its deal.
    "quote": "sales.quote",
    # A ticket is seen by its assignee, its queue's team and their managers.
    "ticket": "activities.ticket",
}
SHARED = {"account": "crm.account", "contact": "crm.contact"}
RECORD_KINDS = {**OWNED, **SHARED}
# Every record page of every kind, and their API resources.
API_RESOURCES = {
    "leads": "lead",
    "opportunities": "opportunity",
    "activities": "activity",
    "accounts": "account",
    "contacts": "contact",
    "quotes": "quote",
    "tickets": "ticket",
}
CONFIG_RESOURCES = {
    "activity-templates": "activities.activitytemplate",
    "pipelines": "crm.pipeline",
    "stages": "crm.stage",
    "tags": "crm.tag",
    "lost-reasons": "crm.lostreason",
    "email-templates": "crm.emailtemplate",
    "sequences": "crm.sequence",
    "segments": "crm.segment",
    "campaigns": "crm.campaign",
    "consent-purposes": "crm.consentpurpose",
    "products": "sales.product",
    "price-lists": "sales.pricelist",
    "price-list-items": "sales.pricelistitem",
    "exchange-rates": "sales.exchangerate",
    "territories": "sales.territory",
    "commission-plans": "sales.commissionplan",
    "commission-assignments": "sales.commissionassignment",
    "working-calendars": "activities.workingcalendar",
    "sla-policies": "activities.slapolicy",
    # The knowledge base: editors (CRM Admins, Sales Managers) write; the other roles read.
    "kb/articles": "activities.article",
    "kb/categories": "activities.articlecategory",
}
# The field a change sets, by kind (the first one the form or the resource has).
CHANGED_FIELDS = ("description", "name", "subject", "first_name", "phone", "notes")


# (case id, persona or None for every persona) → a hole known and not yet closed, as a strict xfail
# (pytest.mark.xfail(strict=True, reason=...)), so the case fails loudly once the hole is closed.
# Empty: every hole the crawler found (issue 14 findings 1, 2, 3, 5 and the merge action's
# permission) is closed.
KNOWN_HOLES: dict[tuple[str, str | None], pytest.MarkDecorator] = {}


# --- the world every case starts from: personas and their records, made once for the module -------


def _stages():
    pipeline = PipelineFactory(name="Sales", is_default=True)
    for seq, (name, prob, won, lost) in enumerate(
        [
            ("New", 10, False, False),
            ("Qualified", 30, False, False),
            ("Proposal", 60, False, False),
            ("Won", 100, True, False),
            ("Lost", 0, False, True),
        ]
    ):
        StageFactory(pipeline=pipeline, name=name, sequence=seq, probability=prob, is_won=won, is_lost=lost)
    return {stage.name: stage for stage in pipeline.stages.all()}


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker):
    """The personas of tests/conftest.py with their records, made once and rolled back after
    the module; each test runs in a savepoint inside it (pytest-django's ``db``)."""
    hasher = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    with django_db_blocker.unblock(), override_settings(PASSWORD_HASHERS=hasher), transaction.atomic():
        stages = _stages()
        personas = make_personas()
        users, west, east = personas.users, personas.teams["West"], personas.teams["East"]
        records = {name: make_records(user, stages) for name, user in users.items()}
        for own in records.values():
            # Each deal has a line item and a quote (numbered like any other) with a copy of it.
            services_quotes.opportunity_line_create(
                opportunity=own.opportunity,
                user=SYSTEM,
                data={"description": "Consulting", "quantity": 2, "unit_price": 500, "tax_rate": 20},
            )
            own.line = own.opportunity.lines.get()
            own.quote = services_quotes.quote_create(opportunity=own.opportunity, user=SYSTEM)
            owner_of = own.lead.owner
            own.ticket = ticket_create(
                user=SYSTEM, data={"subject": f"{owner_of.username} ticket", "assignee": owner_of}
            )
        ProductFactory(sku="CRAWL-1", name="Crawled product")
        services_catalog.price_list_create(user=SYSTEM, data={"name": "Crawl prices", "currency": "EUR"})
        tag = TagFactory(name="Crawled")
        ActivityTemplate.objects.create(name="Crawled template")
        calendar = WorkingCalendar.objects.create(name="Crawled calendar", time_zone="Europe/Paris")
        SlaPolicy.objects.create(name="Crawled policy", calendar=calendar, resolution_minutes=480)
        shelf = article_category_save(user=SYSTEM, category=None, data={"name": "Crawled shelf"})
        article_create(
            user=SYSTEM,
            data={"title": "Crawled article", "body": "x", "category": shelf, "status": "published"},
        )
        LostReasonFactory(name="Too expensive")
        _messaging_world()
        ExchangeRate.objects.create(currency="EUR", date=datetime.date(2026, 1, 1), rate=Decimal("1.1"))
        # A territory holding the owner's account, and a run a CRM Admin started.
        services_territories.territory_create(
            user=SYSTEM, data={"name": "Crawled territory"}, rules=[{"country": "Crawlland"}]
        )
        TerritoryRun.objects.create(started_by=users["crm_admin"], moves=[])
        _commission_world(users, records)
        # A quota of each rep: another team's is as unknown as its deals.
        quotas = {
            name: Quota.objects.create(
                user=users[name],
                period="quarter",
                period_start=datetime.date(2026, 10, 1),
                period_end=datetime.date(2026, 12, 31),
                target_amount=Decimal("1000"),
            )
            for name in ("owner", "outsider")
        }
        # A private saved report of each rep: another's is as unknown as its deals.
        saved_reports = {
            name: SavedReport.objects.create(
                name=f"{name} report", owner=users[name], record_type="opportunities", group_by=["owner"]
            )
            for name in ("owner", "outsider")
        }
        yield SimpleNamespace(
            users=users,
            records=records,
            stages=stages,
            teams={"West": west, "East": east},
            tag=tag,
            quotas=quotas,
            saved_reports=saved_reports,
        )
        transaction.set_rollback(True)


def _commission_world(users, records):
    """A plan, and each rep's statement paying their deal (its line names the deal)."""
    from sales.models import CommissionLine, CommissionStatement
    from sales.services_commissions import commission_assignment_create, commission_plan_create

    plan = commission_plan_create(user=SYSTEM, data={"name": "Crawled plan", "base_rate": 5})
    for name in ("owner", "outsider"):
        commission_assignment_create(
            user=SYSTEM,
            data={
                "user": users[name],
                "plan": plan,
                "period": "quarter",
                "period_start": datetime.date(2026, 10, 1),
            },
        )
        statement = CommissionStatement.objects.create(
            user=users[name],
            plan=plan,
            period="quarter",
            period_start=datetime.date(2026, 10, 1),
            period_end=datetime.date(2026, 12, 31),
            computed_at=timezone.now(),
            total=Decimal("50"),
        )
        deal = records[name].opportunity
        CommissionLine.objects.create(
            statement=statement, opportunity=deal, description=deal.name, amount=1000, commission=50
        )


def _messaging_world():
    """An email template and a sequence using it: configuration every persona reads."""
    from crm.models import EmailTemplate, Sequence, SequenceStep

    template = EmailTemplate.objects.create(
        name="Crawled", subject="Hi {{ lead.name }}", body_html="<p>x</p>"
    )
    sequence = Sequence.objects.create(name="Crawled sequence")
    SequenceStep.objects.create(sequence=sequence, position=1, kind="email", email_template=template)
    from crm.models import Campaign, ConsentPurpose, Segment

    Campaign.objects.create(name="Crawled campaign", email_template=template)
    ConsentPurpose.objects.create(name="Crawled purpose")
    Segment.objects.create(name="Crawled segment", entity="lead")
    Segment.objects.create(name="Crawled static segment", entity="lead", kind="static")


def target_of(world, persona: str) -> SimpleNamespace:
    """The records of another team that ``persona`` tries."""
    return world.records["owner" if persona == "outsider" else "outsider"]


def own_of(world, persona: str) -> SimpleNamespace:
    return world.records[persona]


def other_team(world, persona: str) -> SalesTeam:
    return world.teams["West" if persona == "outsider" else "East"]


# --- what the database holds: every row of the CRM's tables and of the users and roles ------------


def _snapshot_models() -> list:
    models = []
    for config in apps.get_app_configs():
        if config.label in {"crm", "sales", "activities", "auth", "authtoken"}:
            models.extend(config.get_models(include_auto_created=True))
    return models


SNAPSHOT_MODELS = _snapshot_models()
# Derived caches a read may (re)build: they hold no one's data.
SNAPSHOT_SKIPPED = {"crm.winmodel"}


@functools.cache
def _snapshot_sql() -> str:
    """One statement that reads every snapshotted table as a JSON array of its rows, ordered by key."""
    quote = connection.ops.quote_name
    parts = []
    for model in SNAPSHOT_MODELS:
        opts = model._meta
        if opts.label_lower in SNAPSHOT_SKIPPED:
            continue
        columns = ", ".join(quote(f.column) for f in opts.concrete_fields if f.attname != "last_login")
        parts.append(
            f"SELECT '{opts.label_lower}', (SELECT coalesce(json_agg(t ORDER BY t.{quote(opts.pk.column)}),"
            f" '[]')::text FROM (SELECT {columns} FROM {quote(opts.db_table)}) t)"
        )
    return " UNION ALL ".join(parts)


@dataclass
class Snapshot:
    """Every row of the snapshotted tables: ``raw[label]`` compares whole tables, ``rows(label)`` reads
    one as dicts (column → value)."""

    raw: dict
    parsed: dict = field(default_factory=dict)

    def rows(self, label: str) -> list[dict]:
        if label not in self.parsed:
            raw = self.raw[label]
            self.parsed[label] = json.loads(raw) if isinstance(raw, str) else raw
        return self.parsed[label]


def snapshot() -> Snapshot:
    """Every row of those tables. The crawl takes two snapshots per request: on PostgreSQL each is one
    prepared statement (the tables as JSON text; planning it takes six times as long as running it),
    elsewhere a query per table."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE name = 'crawl_snapshot'")
            if not cursor.fetchone()[0]:
                cursor.execute(f"PREPARE crawl_snapshot AS {_snapshot_sql()}")
            cursor.execute("EXECUTE crawl_snapshot")
            return Snapshot(raw=dict(cursor.fetchall()))
        quote = connection.ops.quote_name
        raw = {}
        for model in SNAPSHOT_MODELS:
            opts = model._meta
            if opts.label_lower in SNAPSHOT_SKIPPED:
                continue
            columns = [f.column for f in opts.concrete_fields if f.attname != "last_login"]
            cursor.execute(
                f"SELECT {', '.join(quote(c) for c in columns)} FROM {quote(opts.db_table)} "
                f"ORDER BY {quote(opts.pk.column)}"
            )
            raw[opts.label_lower] = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
        return Snapshot(raw=raw)


def target_state(world, persona, snap: Snapshot) -> dict:
    """The other team's records, their audit trail and every row that points at them, as ``snap``
    holds them."""
    state = {}
    for kind in RECORD_KINDS:
        record = getattr(target_of(world, persona), kind)
        opts = type(record)._meta
        state[kind] = [row for row in snap.rows(opts.label_lower) if row[opts.pk.column] == record.pk]
        history = getattr(type(record), "history", None)
        if history is not None:
            label = history.model._meta.label_lower
            state[f"{kind} history"] = [row for row in snap.rows(label) if row["id"] == record.pk]
        for relation in opts.related_objects:
            if relation.many_to_many:
                continue
            related = relation.related_model._meta
            column = relation.field.column
            value = getattr(record, relation.field.target_field.attname)
            state[f"{kind} {related.label_lower}"] = sorted(
                row[related.pk.column] for row in snap.rows(related.label_lower) if row[column] == value
            )
    return state


def changed_tables(before: Snapshot, after: Snapshot) -> list[str]:
    return [label for label in before.raw if before.raw[label] != after.raw[label]]


# --- forms as their pages show them ---------------------------------------------------------------


class _FormParser(HTMLParser):
    """The fields of each POST form of a page, with the values the page gives them."""

    def __init__(self):
        super().__init__()
        self.forms: list[list[tuple[str, str]]] = []
        self._form = None
        self._select = None
        self._textarea = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self._form = [] if (a.get("method") or "").lower() == "post" else None
            if self._form is not None:
                self.forms.append(self._form)
        elif self._form is None or ("name" not in a and tag != "option"):
            return
        elif tag == "input":
            kind = (a.get("type") or "text").lower()
            if kind in ("submit", "button", "file", "image", "reset"):
                return
            if kind in ("checkbox", "radio") and "checked" not in a:
                return
            self._form.append((a["name"], a.get("value", "on" if kind == "checkbox" else "")))
        elif tag == "select":
            self._select = [a["name"], [], "multiple" in a]
        elif tag == "option" and self._select is not None:
            if "selected" in a:
                self._select[1].append(a.get("value", ""))
        elif tag == "textarea":
            self._textarea = [a["name"], ""]

    def handle_data(self, data):
        if self._textarea is not None:
            self._textarea[1] += data

    def handle_endtag(self, tag):
        if tag == "form":
            self._form = None
        elif tag == "select" and self._select is not None:
            name, chosen, multiple = self._select
            if multiple:
                self._form.extend((name, value) for value in chosen)
            else:
                self._form.append((name, chosen[0] if chosen else ""))
            self._select = None
        elif tag == "textarea" and self._textarea is not None:
            self._form.append(tuple(self._textarea))
            self._textarea = None


def page_form(html: str) -> dict[str, list[str]]:
    """The page's main POST form (the one with most fields; the header's logout form has one)."""
    parser = _FormParser()
    parser.feed(html)
    if not parser.forms:
        return {}
    fields: dict[str, list[str]] = {}
    for name, value in max(parser.forms, key=len):
        fields.setdefault(name, []).append(value)
    return fields


def with_change(body: dict, persona: str) -> dict:
    body = dict(body)
    for name in CHANGED_FIELDS:
        if name in body:
            body[name] = (
                [f"Changed by {persona}"] if isinstance(body[name], list) else f"Changed by {persona}"
            )
            break
    return body


# --- the cases ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One request: ``build(world, persona, client)`` returns (method, url, body or None, options)."""

    id: str
    door: str  # "admin" or "api"
    method: str
    build: object = field(compare=False)
    # "refused": 403/404/302/405 ("rejected": a 400 too); "read": any answer but a 5xx (accounts,
    # contacts, lists); both leave the database unchanged. "unchanged": whatever the answer, the
    # other team's records, their history and what points at them stay as they were (a merge, an
    # import, an action or a new record may legitimately change the persona's own).
    # ``leak_checked``: the answer must not name the other team's leads, deals and activities.
    expect: str = "refused"
    leak_checked: bool = False
    persona_filter: object = field(default=None, compare=False)


def _admin_url(route: str, **values) -> str:
    """An admin route with its converters replaced by values (``<path:object_id>``, ``<id>``)."""
    url = "/admin/" + route
    if "^" in route:  # simple-history's per-version page: ^([^/]+)/history/([^/]+)/$
        prefix = route.split("^", 1)[0]
        return f"/admin/{prefix}{values['object_id']}/history/{values['history_id']}/"
    url = re.sub(r"<(?:\w+:)?object_id>", str(values.get("object_id", "")), url)
    url = re.sub(r"<(?:\w+:)?id>", str(values.get("object_id", "")), url)
    url = re.sub(r"<path:content_type_id>", str(values.get("content_type_id", "")), url)
    return url


def _walk(patterns, prefix=""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern), pattern.name


def admin_patterns() -> list[tuple[str, str | None, object]]:
    """(route, name, model admin or None) of every admin URL pattern."""
    found = []
    owners = {}
    for model, model_admin in admin.site._registry.items():
        prefix = f"{model._meta.app_label}/{model._meta.model_name}/"
        for route, name in _walk(model_admin.get_urls()):
            owners[(prefix + route, name)] = model_admin
    for route, name in _walk(admin.site.get_urls()):
        found.append((route, name, owners.get((route, name))))
    return found


def api_operations() -> list[tuple[str, str, str]]:
    """(method, path, operationId) of every operation of the OpenAPI schema, as /api/schema/ serves it:
    its view generates it once per process, and the schemathesis run loads the same copy."""
    # Served whole to anyone: a schema filtered by the reader's permissions would hide operations.
    assert spectacular_settings.SERVE_PUBLIC
    # Called while the tests are collected too, before the test client's host "testserver" is allowed.
    response = Client(SERVER_NAME="localhost").get("/api/schema/", {"format": "json"})
    assert response.status_code == 200, response.status_code
    schema = response.json()
    return [
        (method.upper(), path, operation["operationId"])
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
    ]


def _kind_of(model_admin):
    label = model_admin.model._meta.label_lower
    return next((kind for kind, lab in RECORD_KINDS.items() if lab == label), None)


def _record(world, persona, kind, whose="target"):
    records = target_of(world, persona) if whose == "target" else own_of(world, persona)
    return getattr(records, kind)


def _latest_version(record):
    if not hasattr(record, "history"):
        return None  # a kind without an audit trail (quotes: their versions are their history)
    return record.history.order_by("-history_date", "-history_id").first()


_FORMS: dict[tuple[str, str], dict] = {}


def _admin_body(world, url, persona, shown_to="crm_admin"):
    """The form ``shown_to`` (the CRM Admin: the record's page as someone allowed) is shown at ``url``,
    as the body of a change by ``persona``. Every test starts from the same rows: the form is read once."""
    if (shown_to, url) not in _FORMS:
        page = _admin_client(world, shown_to).get(url)
        _FORMS[(shown_to, url)] = page_form(page.content.decode()) if page.status_code == 200 else {}
    return with_change(_FORMS[(shown_to, url)], persona)


def _admin_client(world, persona):
    client = Client()
    client.force_login(world.users[persona])
    return client


def _close(record, stages):
    closed = {"closed_at": timezone.now()} if hasattr(record, "closed_at") else {}
    type(record).objects.filter(pk=record.pk).update(status="lost", stage=stages["Lost"], **closed)


# Admin page names (the part after "<app>_<model>_") and how each is tried on a record.
RECORD_PAGE_SUFFIXES = {
    "change",
    "delete",
    "history",
    "simple_history",
    "convert",
    "converted",
    "mark_lost",
    "mark_won",
    "reopen",
    "pdf",
    "send",
    "revise",
    "reply",
}
# Pages of a whole model (lists, boards, exports): read, and must not name another team's record.
LIST_PAGE_SUFFIXES = {
    "changelist",
    "board",
    "board_cards",
    "export",
    "duplicates",
    "forecast",
    "calendar",
    "performance",
}
# Pages that take no record and show none (import a file one chose, add a record, the confirm step
# of an import reads only the uploaded file): crawled by the import and add tests, not here.
NOT_RECORD_PAGES = {
    "calendar_feed": "regenerates one's own calendar feed secret (tests/activities/test_calendar_feed.py)",
    "import": "uploads a file the user chose; the import tests cover updating another team's rows",
    "board_add": "creates a new record of one's own in a column (tests/admin/test_board_dialogs.py)",
    "import_confirm": "applies a preview held in the session, made by the import page",
    "saveview": "saves a view of the user's own list: tests/admin/test_saved_views.py",
    "updateview": "changes one's own view only: test_a_teammate_opens_a_shared_view_but_cannot_update_it",
    "deleteview": "deletes one's own saved view only (test_only_its_owner_changes_or_deletes_a_shared_view)",
}


def admin_cases() -> list[Case]:
    cases = []
    for route, name, model_admin in admin_patterns():
        if model_admin is None:
            continue
        opts = model_admin.model._meta
        kind = _kind_of(model_admin)
        prefix = f"{opts.app_label}_{opts.model_name}_"
        suffix = name[len(prefix) :] if name and name.startswith(prefix) else name
        case_id = f"admin:{name or opts.label_lower + ':object'}"
        if kind is not None:
            cases.extend(_record_admin_cases(case_id, route, suffix, kind, model_admin))
        elif opts.label_lower in ATTACHED:
            cases.extend(_attached_admin_cases(case_id, route, suffix, opts.label_lower))
        else:
            cases.extend(_config_admin_cases(case_id, route, suffix, model_admin))
    return cases


def _record_admin_cases(case_id, route, suffix, kind, model_admin):
    shared = kind in SHARED

    def record_url(world, persona):
        record = _record(world, persona, kind)
        version = _latest_version(record)
        return _admin_url(route, object_id=record.pk, history_id=version.history_id if version else 0)

    if suffix is None:  # <path:object_id>/: redirects to the change page
        yield Case(case_id + ":GET", "admin", "GET", lambda w, p: ("GET", record_url(w, p), None))
        return
    if suffix == "account_hierarchy":
        # Another team's account is read by everyone; its deals' figures count only what one sees.

        def hierarchy_page(w, p):
            return "GET", _admin_url(route, object_id=_record(w, p, "account").pk), None

        yield Case(case_id + ":GET", "admin", "GET", hierarchy_page, expect="read", leak_checked=True)
        return
    if suffix in RECORD_PAGE_SUFFIXES:
        reads = suffix in (
            "change",
            "history",
            "simple_history",
            "delete",
            "convert",
            "converted",
            "mark_lost",
            "reopen",
            "pdf",
            "send",
            "revise",
        )
        if reads and suffix != "mark_won":
            yield Case(
                case_id + ":GET",
                "admin",
                "GET",
                lambda w, p: ("GET", record_url(w, p), None),
                expect="read" if shared and suffix in ("change", "history", "simple_history") else "refused",
            )

        def post(w, p, suffix=suffix):
            url = record_url(w, p)
            if suffix == "reopen":
                _close(_record(w, p, kind), w.stages)
            if suffix == "delete":
                return "POST", url, {"post": "yes"}
            if suffix in ("mark_won",):
                return "POST", url, {}
            return "POST", url, _admin_body(w, url, p)

        if suffix not in ("history", "converted", "pdf"):  # a PDF download is a GET only
            yield Case(case_id + ":POST", "admin", "POST", post)
        return
    if suffix in LIST_PAGE_SUFFIXES:

        def list_page(w, p, suffix=suffix):
            url = _admin_url(route)
            query = {}
            if suffix == "board_cards":
                query = {"stage": w.stages["New"].pk}
            if suffix == "duplicates":
                query = {"id": _record(w, p, kind).pk}
            return "GET", url, query

        yield Case(case_id + ":GET", "admin", "GET", list_page, expect="read", leak_checked=not shared)
        if suffix == "changelist":
            for action in model_admin.actions or ():
                yield Case(
                    f"{case_id}:POST:{action}",
                    "admin",
                    "POST",
                    lambda w, p, action=action: ("POST", _admin_url(route), _action_body(w, p, kind, action)),
                    expect="unchanged",
                )
        return
    if suffix == "board_move":

        def move(w, p):
            record = _record(w, p, kind)
            return "POST", _admin_url(route), {"record": record.pk, "stage": w.stages["Qualified"].pk}

        yield Case(case_id + ":POST", "admin", "POST", move)
        return
    if suffix == "compose":
        # The record page's composer: a note or an activity on another team's lead or deal.

        def compose(w, p, kind, record_kind):
            record = _record(w, p, record_kind)
            body = {"kind": kind, "record_type": record_kind, "record_id": record.pk, "body": "x"}
            return "POST", _admin_url(route), body

        for kind in ("note", "call"):
            for record_kind in ("lead", "opportunity"):
                yield Case(
                    f"{case_id}:POST:{kind}:{record_kind}",
                    "admin",
                    "POST",
                    lambda w, p, kind=kind, record_kind=record_kind: compose(w, p, kind, record_kind),
                )
        return
    if suffix == "board_dialog":
        # The won and lost dialogs of the board: showing one names the record, running it closes it.

        def dialog(w, p, method):
            record = _record(w, p, kind)
            body = {"card": record.pk, "column": w.stages["Lost"].pk, "lost_reason": "", "lost_note": "x"}
            return method, _admin_url(route), body

        yield Case(case_id + ":GET", "admin", "GET", lambda w, p: dialog(w, p, "GET"))
        yield Case(case_id + ":POST", "admin", "POST", lambda w, p: dialog(w, p, "POST"))
        return
    if suffix == "add":
        if kind == "quote":

            def add_quote(w, p):
                url = _admin_url(route)
                body = _admin_body(w, url, p, shown_to=p)
                body["opportunity"] = _record(w, p, "opportunity").pk
                return "POST", url, body

            yield Case(case_id + ":POST:opportunity", "admin", "POST", add_quote, expect="unchanged")
        if kind in ("opportunity", "activity"):

            def add_linked(w, p):
                url = _admin_url(route)
                body = _admin_body(w, url, p, shown_to=p)
                body["name" if kind == "opportunity" else "subject"] = f"Linked by {p}"
                if kind == "activity":
                    body["activity_type"] = "call"
                body["lead"] = _record(w, p, "lead").pk
                return "POST", url, body

            yield Case(case_id + ":POST:lead", "admin", "POST", add_linked, expect="unchanged")
        return
    if suffix in NOT_RECORD_PAGES:
        return
    raise AssertionError(f"the crawler does not know the admin page {case_id} ({route})")


# Rows that belong to another team's record or user: files and notes on their lead, their API key.
def _target_file(w, p):
    from activities.models import Attachment

    lead = target_of(w, p).lead
    attachment, _ = Attachment.objects.get_or_create(
        record_type="lead",
        record_id=lead.pk,
        defaults={"name": f"{lead.name}.txt", "size": 3, "mime_type": "text/plain", "file": "crawl/x.txt"},
    )
    return attachment


def _target_note(w, p):
    from activities.models import Note

    lead = target_of(w, p).lead
    note, _ = Note.objects.get_or_create(
        record_type="lead", record_id=lead.pk, defaults={"body": lead.name, "body_html": lead.name}
    )
    return note


def _target_key(w, p):
    from crm.models import ApiKey

    owner = target_of(w, p).lead.owner
    key, _ = ApiKey.objects.get_or_create(
        prefix=f"crawl{owner.pk}",
        defaults={
            "user": owner,
            "name": target_of(w, p).lead.name,
            "key_hash": "0" * 64,
            "scopes": {"*": "read"},
        },
    )
    return key


def _target_mailbox(w, p):
    """The other team's rep's own mailbox, named like their lead (a list showing it leaks the name)."""
    from activities.models import Mailbox

    owner = target_of(w, p).lead.owner
    mailbox, _ = Mailbox.objects.get_or_create(
        name=target_of(w, p).lead.name,
        defaults={"owner": owner, "host": "127.0.0.1", "username": "crawl", "password_encrypted": "x"},
    )
    return mailbox


def _target_email(w, p):
    """An email logged on the other team's lead, its subject the lead's name."""
    from activities.models import EmailMessage

    lead = target_of(w, p).lead
    message, created = EmailMessage.objects.get_or_create(
        message_id=f"<crawl-{lead.pk}@crawl.example>", defaults={"direction": "in", "subject": lead.name}
    )
    if created:
        message.activities.add(target_of(w, p).activity)
    return message


ATTACHED = {
    "activities.attachment": _target_file,
    "activities.note": _target_note,
    "crm.apikey": _target_key,
    "activities.mailbox": _target_mailbox,
    "activities.emailmessage": _target_email,
}


def _attached_admin_cases(case_id, route, suffix, label):
    target = ATTACHED[label]

    def url_of(w, p):
        return _admin_url(route, object_id=target(w, p).pk)

    if suffix in ("change", "download", "delete", "history") or suffix is None:
        yield Case(case_id + ":GET", "admin", "GET", lambda w, p: ("GET", url_of(w, p), None))
    if suffix in ("change", "delete"):

        def post(w, p, suffix=suffix):
            url = url_of(w, p)
            if suffix == "delete":
                return "POST", url, {"post": "yes"}
            return "POST", url, {**_admin_body(w, url, p), "body": f"by {p}", "name": f"by {p}"}

        yield Case(case_id + ":POST", "admin", "POST", post)
    if suffix == "changelist":
        yield Case(
            case_id + ":GET",
            "admin",
            "GET",
            lambda w, p: ("GET", _admin_url(route), {}),
            expect="read",
            leak_checked=True,
        )
    if suffix == "compose":  # an email about, or an invitation to, the other team's lead or meeting

        def compose(w, p, method):
            query = {"record_type": "lead", "record_id": target_of(w, p).lead.pk}
            if method == "POST":
                query.update(to=f"lead:{target_of(w, p).lead.pk}", subject="x", body="y")
            return method, _admin_url(route), query

        yield Case(case_id + ":GET", "admin", "GET", lambda w, p: compose(w, p, "GET"))
        yield Case(case_id + ":POST", "admin", "POST", lambda w, p: compose(w, p, "POST"))
    if suffix == "upload":

        def upload(w, p):
            import io

            content = io.BytesIO(b"crawl")
            content.name = "crawl.txt"
            lead = target_of(w, p).lead
            return "POST", _admin_url(route), {"record_type": "lead", "record_id": lead.pk, "file": content}

        yield Case(case_id + ":POST", "admin", "POST", upload)


def _action_body(world, persona, kind, action):
    target = _record(world, persona, kind)
    selected = [target.pk]
    if action == "merge_selected":
        selected.append(_record(world, persona, kind, whose="own").pk)
    return {
        "action": action,
        "_selected_action": selected,
        "apply": "1",
        "post": "yes",
        "survivor": _record(world, persona, kind, whose="own").pk,
        "owner": world.users[persona].pk,
        "stage": world.stages["Qualified"].pk,
        "tags": world.tag.pk,
        "lost_note": "x",
    }


def _config_object(world, persona, model):
    if model is SalesTeam:
        return other_team(world, persona)
    if model._meta.label_lower == "auth.user":
        return world.users["crm_admin"]
    if model._meta.label_lower == "auth.group":
        return Group.objects.get(name="CRM Admin")
    return model._default_manager.order_by("pk").first()


def _may(world, persona, model, action) -> bool:
    """Whether the persona's role may ``action`` every object of a model that belongs to no team."""
    if model is SalesTeam:
        return False  # another team's team: nobody but its managers and a CRM Admin
    opts = model._meta
    return world.users[persona].has_perm(f"{opts.app_label}.{action}_{opts.model_name}")


def _config_admin_cases(case_id, route, suffix, model_admin):
    model = model_admin.model
    if suffix in ("rerun", "compute"):  # moving every account, computing commissions: CRM Admins only
        yield Case(
            case_id + ":POST",
            "admin",
            "POST",
            lambda w, p: ("POST", _admin_url(route), {}),
            persona_filter=lambda w, p: not _may(w, p, model, "change"),
        )
        return
    if suffix not in ("change", "delete"):
        return
    action = suffix

    def post(w, p):
        obj = _config_object(w, p, model)
        if obj is None:
            return None
        url = _admin_url(route, object_id=obj.pk)
        if suffix == "delete":
            return "POST", url, {"post": "yes"}
        body = _admin_body(w, url, p)
        if model is SalesTeam:
            body["manager"] = w.users[p].pk
            body["members"] = [w.users[p].pk]
        return "POST", url, body

    yield Case(
        case_id + ":POST",
        "admin",
        "POST",
        post,
        persona_filter=lambda w, p: not _may(w, p, model, action),
    )


# --- API cases -------------------------------------------------------------------------------------

API_PREFIX = "/api/v1/crm/"
API_ACTION_BODIES = {
    "convert": lambda w, p: {},
    "mark-lost": lambda w, p: {"lost_note": "x"},
    "mark-won": lambda w, p: {},
    "move-stage": lambda w, p: {"stage_id": w.stages["Qualified"].pk},
    "reopen": lambda w, p: {},
    "lines": lambda w, p: {"description": "Extra", "quantity": "1", "unit_price": "10.00"},
    "send": lambda w, p: {"to": "crawler@example.com"},
    "revise": lambda w, p: {},
    "send-invitation": lambda w, p: {},
    "messages": lambda w, p: {"body": f"by {p}"},
}
API_READS = {"", "history/", "stage-history/", "duplicates/", "hierarchy/"}
# Operations on no record: the token login, creating a record of one's own (links are tried below).
# Consents follow the visibility of their lead or contact: tried by tests/marketing/test_consent.py
# (list, retrieve 404, create 400 on another team's lead, preferences 404/403).
CONSENT_COVERED = "the consents and preferences of records one may not see or change: test_consent.py"
API_NOT_RECORD_OPERATIONS = {
    "consents_list": CONSENT_COVERED,
    "consents_create": CONSENT_COVERED,
    "consents_retrieve": CONSENT_COVERED,
    "consents_update": CONSENT_COVERED,
    "consents_partial_update": CONSENT_COVERED,
    "consents_destroy": CONSENT_COVERED,
    "consents_withdraw_create": CONSENT_COVERED,
    "leads_preferences_retrieve": CONSENT_COVERED,
    "leads_preferences_partial_update": CONSENT_COVERED,
    "contacts_preferences_retrieve": CONSENT_COVERED,
    "contacts_preferences_partial_update": CONSENT_COVERED,
    "api_v1_auth_token_create": "exchanges one's own password for one's own token",
    "leads_create": "a new lead links no other record",
    "accounts_create": "a new account links no other team's record",
    "contacts_create": "creating a contact under another team's account is tried by the contact tests",
    "pipelines_create": "configuration: covered by the role tests",
    "stages_create": "configuration: covered by the role tests",
    "tags_create": "configuration: covered by the role tests",
    "lost_reasons_create": "configuration: covered by the role tests",
    "products_create": "configuration: covered by the role tests",
    "price_lists_create": "configuration: covered by the role tests",
    "quotas_create": "a manager setting another team's quota: tests/sales/test_quotas.py",
    "notifications_list": "one's own notifications only (tests/api/test_notifications_api.py)",
    "notifications_read_all_create": "marks one's own notifications read, no one else's",
    "notification_preferences_list": "one's own preferences",
    "notification_preferences_update": "one's own preference for a kind",
    "notification_preferences_time_zone_retrieve": "one's own time zone",
    "notification_preferences_time_zone_update": "one's own time zone",
    "calendar_feed_retrieve": "whether one has a calendar feed oneself",
    "calendar_feed_regenerate_create": "regenerates one's own calendar feed secret",
    "api_keys_create": "makes a key acting as oneself, never beyond (tests/api/test_api_keys.py)",
    "mailboxes_create": "a rep's new mailbox is their own (tests/activities/test_email_doors.py)",
    "mailboxes_inbound_create": "the BCC secret is the credential; it logs by address "
    "(tests/activities/test_email_doors.py)",
    "segments_create": "configuration: covered by the role tests (tests/marketing/test_segments.py)",
    "campaigns_create": "configuration: covered by the role tests (tests/marketing/test_campaigns.py)",
    "reports_saved_create": "saves a report of one's own (tests/reports/test_report_builder.py)",
    # Saved views are the user's own (or shared with them, read-only): tests/admin/test_saved_views.py
    # tries another's view (test_api_shows_a_shared_view_to_the_team_and_only_its_owner_changes_it).
    "saved_views_list": "one's own views and those shared with one",
    "saved_views_create": "saves a view of one's own",
    "saved_views_retrieve": "one's own or shared view; another's is 404 (tests/admin/test_saved_views.py)",
    "saved_views_update": "one's own view only (tests/admin/test_saved_views.py)",
    "saved_views_partial_update": "one's own view only (tests/admin/test_saved_views.py)",
    "saved_views_destroy": "one's own view only (tests/admin/test_saved_views.py)",
    "saved_views_lists_list": "the columns and filters each list offers: no record",
}


def api_cases() -> list[Case]:
    cases = []
    for method, path, operation in api_operations():
        if operation in API_NOT_RECORD_OPERATIONS:
            continue
        case_id = f"api:{operation}:{method}"
        rest = path[len(API_PREFIX) :] if path.startswith(API_PREFIX) else path
        resource, _, tail = rest.partition("/")
        if resource == "kb":  # kb/articles/, kb/categories/: two resources under one prefix
            name, _, tail = tail.partition("/")
            resource = f"kb/{name}"
        if resource in API_RESOURCES:
            cases.extend(_record_api_cases(case_id, method, resource, tail))
        elif resource in CONFIG_RESOURCES:
            cases.extend(_config_api_cases(case_id, method, resource, tail))
        elif resource == "webhooks":
            cases.append(_webhook_api_case(case_id, method, tail))
        elif resource == "jobs":
            cases.append(_job_api_case(case_id, method, tail))
        elif resource == "automations":
            cases.append(_automation_api_case(case_id, method, tail))
        elif resource == "privacy":
            cases.append(_privacy_api_case(case_id, method, tail))
        elif resource == "notifications":
            cases.append(_notification_api_case(case_id, method, tail))
        elif resource == "email-templates" and tail in ("{id}/preview/", "{id}/send/"):
            cases.append(_template_on_record_case(case_id, method, tail))
        elif resource in ("sequence-enrollments", "sent-emails"):
            cases.append(_sequence_api_case(case_id, method, resource, tail))
        elif resource == "quotas":
            cases.append(_quota_api_case(case_id, method, tail))
        elif resource == "commission-statements":
            cases.append(_commission_statement_api_case(case_id, method, tail))
        elif resource == "territory-runs":
            cases.append(_territory_run_api_case(case_id, method, tail))
        elif resource in ("segments", "campaigns") and tail not in ("", "{id}/"):
            cases.append(_marketing_api_case(case_id, method, resource, tail))
        elif resource == "reports":
            cases.append(_report_api_case(case_id, method, tail))
        elif resource in ATTACHED_RESOURCES:
            cases.extend(_attached_api_cases(case_id, method, resource, tail))
        elif resource in ("dashboard", "performance", "next-actions"):  # the reader's own figures and work
            cases.append(
                Case(case_id, "api", method, lambda w, p, path=path: ("GET", path, None), expect="read")
            )
        else:
            raise AssertionError(f"the crawler does not know the API operation {operation} ({path})")
    return cases


def _record_api_cases(case_id, method, resource, tail):
    kind = API_RESOURCES[resource]
    shared = kind in SHARED
    base = f"{API_PREFIX}{resource}/"
    if tail.startswith("{id}/"):
        sub = tail[len("{id}/") :]

        def detail(w, p, sub=sub, method=method):
            record = _record(w, p, kind)
            url = f"{base}{record.pk}/{sub}"
            if "{line_id}" in sub:  # a line item of the deal
                url = url.replace("{line_id}", str(target_of(w, p).line.pk))
                if method in ("PUT", "PATCH"):
                    return method, url, {"description": f"by {p}", "quantity": "3", "unit_price": "1.00"}
            if method == "GET" or method == "DELETE":
                return method, url, None
            if sub == "":
                if method == "PATCH":
                    return method, url, {next(f for f in CHANGED_FIELDS if hasattr(record, f)): f"by {p}"}
                admin_api = APIClient()
                admin_api.force_authenticate(w.users["crm_admin"])
                return method, url, with_change(admin_api.get(url).json(), p)
            action = sub.strip("/")
            if action == "reopen":
                _close(record, w.stages)
            return method, url, API_ACTION_BODIES[action](w, p)

        read = method == "GET" and sub in API_READS
        yield Case(case_id, "api", method, detail, expect="read" if read and shared else "refused")
        return
    if method == "GET":
        yield Case(
            case_id,
            "api",
            method,
            lambda w, p: ("GET", f"{base}{tail}", {"format": "csv"} if tail == "export/" else {}),
            expect="read",
            leak_checked=not shared,
        )
        return
    if tail == "merge/":

        def merge(w, p):
            target, own = _record(w, p, kind), _record(w, p, kind, whose="own")
            return "POST", f"{base}merge/", {"ids": [target.pk, own.pk], "survivor_id": own.pk}

        yield Case(case_id, "api", "POST", merge, expect="unchanged")
        return
    if tail == "import/":

        def import_update(w, p):
            # A row that matches the other team's record (by email, or an account by name) and
            # changes its phone: the import must leave that record alone.
            record = _record(w, p, kind)
            if kind != "account" and not record.email:
                type(record).objects.filter(pk=record.pk).update(email=f"{kind}{record.pk}@crawl.example")
                record.refresh_from_db()
            row = {"name": record.name} if kind != "contact" else {"first_name": record.first_name}
            if kind != "account":
                row["email"] = record.email
            row["phone"] = "555-0199"
            out = io.StringIO()
            writer = csv.DictWriter(out, fieldnames=list(row))
            writer.writeheader()
            writer.writerow(row)
            upload = io.BytesIO(out.getvalue().encode())
            upload.name = f"{resource}.csv"
            return "POST", f"{base}import/", {"file": upload}

        yield Case(case_id, "api", "POST", import_update, expect="unchanged")
        return
    if tail == "" and method == "POST":
        if kind not in ("opportunity", "activity", "quote", "ticket"):
            raise AssertionError(f"the crawler does not know the API operation {case_id}")

        def create_linked(w, p):
            if kind == "quote":  # a quote of another team's deal
                return "POST", base, {"opportunity_id": _record(w, p, "opportunity").pk}
            if kind == "ticket":  # a ticket about another team's deal
                return "POST", base, {"subject": f"by {p}", "opportunity_id": _record(w, p, "opportunity").pk}
            body = {"name": f"Linked by {p}", "amount": "10.00"}
            if kind == "activity":
                body = {"subject": f"Linked by {p}", "activity_type": "call"}
            body["lead_id"] = _record(w, p, "lead").pk
            return "POST", base, body

        link = "opportunity_id" if kind in ("quote", "ticket") else "lead_id"
        yield Case(f"{case_id}:{link}", "api", "POST", create_linked, expect="unchanged")
        return
    raise AssertionError(f"the crawler does not know the API operation {case_id}")


def _webhook_api_case(case_id, method, tail):
    """Webhook subscriptions see every record's events: every operation is for CRM Admins only, so
    each persona is refused whatever it asks (a list, a subscription, a delivery, a redelivery)."""

    def build(w, p, tail=tail, method=method):
        from crm.models import WebhookDelivery, WebhookSubscription

        subscription = WebhookSubscription.objects.order_by("pk").first()
        delivery = WebhookDelivery.objects.order_by("pk").first()
        path = tail.replace("deliveries/{id}", f"deliveries/{delivery.pk if delivery else 1}")
        path = path.replace("{id}", str(subscription.pk if subscription else 1))
        body = None
        if method in ("POST", "PUT", "PATCH"):
            body = {"name": f"by {p}", "target_url": "https://hooks.example.com/in", "event_types": ["*"]}
        return method, f"{API_PREFIX}webhooks/{path}", body

    return Case(case_id, "api", method, build)


def _privacy_api_case(case_id, method, tail):
    """Privacy requests (export, erase a person; the log) are for CRM Admins only: each persona is
    refused, asked about the other team's lead's address."""

    def build(w, p, tail=tail, method=method):
        from crm.models import PrivacyRequest

        logged = PrivacyRequest.objects.order_by("pk").first()
        path = tail.replace("{id}", str(logged.pk if logged else 1))
        lead = _record(w, p, "lead")
        body = {"email": lead.email or "crawled@example.test"} if method == "POST" else None
        return method, f"{API_PREFIX}privacy/{path}", body

    return Case(case_id, "api", method, build)


def _automation_api_case(case_id, method, tail):
    """Automation rules act on every record: every operation is for CRM Admins only, so each persona
    is refused (a list, a rule, its runs, a test, a manual run). The inbound webhook takes no login:
    its credential is the rule's secret token, and a wrong one is refused the same."""

    def build(w, p, tail=tail, method=method):
        from crm.actors import SYSTEM
        from crm.automation.services import automation_rule_create
        from crm.models import AutomationRule, AutomationRun

        rule = AutomationRule.objects.order_by("pk").first() or automation_rule_create(
            user=SYSTEM,
            data={"name": "Crawled", "model": "crm.Lead", "trigger_kind": "webhook", "actions": []},
        )
        run = AutomationRun.objects.order_by("pk").first()
        path = tail.replace("runs/{id}", f"runs/{run.pk if run else 1}").replace("{id}", str(rule.pk))
        body = None
        if tail.endswith("inbound/"):
            path += "?token=not-the-token"
        if method in ("POST", "PUT", "PATCH"):
            lead = _record(w, p, "lead")
            body = {
                "name": f"by {p}",
                "model": "crm.Lead",
                "trigger_kind": "manual",
                "actions": [{"kind": "update_fields", "params": {"values": {"description": f"by {p}"}}}],
                "record_id": lead.pk,
                "record_ids": [lead.pk],
            }
        return method, f"{API_PREFIX}automations/{path}", body

    return Case(case_id, "api", method, build)


def _job_api_case(case_id, method, tail):
    """A job belongs to who started it: another team's job (its file named after their lead, so a
    list that showed it would leak the name) is not listed, read or downloaded."""

    def build(w, p, tail=tail, method=method):
        from crm.models import Job, JobKind, JobStatus

        target = target_of(w, p)
        job = Job.objects.create(
            kind=JobKind.EXPORT,
            resource="leads",
            status=JobStatus.SUCCEEDED,
            params={"filename": target.lead.name},
            result={"filename": f"{target.lead.name}.csv"},
            result_file="crm-jobs/none.csv",
            created_by=target.lead.owner,
        )
        return method, f"{API_PREFIX}jobs/{tail.replace('{id}', str(job.pk))}", None

    if tail == "":
        return Case(case_id, "api", method, build, expect="read", leak_checked=True)
    return Case(case_id, "api", method, build)


def _notification_api_case(case_id, method, tail):
    """A notification is its recipient's alone: another team's owner's is not found, read or marked."""

    def build(w, p, tail=tail, method=method):
        from crm.models import Notification

        owner = target_of(w, p).lead.owner
        theirs, _ = Notification.objects.get_or_create(
            recipient=owner, kind="assigned", event_id="crawler", defaults={"title": "Theirs"}
        )
        return method, f"{API_PREFIX}notifications/{tail.replace('{id}', str(theirs.pk))}", {}

    return Case(case_id, "api", method, build)


def _template_on_record_case(case_id, method, tail):
    """A template previewed on, or sent to, another team's lead: it is as unknown as at its own URL
    (400 on lead_id), nothing is rendered for it and nothing is sent."""

    def build(w, p, tail=tail):
        from crm.actors import SYSTEM
        from crm.messaging.services import email_template_create
        from crm.models import EmailTemplate

        template = EmailTemplate.objects.first() or email_template_create(
            user=SYSTEM, data={"name": "Crawled", "subject": "{{ lead.name }}", "body_html": "<p>x</p>"}
        )
        path = tail.replace("{id}", str(template.pk))
        return method, f"{API_PREFIX}email-templates/{path}", {"lead_id": target_of(w, p).lead.pk}

    return Case(case_id, "api", method, build, expect="unchanged", leak_checked=True)


def _target_enrollment(w, p):
    """An enrollment of another team's lead in a sequence, and an email sent to that lead."""
    from crm.actors import SYSTEM
    from crm.models import OutgoingEmail, Sequence, SequenceEnrollment

    lead = target_of(w, p).lead
    sequence = Sequence.objects.first() or Sequence.objects.create(name="Crawled sequence")
    enrollment = SequenceEnrollment.objects.filter(lead=lead).first() or SequenceEnrollment.objects.create(
        sequence=sequence, lead=lead, next_run_at=timezone.now()
    )
    email = OutgoingEmail.objects.filter(lead=lead).first() or OutgoingEmail.objects.create(
        lead=lead, to="them@example.com", subject=lead.name, status="sent"
    )
    assert SYSTEM is not None
    return enrollment, email


def _sequence_api_case(case_id, method, resource, tail):
    """Enrollments and sent emails of another team's lead are not listed, read or stopped; enrolling
    that lead is refused like an unknown id."""

    def build(w, p, tail=tail, method=method):
        enrollment, email = _target_enrollment(w, p)
        if tail == "" and method == "POST":
            return (
                method,
                f"{API_PREFIX}{resource}/",
                {
                    "sequence_id": enrollment.sequence_id,
                    "lead_id": target_of(w, p).lead.pk,
                },
            )
        pk = enrollment.pk if resource == "sequence-enrollments" else email.pk
        return method, f"{API_PREFIX}{resource}/{tail.replace('{id}', str(pk))}", {}

    if tail == "" and method == "GET":
        return Case(case_id, "api", method, build, expect="read", leak_checked=True)
    if tail == "" and method == "POST":
        return Case(case_id, "api", method, build, expect="unchanged")
    return Case(case_id, "api", method, build)


ATTACHED_RESOURCES = {
    "files": _target_file,
    "notes": _target_note,
    "api-keys": _target_key,
    "mailboxes": _target_mailbox,
    "emails": _target_email,
}


def _attached_api_cases(case_id, method, resource, tail):
    """Files and notes on another team's lead, another user's API key: not listed, read, changed,
    downloaded or deleted; a file or note cannot be added to a lead one cannot see (400, nothing kept)."""
    target = ATTACHED_RESOURCES[resource]
    base = f"{API_PREFIX}{resource}/"
    if tail == "" and method == "GET":
        yield Case(
            case_id,
            "api",
            "GET",
            lambda w, p: (target(w, p) and "GET", base, {}),  # the other team's row exists first
            expect="read",
            leak_checked=True,
        )
        return
    if resource == "emails" and tail == "send/":  # an email to the other team's lead: as unknown (400)

        def send(w, p):
            return "POST", f"{base}send/", {"record_type": "lead", "record_id": target_of(w, p).lead.pk}

        yield Case(case_id, "api", "POST", send, expect="rejected")
        return
    if tail == "" and method == "POST":

        def create(w, p):
            lead = target_of(w, p).lead
            if resource == "notes":
                return "POST", base, {"record_type": "lead", "record_id": lead.pk, "body": f"by {p}"}
            import io

            content = io.BytesIO(b"crawl")
            content.name = "crawl.txt"
            return "POST", base, {"record_type": "lead", "record_id": lead.pk, "file": content}

        yield Case(case_id, "api", "POST", create, expect="rejected")
        return

    def detail(w, p, tail=tail, method=method):
        url = f"{base}{tail.replace('{id}', str(target(w, p).pk))}"
        body = None
        if method == "PATCH":
            body = {"body": f"by {p}", "name": f"by {p}"}
        if method == "POST":
            body = {}
        return method, url, body

    yield Case(case_id, "api", method, detail)


def _config_api_cases(case_id, method, resource, tail):
    label = CONFIG_RESOURCES[resource]
    model = apps.get_model(label)
    if resource == "territories" and tail == "reassign/":
        # Re-running the rules moves every account: only those who change territories (CRM Admins).
        yield Case(case_id, "api", method, lambda w, p: (method, f"{API_PREFIX}territories/reassign/", {}))
        return
    if not tail.startswith("{id}/") or method == "GET":
        return  # lists and reads of the configuration are for everyone
    action = "delete" if method == "DELETE" else "change"

    def detail(w, p):
        obj = model._default_manager.order_by("pk").first()
        url = f"{API_PREFIX}{resource}/{obj.pk}/"
        if method == "DELETE":
            return method, url, None
        admin_api = APIClient()
        admin_api.force_authenticate(w.users["crm_admin"])
        return method, url, with_change(admin_api.get(url).json(), p)

    yield Case(case_id, "api", method, detail, persona_filter=lambda w, p: not _may(w, p, model, action))


def _commission_statement_api_case(case_id, method, tail):
    """Another team's rep's statement (its lines name their deals) is not listed, exported, read,
    approved, locked or deleted; computing one is for CRM Admins only."""
    if method == "GET" and tail in ("", "export/"):
        return Case(
            case_id,
            "api",
            method,
            lambda w, p: ("GET", f"{API_PREFIX}commission-statements/{tail}", {}),
            expect="read",
            leak_checked=True,
        )
    if tail == "compute/":

        def compute(w, p):
            rep = target_of(w, p).opportunity.owner
            body = {"user_id": rep.pk, "period": "quarter", "date": "2026-11-15"}
            return "POST", f"{API_PREFIX}commission-statements/compute/", body

        return Case(case_id, "api", method, compute)

    def detail(w, p):
        from sales.models import CommissionStatement

        statement = CommissionStatement.objects.get(user=target_of(w, p).opportunity.owner)
        return method, f"{API_PREFIX}commission-statements/{tail.replace('{id}', str(statement.pk))}", {}

    return Case(case_id, "api", method, detail)


def _territory_run_api_case(case_id, method, tail):
    """A CRM Admin's run of the territory rules (it names accounts) is not listed or read by others."""
    if tail == "":
        return Case(
            case_id,
            "api",
            method,
            lambda w, p: ("GET", f"{API_PREFIX}territory-runs/", {}),
            expect="read",
            leak_checked=True,
        )

    def detail(w, p):
        run = TerritoryRun.objects.filter(started_by=w.users["crm_admin"]).first()
        return method, f"{API_PREFIX}territory-runs/{tail.replace('{id}', str(run.pk))}", None

    return Case(case_id, "api", method, detail)


def _target_campaign_member(w, p):
    """A campaign with another team's lead as a member, and segments (dynamic and static) of leads."""
    from crm.models import Campaign, CampaignMember, Segment

    campaign = Campaign.objects.first() or Campaign.objects.create(name="Crawled campaign")
    lead = target_of(w, p).lead
    member = CampaignMember.objects.filter(campaign=campaign, lead=lead).first()
    if member is None:
        member = CampaignMember.objects.create(campaign=campaign, lead=lead)
    dynamic = Segment.objects.get_or_create(name="Crawled segment", defaults={"entity": "lead"})[0]
    static = Segment.objects.get_or_create(
        name="Crawled static segment", defaults={"entity": "lead", "kind": "static"}
    )[0]
    return campaign, member, dynamic, static


def _marketing_api_case(case_id, method, resource, tail):
    """A segment's preview and a campaign's members and figures say nothing of another team's leads;
    that lead cannot be added to a static segment or a campaign (400, like an unknown id), and its
    membership is not changed or removed (404)."""

    def build(w, p, tail=tail, method=method, resource=resource):
        campaign, member, dynamic, static = _target_campaign_member(w, p)
        if resource == "segments":
            segment = static if tail == "{id}/members/" else dynamic
            url = f"{API_PREFIX}segments/{segment.pk}/{tail[len('{id}/') :]}"
            return method, url, {"add": [target_of(w, p).lead.pk]} if method == "POST" else None
        path = tail.replace("{id}", str(campaign.pk)).replace("{member_id}", str(member.pk))
        body = None
        if tail == "{id}/test-send/":
            body = {"to": "crawler@example.com"}
        elif method == "POST" and tail == "{id}/members/":
            body = {"lead_ids": [target_of(w, p).lead.pk]}
        elif method == "PATCH":
            body = {"status": "responded"}
        return method, f"{API_PREFIX}campaigns/{path}", body

    if method == "GET":
        return Case(case_id, "api", method, build, expect="read", leak_checked=True)
    if tail in ("{id}/send/", "{id}/test-send/"):
        # Sending reaches the members the sender sees: the other team's lead is not emailed or logged.
        return Case(case_id, "api", method, build, expect="unchanged", leak_checked=True)
    if method == "POST":
        return Case(case_id, "api", method, build, expect="rejected")
    return Case(case_id, "api", method, build)


def _quota_api_case(case_id, method, tail):
    """Another team's rep's quota is unknown (404) to read, change and delete; lists are reads."""
    if not tail.startswith("{id}/"):
        return Case(
            case_id, "api", method, lambda w, p: ("GET", f"{API_PREFIX}quotas/{tail}", {}), expect="read"
        )

    def detail(w, p):
        quota = w.quotas["owner" if p == "outsider" else "outsider"]
        url = f"{API_PREFIX}quotas/{quota.pk}/"
        body = None if method in ("GET", "DELETE") else {"target_amount": "1.00"}
        return method, url, body

    return Case(case_id, "api", method, detail)


def _report_api_case(case_id, method, tail):
    """Reports count only what the reader sees (read, the other team's records unnamed); another rep's
    private saved report is unknown (404) to run, export, change and delete."""
    if not tail.startswith("saved/{id}/"):
        path = tail.replace("{key}", "revenue")

        def read(w, p):
            if method == "POST":  # the builder: deals grouped by owner
                return (
                    "POST",
                    f"{API_PREFIX}reports/{path}",
                    {"record_type": "opportunities", "group_by": ["stage"]},
                )
            return "GET", f"{API_PREFIX}reports/{path}", {}

        return Case(case_id, "api", method, read, expect="read", leak_checked=True)

    def detail(w, p):
        report = w.saved_reports["owner" if p == "outsider" else "outsider"]
        url = f"{API_PREFIX}reports/{tail.replace('{id}', str(report.pk))}"
        body = None if method in ("GET", "DELETE") else {"name": f"by {p}", "record_type": "leads"}
        return method, url, body

    return Case(case_id, "api", method, detail)


ADMIN_CASES = admin_cases()
API_CASES = api_cases()
ALL_CASES = ADMIN_CASES + API_CASES


def _params():
    params = []
    for case in ALL_CASES:
        for persona in PERSONAS:
            mark = KNOWN_HOLES.get((case.id, persona)) or KNOWN_HOLES.get((case.id, None))
            params.append(
                pytest.param(case, persona, id=f"{case.id}-{persona}", marks=[mark] if mark else [])
            )
    return params


def _send(world, case, persona, method, url, body):
    if case.door == "admin":
        client = _admin_client(world, persona)
        if method == "GET":
            return client.get(url, body or {})
        return client.post(url, body or {})
    client = APIClient()
    client.force_authenticate(world.users[persona])
    if method == "GET":
        return client.get(url, body or {})
    if method == "DELETE":
        return client.delete(url)
    if any(hasattr(value, "read") for value in (body or {}).values()):
        return client.post(url, body, format="multipart")
    return getattr(client, method.lower())(url, body, format="json")


def _secrets(world, persona) -> list[str]:
    """What a list must not show ``persona``: the names of the other team's leads, deals, activities,
    the numbers of their quotes."""
    target = target_of(world, persona)
    return [
        target.lead.name,
        target.opportunity.name,
        target.activity.subject,
        target.quote.number,
        target.ticket.subject,
    ]


@pytest.mark.django_db
@pytest.mark.parametrize("case,persona", _params())
def test_another_teams_record_is_refused_at_every_door(world, case, persona):
    if case.persona_filter is not None and not case.persona_filter(world, persona):
        pytest.skip(f"a {persona} may legitimately do this")
    request = case.build(world, persona)
    if request is None:
        pytest.skip("nothing to try this on")
    method, url, body = request
    before = snapshot()
    before_target = target_state(world, persona, before)

    response = _send(world, case, persona, method, url, body)

    assert response.status_code < 500, f"{method} {url}: {response.status_code}"
    if case.expect == "refused":
        assert response.status_code in REFUSED, f"{method} {url} answered {response.status_code}"
    if case.expect == "rejected":  # refused, or answered like an unknown id in the body (400)
        assert response.status_code in REFUSED | {400}, f"{method} {url} answered {response.status_code}"
    if case.leak_checked and response.status_code == 200:
        content = b"".join(response.streaming_content) if response.streaming else response.content
        text = content.decode(errors="replace")
        shown = [secret for secret in _secrets(world, persona) if secret in text]
        assert not shown, f"{method} {url} shows another team's {shown}"
    after = snapshot()
    after_target = target_state(world, persona, after)
    touched = [key for key in before_target if before_target[key] != after_target[key]]
    assert not touched, f"{method} {url} ({response.status_code}) changed the other team's {touched}"
    if case.expect != "unchanged":
        changed = changed_tables(before, after)
        assert not changed, f"{method} {url} ({response.status_code}) changed {changed}"


def test_every_admin_url_and_api_operation_is_crawled():
    """Every admin page of a record kind and every API operation is tried by the crawler, or listed
    with the reason it touches no other team's record (building the cases already fails on a page or
    an operation the crawler does not know)."""
    crawled_pages = {case.id.split(":")[1] for case in ADMIN_CASES}
    for _route, name, model_admin in admin_patterns():
        if model_admin is None or _kind_of(model_admin) is None or name is None:
            continue
        opts = model_admin.model._meta
        suffix = name.removeprefix(f"{opts.app_label}_{opts.model_name}_")
        assert name in crawled_pages or suffix in NOT_RECORD_PAGES or suffix == "add", name
    crawled_operations = {case.id.split(":")[1] for case in API_CASES}
    for _method, path, operation in api_operations():
        configuration = any(path.startswith(f"{API_PREFIX}{r}/") for r in CONFIG_RESOURCES)
        assert operation in crawled_operations or operation in API_NOT_RECORD_OPERATIONS or configuration, (
            operation
        )
