"""The hostile-input crawler: every admin URL pattern, with hostile values in its path and in every
query parameter its page reads, answers 2xx, 3xx or 4xx, never a 500 (issue 14, "What to build" 5).

How it finds what to send, so a new page is crawled without editing this file:

* the URL patterns are walked from ``admin.site.get_urls()`` (each model admin's ``get_urls()``,
  custom pages included); path parameters get a real record's id (with dates in years 1 and 9999 in
  the data), then ``abc`` and a huge integer;
* a first request learns which query parameters the page reads (the request's ``GET`` records every
  name asked for); a page that reads all of them (a changelist, an add form's initial values, an
  export) gets the parameters its model admin gives meaning to (list filters, the date hierarchy,
  ordering, search, paging, the form's relations and dates) and the common ones below;
* each of those parameters is then sent alone, once per hostile value of its kind (invalid dates,
  huge integers, non-numeric ids, unknown choices).

The test client re-raises a view's exception, so a 500 fails the test with its traceback; every
failure of a pattern is collected and reported together.
"""

import datetime
import re
from types import SimpleNamespace
from urllib.parse import urlencode

import pytest
from django.contrib import admin
from django.contrib.admin.utils import get_fields_from_path
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.db import models, transaction
from django.http import HttpRequest, QueryDict
from django.urls import URLPattern, URLResolver
from django.urls.resolvers import RegexPattern
from django.utils import timezone

from crm.actors import SYSTEM
from crm.models import Lead
from sales import services_catalog, services_quotes
from tests.factories import (
    AccountFactory,
    ActivityFactory,
    ContactFactory,
    LeadFactory,
    LostReasonFactory,
    OpportunityFactory,
    PipelineFactory,
    ProductFactory,
    SalesTeam,
    StageFactory,
    TagFactory,
    UserFactory,
)

HUGE = "99999999999999999999"
BAD_DATES = ["2026-13-45", "0001-01-01", "9999-12-31"]
BAD_IDS = ["abc", HUGE]
BAD_CHOICES = ["abc", HUGE]
BAD_YEARS = ["9999", HUGE, "abc"]

# Parameters the CRM's pages give meaning to; every page that reads its whole query string gets them.
COMMON = (
    "date",
    "view",
    "offset",
    "limit",
    "stage",
    "pipeline",
    "page",
    "p",
    "o",
    "q",
    "lead",
    "opportunity",
    "contact",
    "account",
    "owner",
    "owner__id__exact",
    "status",
    "everyone",
    "ordering",
    "search",
    "format",
)
ID_PARAMS = {"offset", "limit", "page", "p", "stage", "pipeline", "lead", "opportunity", "contact", "account"}
ID_PARAMS |= {"owner", "tag", "record", "parent", "manager", "members", "tags", "user", "group"}
DATE_PARAMS = {"date", "date_from", "date_to", "start", "end", "close_date_from", "close_date_to"}


# A null character: PostgreSQL's text cannot hold one, so a value carrying it into a query is an error
# there (SQLite stores it). Every parameter gets it besides the values of its kind.
NUL = "a\x00b"


def hostile_values(name: str) -> list[str]:
    """The hostile values for one query parameter, by what its name says it holds."""
    return [*_values_of_its_kind(name), NUL]


def _values_of_its_kind(name: str) -> list[str]:
    if name.endswith("__year"):
        return BAD_YEARS
    if name.endswith(("__month", "__day")):
        return [HUGE]
    if name.endswith(("__gte", "__lt", "__lte", "__gt")):
        return ["2026-13-45", "9999-12-31"]  # a list filter's bound; the data spans years 1 to 9999
    if name in DATE_PARAMS or name.endswith("date"):
        return BAD_DATES
    if name.endswith(("__id__exact", "_id", "__id")) or name in ID_PARAMS:
        return BAD_IDS
    if name.endswith("__isnull"):
        return ["abc"]
    return BAD_CHOICES


# --- what a page reads -------------------------------------------------------------------------------

READS = SimpleNamespace(names=set(), everything=False)


class RecordingQueryDict(QueryDict):
    """A request's GET that notes the names a view asks for, and whether it reads them all."""

    def _read(self, key):
        READS.names.add(key)

    def _read_all(self):
        READS.everything = True

    def __getitem__(self, key):
        self._read(key)
        return super().__getitem__(key)

    def __contains__(self, key):
        self._read(key)
        return super().__contains__(key)

    def get(self, key, default=None):
        self._read(key)
        return super().get(key, default)

    def getlist(self, key, default=None):
        self._read(key)
        return super().getlist(key, default)

    def items(self):
        self._read_all()
        return super().items()

    def lists(self):
        self._read_all()
        return super().lists()

    def keys(self):
        self._read_all()
        return super().keys()

    def __iter__(self):
        self._read_all()
        return super().__iter__()

    def dict(self):
        self._read_all()
        return super().dict()

    def urlencode(self, safe=None):
        self._read_all()
        return super().urlencode(safe)

    def copy(self):
        self._read_all()
        return super().copy()


class RecordQueryReads:
    """Middleware (test only): gives each request a RecordingQueryDict and starts a fresh record."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        READS.names, READS.everything = set(), False
        request.GET = RecordingQueryDict(request.META.get("QUERY_STRING", ""), encoding=request.encoding)
        if request.method == "POST" and request.content_type == "application/x-www-form-urlencoded":
            # The crawler's POSTs are form-encoded: the form's fields are read through the same record.
            request.POST = RecordingQueryDict(request.body.decode(), encoding=request.encoding)
        return self.get_response(request)


# --- the URL patterns ----------------------------------------------------------------------------------

PARAM = re.compile(r"<(?:(?P<converter>\w+):)?(?P<name>\w+)>")
SKIPPED = {
    "logout",  # a GET logs nobody out (405) and a POST would end the crawler's session
}
# Pages not sent a POST: the password change would end the crawler's session (its form checks NUL).
NOT_POSTED = {"password_change", "auth_user_password_change"}


def _walk(patterns, prefix="", model_admin=None):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            # Each model admin's URLs are included under "<app>/<model>/".
            inner_admin = model_admin
            for candidate in admin.site._registry.values():
                if pattern.url_patterns is candidate.urls or str(pattern.pattern) == (
                    f"{candidate.opts.app_label}/{candidate.opts.model_name}/"
                ):
                    inner_admin = candidate
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern), inner_admin)
        elif isinstance(pattern, URLPattern):
            yield prefix, pattern, model_admin


def admin_patterns() -> list[tuple[str, URLPattern, admin.ModelAdmin | None]]:
    found = []
    for prefix, pattern, model_admin in _walk(admin.site.get_urls()):
        if pattern.name in SKIPPED:
            continue
        if (
            isinstance(pattern.pattern, RegexPattern)
            and pattern.name not in ("app_list",)
            and ("history" not in str(pattern.pattern))
        ):
            continue  # the catch-all that sends unknown admin URLs to the login or a 404
        found.append((prefix, pattern, model_admin))
    return found


def pattern_id(entry) -> str:
    prefix, pattern, _model_admin = entry
    route = str(pattern.pattern).lstrip("^").rstrip("$")
    return f"{prefix}{route}" or "index"


PATTERNS = admin_patterns()


# --- data ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def crawl_data(django_db_setup, django_db_blocker):
    """One record of every kind, some at the ends of the calendar (year 1 and year 9999), made once
    for the module and rolled back after it."""
    with django_db_blocker.unblock(), transaction.atomic():
        boss = get_user_model().objects.create_superuser("crawler", "crawler@example.com", "pw-crawl-123!")
        rep = UserFactory(username="crawl_rep")
        pipeline = PipelineFactory(name="Crawl", is_default=True)
        stages = {
            name: StageFactory(
                pipeline=pipeline, name=name, sequence=n, probability=p, is_won=won, is_lost=lost
            )
            for n, (name, p, won, lost) in enumerate(
                [("New", 10, False, False), ("Won", 100, True, False), ("Lost", 0, False, True)]
            )
        }
        tag = TagFactory(name="Crawl tag")
        LostReasonFactory(name="Crawl reason")
        account = AccountFactory(name="Crawl account", owner=rep)
        AccountFactory(name="Child account", parent=account, owner=rep)
        contact = ContactFactory(first_name="Crawl", account=account, owner=rep)
        lead = LeadFactory(name="Crawl lead", stage=stages["New"], owner=rep)
        lead.tags.add(tag)
        opportunity = OpportunityFactory(
            name="Crawl deal", stage=stages["New"], account=account, contact=contact, owner=rep, amount=10
        )
        OpportunityFactory(name="Deal of year 9999", stage=stages["New"], close_date=datetime.date.max)
        OpportunityFactory(name="Deal of year 1", stage=stages["New"], close_date=datetime.date.min)
        far = [
            timezone.make_aware(datetime.datetime(9999, 12, 31, 12)),
            timezone.make_aware(datetime.datetime(1, 1, 1, 12)),
        ]
        for due in far:
            ActivityFactory(subject=f"Due {due.year}", lead=lead, owner=boss, due_date=due)
        activity = ActivityFactory(
            subject="Crawl call", opportunity=opportunity, owner=rep, due_date=timezone.now()
        )
        old_lead = LeadFactory(name="Lead of year 1", stage=stages["New"])
        Lead.objects.filter(pk=old_lead.pk).update(created_at=far[1])
        Lead.objects.filter(pk=lead.pk).update(created_at=far[0])
        product = ProductFactory(sku="CRAWL-1", name="Crawl product")
        services_catalog.price_list_create(
            user=SYSTEM,
            data={"name": "Crawl prices", "currency": "EUR"},
            items=[{"product": product, "unit_price": 90}],
        )
        services_quotes.opportunity_line_create(
            opportunity=opportunity, user=SYSTEM, data={"product": product, "quantity": 2}
        )
        services_quotes.quote_create(opportunity=opportunity, user=SYSTEM)
        from sales.models import TerritoryRun
        from sales.services_territories import territory_create

        territory_create(user=SYSTEM, data={"name": "Crawl territory"}, rules=[{"country": "France"}])
        TerritoryRun.objects.create(started_by=boss, moves=[{"account_id": account.pk, "account": "x"}])
        from sales.models import CommissionLine, CommissionStatement
        from sales.services_commissions import commission_plan_create

        plan = commission_plan_create(
            user=SYSTEM, data={"name": "Crawl plan"}, tiers=[{"attainment_from": 0, "rate": 5}]
        )
        statement = CommissionStatement.objects.create(
            user=rep,
            plan=plan,
            period="quarter",
            period_start=datetime.date.min,
            period_end=datetime.date(1, 3, 31),
            computed_at=timezone.now(),
        )
        CommissionLine.objects.create(
            statement=statement, opportunity=opportunity, description="Crawl", amount=1, commission=1
        )
        team = SalesTeam.objects.create(name="Crawl team", manager=boss)
        team.members.add(rep)
        records = {type(r): r for r in (account, contact, lead, opportunity, activity, pipeline, tag, team)}
        yield SimpleNamespace(boss=boss, records=records, stage=stages["New"], lead=lead)
        transaction.set_rollback(True)


def a_record_of(model) -> models.Model | None:
    return model._default_manager.order_by("pk").first()


def fill(prefix: str, pattern: URLPattern, model_admin, data, bad: str | None = None) -> str | None:
    """The URL of ``pattern`` with its parameters filled: a real record's (or ``bad`` everywhere)."""
    model = model_admin.model if model_admin is not None else None
    record = data.records.get(model) or (a_record_of(model) if model is not None else None)
    route = str(pattern.pattern)
    if isinstance(pattern.pattern, RegexPattern):
        if pattern.name == "app_list":
            return "/admin/crm/"
        # simple-history's version page: ^(object id)/history/(history id)/$
        if record is None:
            return None
        version = record.history.order_by("history_id").first() if hasattr(record, "history") else None
        object_id, history_id = (bad, bad) if bad else (record.pk, version.history_id if version else 1)
        return f"/admin/{prefix}{object_id}/history/{history_id}/"

    def value(match):
        name = match["name"]
        if bad is not None:
            return bad
        if name == "content_type_id":
            return str(ContentType.objects.get_for_model(Lead).pk)
        if name == "object_id" and prefix == "":  # view_on_site: r/<content type>/<object>/
            return str(data.lead.pk)
        if name == "id" and model is not None and record is None:
            return "1"
        return str(record.pk) if record is not None else "1"

    return f"/admin/{prefix}{PARAM.sub(value, route)}"


# --- the parameters a model admin gives meaning to -------------------------------------------------------


def model_admin_params(model_admin) -> set[str]:
    """Changelist filters (list_filter, date hierarchy), and the fields an add form prefills."""
    if model_admin is None:
        return set()
    names = {"o", "p", "q", "_to_field", "_popup", "_changelist_filters"}
    model = model_admin.model
    for spec in model_admin.list_filter:
        if isinstance(spec, (tuple, list)):
            spec = spec[0]
        if isinstance(spec, str):
            field = get_fields_from_path(model, spec)[-1]
            names |= _field_params(spec, field)
        elif hasattr(spec, "parameter_name"):
            names.add(spec.parameter_name)
    if model_admin.date_hierarchy:
        names |= {f"{model_admin.date_hierarchy}__{part}" for part in ("year", "month", "day")}
    for field in model._meta.get_fields():
        if getattr(field, "concrete", False) and (field.is_relation or isinstance(field, models.DateField)):
            names.add(field.name)
    return names


def _field_params(path: str, field) -> set[str]:
    if field.is_relation:
        return {f"{path}__id__exact", f"{path}__isnull"}
    if isinstance(field, models.DateField):
        return {f"{path}__gte", f"{path}__lt"}
    return {f"{path}__exact"}


# --- the crawl -------------------------------------------------------------------------------------------


@pytest.fixture
def crawler(client, crawl_data, settings):
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, f"{__name__}.RecordQueryReads"]
    client.force_login(crawl_data.boss)
    return client


def get(client, url: str, failures: list[str] | None = None, query: dict | None = None) -> bool:
    """One GET; an exception (the test client re-raises it) or a 5xx is noted as a failure.
    Returns whether the page answered without failing."""
    label = url + (f"?{'&'.join(f'{k}={v}' for k, v in query.items())}" if query else "")
    return answered(label, lambda: client.get(url, query or {}), failures)


def post(client, url: str, failures: list[str] | None, data: dict) -> bool:
    """One form-encoded POST, rolled back; an exception or a 5xx is noted as a failure."""
    label = f"POST {url} " + ", ".join(f"{k}={v!r}" for k, v in sorted(data.items()))
    body = urlencode(data, doseq=True)
    return answered(
        label, lambda: client.post(url, body, content_type="application/x-www-form-urlencoded"), failures
    )


# What each request of the pattern being crawled did, by its label (its method, URL and data): the
# same request is not sent twice. Each one is rolled back, so a second would answer as the first did;
# a page that reads no field got the same empty POST nine times, 18 % of the crawl's requests.
SENT: dict[str, tuple[str | None, set[str], bool]] = {}


def answered(label: str, send, failures: list[str] | None) -> bool:
    """Send one request in a transaction rolled back after it; an exception (the test client re-raises
    it) or a 5xx is noted in ``failures`` under ``label``. Returns whether it answered without failing.
    A request already sent for this pattern is not sent again: its failure, if any, and what it read
    (``READS``) are those of the first time."""
    if label in SENT:
        failure, names, everything = SENT[label]
        READS.names, READS.everything = set(names), everything
    else:
        failure = _send(label, send)
        SENT[label] = (failure, set(READS.names), READS.everything)
    if failure is not None and failures is not None:
        failures.append(failure)
    return failure is None


def _send(label: str, send) -> str | None:
    """The failure of one request, rolled back after it, or None."""
    try:
        with transaction.atomic():
            response = send()
            transaction.set_rollback(True)
    except Exception as exc:
        return f"{label}: {type(exc).__name__}: {exc}"
    if response.status_code >= 500:
        return f"{label}: answered {response.status_code}"
    return None


# What a POST gets in every field it reads: a null character, not a number, a number past any id, an
# impossible date.
POST_VALUES = [NUL, "abc", HUGE, "2026-13-45"]


def together(names: set[str], value: str) -> dict:
    """Every field given ``value``, but a formset's form counts (``…-TOTAL_FORMS``) a small one: a
    huge count is Django's to cap (at 2,000 forms), and building them only slowed the crawl (a
    list-editable changelist took minutes). Alone, each count still gets every value."""
    return {name: "2" if name.endswith("_FORMS") and value == HUGE else value for name in names}


def crawl_posts(client, user, url: str, pattern: URLPattern, model_admin, failures: list[str]) -> None:
    """POST the page what it reads: each field alone with a null character (a field's own check may
    be all that stands before the database, and another field's refusal would hide it; an add or
    change form gets them all at once), then all fields together with each other hostile value, one
    at a time where together failed. The fields read by a POST that carried the others are tried too
    (a form's second step). A changelist also gets an action over a tampered selection."""
    post(client, url, failures, {})
    names = set(READS.names)
    for value in POST_VALUES:
        post(client, url, None, together(names, value))
        names |= READS.names
    if is_form(pattern):
        # A model form checks each field on its own (Django's fields refuse a NUL): together is enough,
        # and keeps the crawl of some two hundred forms short.
        if not post(client, url, None, together(names, NUL)):
            for name in sorted(names):
                post(client, url, failures, {name: NUL})
    else:
        for name in sorted(names):
            post(client, url, failures, {name: NUL})
    for value in POST_VALUES[1:]:
        if not post(client, url, None, together(names, value)):
            for name in sorted(names):
                post(client, url, failures, {name: value})
    if model_admin is not None and pattern.name and pattern.name.endswith("_changelist"):
        request = HttpRequest()
        request.user = user
        actions = list(model_admin.get_actions(request))
        for action in [*actions[:1], NUL]:
            for selected in ([NUL], ["abc"], [HUGE], ["1", NUL]):
                post(client, url, failures, {"action": action, "index": "0", "_selected_action": selected})
            post(client, url, failures, {"action": action, "index": NUL, "_selected_action": ["1"]})


def is_form(pattern: URLPattern) -> bool:
    """An add or change form: each query parameter is one field's initial value, shown independently
    of the others, so one request can carry them all (and each is tried alone only if it fails)."""
    return bool(pattern.name) and pattern.name.endswith(("_add", "_change"))


@pytest.mark.django_db
@pytest.mark.parametrize("entry", PATTERNS, ids=[pattern_id(entry) for entry in PATTERNS])
def test_no_hostile_input_makes_an_admin_page_answer_500(crawler, crawl_data, entry):
    prefix, pattern, model_admin = entry
    failures: list[str] = []
    SENT.clear()

    url = fill(prefix, pattern, model_admin, crawl_data)
    if url is None:
        pytest.skip(f"no record to fill {pattern_id(entry)} with")
    get(crawler, url, failures)
    reads, everything = set(READS.names), READS.everything

    # Hostile path parameters: not a number, and a number past any id.
    has_params = PARAM.search(str(pattern.pattern)) or isinstance(pattern.pattern, RegexPattern)
    if has_params and pattern.name != "app_list":
        for bad in ("abc", HUGE):
            get(crawler, fill(prefix, pattern, model_admin, crawl_data, bad=bad), failures)

    # Hostile query parameters: each one the page reads, once per hostile value of its kind.
    params = set(reads)
    if everything:
        params |= model_admin_params(model_admin)
        if not is_form(pattern):
            params |= set(COMMON)
    if is_form(pattern):
        values = sorted({value for name in params for value in hostile_values(name)})
        for value in values:
            together = dict.fromkeys(params, value)
            if not get(crawler, url, None, together):
                for name in sorted(params):
                    get(crawler, url, failures, {name: value})
    else:
        for name in sorted(params):
            for value in hostile_values(name):
                get(crawler, url, failures, {name: value})

    # Hostile form bodies: every field the page reads from a POST, and a changelist's actions.
    if pattern.name not in NOT_POSTED:
        crawl_posts(crawler, crawl_data.boss, url, pattern, model_admin, failures)

    assert not failures, "\n".join(failures)
