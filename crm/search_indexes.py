"""Trigram indexes for the ``icontains`` searches of the API lists and the admin changelists.

Django compiles ``field__icontains`` on PostgreSQL to ``UPPER("table"."column"::text) LIKE UPPER(%s)``.
A GIN index with ``gin_trgm_ops`` on exactly that expression lets the planner answer ``LIKE '%term%'``
from the index (a bitmap scan, OR-ed across a search's columns) instead of reading every row. The
indexes exist on PostgreSQL only (pg_trgm, migration crm 0004); other databases search by scanning.

``SEARCH_TRIGRAM_INDEXES`` lists them by table (sales and activities register theirs with
``register_trigram_indexes``); the migrations create them and the tests check that
every searched column of every list and changelist has one, or is in its table's search text.

The search text (``SEARCH_TEXT_COLUMNS``, the leads'): on PostgreSQL the database keeps a table's
searched columns in one more column, upper-cased and joined by a separator no searched word holds
(crm 0046: a stored generated column the models do not name). A word is then one ``LIKE`` on it
(``search_condition``) rather than five ``UPPER(column) LIKE``, which is what testing a rep's rows one
by one costs: at five million leads, 111,000 rows in 150 ms through the five columns, 35-45 ms
through the search text. It carries one trigram index instead of five, and the owner key's index
carries it (crm_lead_owner_search), so that a rep's search is read and counted from that index alone.
"""

import json
from functools import cache, reduce
from operator import or_

from django.core.exceptions import EmptyResultSet, FieldDoesNotExist
from django.db import DEFAULT_DB_ALIAS, connections, migrations
from django.db.models import BooleanField, Expression, F, Model, Q, QuerySet, TextField, Value
from django.db.models.constants import LOOKUP_SEP
from django.db.models.expressions import Col, RawSQL
from django.db.models.functions import Upper
from django.db.models.lookups import Contains
from django.db.models.sql import Query

SEARCH_TRIGRAM_INDEXES: dict[str, tuple[str, ...]] = {
    # The leads' searches go through their search text (SEARCH_TEXT_COLUMNS); these two stay for the
    # duplicate rules' similar names (crm.duplicates: ``UPPER(column) % value``).
    "crm_lead": ("contact_name", "company_name"),
    "crm_account": ("name", "website", "phone", "billing_city", "billing_country"),
    "crm_contact": ("first_name", "last_name", "email", "phone", "mobile"),
}


# Table → the searched columns its search text joins, in order (PostgreSQL; crm 0046 makes it). The
# leads' are crm.models.LEAD_SEARCH_FIELDS (a test checks that the two agree).
SEARCH_TEXT_COLUMNS: dict[str, tuple[str, ...]] = {
    "crm_lead": ("name", "contact_name", "email", "company_name", "phone"),
}
SEARCH_TEXT_COLUMN = "search_text"
# Between two columns in the search text: a search word never holds it (it is whitespace to
# ``str.split``), so a word found in the search text is found in one column, as ``icontains`` finds it.
SEARCH_TEXT_SEPARATOR = "\x1f"


def search_text_sql(columns: tuple[str, ...]) -> str:
    """The search text's SQL (PostgreSQL): the columns upper-cased and joined by the separator."""
    joined = " || E'\\x1f' || ".join(f"{column}::text" for column in columns)
    return f"UPPER({joined})"


@cache
def _search_text_field(model: type[Model]) -> TextField:
    field = TextField()
    field.set_attributes_from_name(SEARCH_TEXT_COLUMN)
    field.model = model
    return field


class SearchText(Expression):
    """A table's search text column, under the alias the query gives the table (PostgreSQL)."""

    output_field = TextField()

    def resolve_expression(self, query=None, allow_joins=True, reuse=None, summarize=False, for_save=False):
        base = F("pk").resolve_expression(query, allow_joins, reuse, summarize, for_save)
        return Col(base.alias, _search_text_field(query.model), output_field=TextField())


def searches_text(model: type[Model], fields, using: str) -> bool:
    """Whether a search of ``fields`` (plain column names) on ``model``'s table is read from its search
    text: on PostgreSQL, for exactly the columns the search text joins."""
    columns = SEARCH_TEXT_COLUMNS.get(model._meta.db_table)
    return columns is not None and tuple(fields) == columns and connections[using].vendor == "postgresql"


def search_condition(model: type[Model], fields, word: str, using: str) -> Q:
    """``word`` in one of ``fields`` of ``model``, case aside (``icontains``): one ``LIKE`` on the
    search text where ``searches_text``, the column's ``UPPER()`` against the word's as Django's
    ``icontains`` has it (so ``ß``, accents and ``%``, ``_`` or ``\\`` in the word match alike). A
    field across a foreign key (``account__name``) is ``contains_across`` on PostgreSQL."""
    if SEARCH_TEXT_SEPARATOR not in word and searches_text(model, fields, using):
        return _in_search_text(word)
    postgresql = connections[using].vendor == "postgresql"
    return reduce(
        or_,
        (
            contains_across(model, field, word, using)
            if postgresql and key_path(model, field)
            else Q(**{f"{field}__icontains": word})
            for field in fields
        ),
    )


def plain_search(model: type[Model], fields, using: str) -> bool:
    """Whether ``search_condition`` writes a search of ``fields`` that Django's admin writes otherwise:
    on PostgreSQL, each field a column of ``model`` or one reached through foreign keys (``key_path``),
    without the admin's ``^``, ``=`` or ``@`` prefixes or a lookup of its own, and one of them at least
    in the search text or across a key."""
    if not fields or connections[using].vendor != "postgresql":
        return False
    columns = []
    for field in fields:
        if key_path(model, field):
            continue
        try:
            column = model._meta.get_field(field)
        except FieldDoesNotExist:
            return False
        if not column.concrete or column.is_relation:
            return False
        columns.append(field)
    return len(columns) < len(fields) or searches_text(model, fields, using)


def key_path(model: type[Model], field: str) -> bool:
    """Whether ``field`` is a column reached through one or more foreign keys (``account__name``,
    ``opportunity__account__name``): each step a many-to-one or a one-to-one of its own model, the last
    a plain column."""
    *steps, last = field.split(LOOKUP_SEP)
    if not steps:
        return False
    for step in steps:
        try:
            relation = model._meta.get_field(step)
        except FieldDoesNotExist:
            return False
        if not (relation.is_relation and relation.concrete and (relation.many_to_one or relation.one_to_one)):
            return False
        model = relation.related_model
    try:
        column = model._meta.get_field(last)
    except FieldDoesNotExist:
        return False
    return column.concrete and not column.is_relation


# A search across a foreign key reads at most this many ids of matching related rows (contains_across).
SEARCH_RELATED_KEYS_MAX = 20_000


def contains_across(model: type[Model], field: str, word: str, using: str) -> Q:
    """``field__icontains=word`` for a ``field`` reached through a foreign key (``key_path``) on
    PostgreSQL: the ids of the related rows that match are read first, and the record's key is looked
    up among them (``account_id = ANY(%s)``).

    Django joins the related table instead, and a search that ORs a column of another table with the
    record's own columns can use no index: every deal or contact search read the whole table. Now the
    related rows come from their trigram index, the records from their key's index ORed with their own
    columns' indexes. At a million leads (200,000 deals, 300,000 contacts), p50: the API's deal search
    for a surname 188-270 -> 26-29 ms, for a word found nowhere 174-260 -> 7-11 ms; the admin's contact
    search 421-479 -> 97-104 ms (benchmarks/BENCHMARKS.md). The ids are read first, not in a subquery,
    so the planner knows how many there are (a subquery's array is guessed at ten, and looking 80,000
    keys up one by one took seconds). A word in more than ``SEARCH_RELATED_KEYS_MAX`` related rows
    ("a") is searched through Django's join, as before: the whole table is read either way. The same
    rows: a record with no related row (a null key) matches neither way."""
    step, _, rest = field.partition(LOOKUP_SEP)
    relation = model._meta.get_field(step)
    related = relation.related_model
    target = relation.target_field
    keys = (
        related._base_manager.db_manager(using)
        .filter(search_condition(related, (rest,), word, using))
        .order_by()
        .values_list(target.attname, flat=True)
    )
    found = list(keys[: SEARCH_RELATED_KEYS_MAX + 1])
    if len(found) > SEARCH_RELATED_KEYS_MAX:
        return Q(**{f"{field}__icontains": word})
    return Q(KeyAmong(F(relation.attname), found, target.rel_db_type(connections[using])))


class KeyAmong(Expression):
    """``key = ANY(%s::type[])``, a condition (PostgreSQL): the key's index looks each value up, in a
    scan the planner can OR with other conditions' index scans (``key IN (...)`` of a subquery cannot),
    or, reading the table, tests each row against the values hashed."""

    conditional = True

    def __init__(self, key, values: list, db_type: str):
        super().__init__(output_field=BooleanField())
        self.key, self.values, self.db_type = key, list(values), db_type

    def get_source_expressions(self):
        return [self.key]

    def set_source_expressions(self, expressions):
        (self.key,) = expressions

    def as_sql(self, compiler, connection):
        key_sql, key_params = compiler.compile(self.key)
        return f"({key_sql} = ANY(%s::{self.db_type}[]))", (*key_params, self.values)


def column_contains(model: type[Model], field: str, value: str, using: str = DEFAULT_DB_ALIAS) -> Q:
    """``field__icontains=value``; where ``field`` is a column of ``model``'s search text (PostgreSQL),
    with the value looked up in the search text too, whose trigram index finds the candidates (the
    leads' name, email and phone have no index of their own): an automation rule's "email contains"
    over every lead reads the index, not the table. The same rows: what the column holds, the search
    text holds."""
    plain = Q(**{f"{field}__icontains": value})
    columns = SEARCH_TEXT_COLUMNS.get(model._meta.db_table, ())
    if field in columns and SEARCH_TEXT_SEPARATOR not in value and connections[using].vendor == "postgresql":
        return _in_search_text(value) & plain
    return plain


def _in_search_text(word: str) -> Q:
    return Q(Contains(SearchText(), Upper(Value(word))))


def register_trigram_indexes(table: str, columns: tuple[str, ...]) -> None:
    """The searched columns of another app's table (from its AppConfig.ready(), so its migrations and
    the tests find them)."""
    SEARCH_TRIGRAM_INDEXES[table] = tuple(columns)


def trigram_index_name(table: str, column: str) -> str:
    return f"{table}_{column}_trgm"


# How many values ANALYZE keeps of a searched expression (PostgreSQL's default is 100). The planner
# guesses how many rows ``LIKE '%term%'`` matches by trying the term on that histogram: with 100 values
# one hit stands for 1% of the table, and at five million leads a contact's name matching 0.26% was
# sometimes (depending on ANALYZE's sample) guessed at 2%, which made reading the whole table to
# collect narrow_to_matches' ids look cheaper than the trigram indexes: 3.8 s instead of 0.1 s.
SEARCH_STATISTICS_TARGET = 1000


# How much a trigram index holds of new rows before they are merged into it (kB; PostgreSQL's default
# is 4 MB). GIN keeps the entries of new rows in a pending list, and every search of the index reads all
# of it: a lead created after a few thousand others (an import, a day of web forms) looked for its
# similar names through 4 MB of pending entries, which doubled the duplicate check's cost (the company's
# name 5-8 ms on a merged index, 22 ms beside a full list; a create's database time 32-40 ms against
# 16-19). At 128 kB the list is read in well under a millisecond, and merged every few hundred rows,
# which costs an import no more (benchmarks/BENCHMARKS.md, "Nineteenth pass").
TRIGRAM_PENDING_LIST_KB = 128


def trigram_index_sql(table: str, column: str) -> str:
    return (
        f'CREATE INDEX IF NOT EXISTS "{trigram_index_name(table, column)}" ON "{table}" '
        f'USING gin ((UPPER("{column}"::text)) gin_trgm_ops) '
        f"WITH (gin_pending_list_limit = {TRIGRAM_PENDING_LIST_KB})"
    )


# Every trigram index of the schema: the searched columns', the search text's, the duplicate rules'.
_TRIGRAM_INDEXES_SQL = """
    SELECT DISTINCT c.relname FROM pg_index i
    JOIN pg_class c ON c.oid = i.indexrelid
    JOIN pg_opclass o ON o.oid = ANY(i.indclass)
    WHERE o.opcname = 'gin_trgm_ops' AND c.relnamespace = current_schema()::regnamespace
    ORDER BY c.relname
"""


def trigram_pending_lists() -> migrations.RunPython:
    """A migration operation giving every trigram index of the schema ``TRIGRAM_PENDING_LIST_KB`` of
    pending list (a setting: nothing is rebuilt); a no-op off PostgreSQL."""

    def alter(schema_editor, setting: str) -> None:
        if schema_editor.connection.vendor != "postgresql":
            return
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(_TRIGRAM_INDEXES_SQL)
            indexes = [name for (name,) in cursor.fetchall()]
        for index in indexes:
            schema_editor.execute(f'ALTER INDEX "{index}" {setting}')

    return migrations.RunPython(
        lambda apps, schema_editor: alter(
            schema_editor, f"SET (gin_pending_list_limit = {TRIGRAM_PENDING_LIST_KB})"
        ),
        lambda apps, schema_editor: alter(schema_editor, "RESET (gin_pending_list_limit)"),
    )


def search_statistics_sql(table: str, column: str) -> str:
    """Gives a search index, where it exists, ``SEARCH_STATISTICS_TARGET`` (ANALYZE then reads it)."""
    return (
        f'ALTER INDEX IF EXISTS "{trigram_index_name(table, column)}" '
        f"ALTER COLUMN 1 SET STATISTICS {SEARCH_STATISTICS_TARGET}"
    )


def set_search_statistics(*tables: str) -> migrations.RunPython:
    """A migration operation giving the search indexes of ``tables`` (default: every registered one)
    their statistics target, then analyzing the tables; a no-op off PostgreSQL."""

    def forward(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        chosen = list(tables or SEARCH_TRIGRAM_INDEXES)
        for table in chosen:
            for column in SEARCH_TRIGRAM_INDEXES[table]:
                schema_editor.execute(search_statistics_sql(table, column))
        with schema_editor.connection.cursor() as cursor:
            cursor.execute("SELECT relname FROM pg_class WHERE relname = ANY(%s) AND relkind = 'r'", [chosen])
            present = [name for (name,) in cursor.fetchall()]
        if present:
            schema_editor.execute(f"ANALYZE {', '.join(present)}")

    return migrations.RunPython(forward, migrations.RunPython.noop)


def create_trigram_indexes(*tables: str) -> migrations.RunPython:
    """A migration operation making the trigram indexes of ``tables``; a no-op off PostgreSQL."""

    def forward(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        for table in tables:
            for column in SEARCH_TRIGRAM_INDEXES[table]:
                schema_editor.execute(trigram_index_sql(table, column))
                schema_editor.execute(search_statistics_sql(table, column))

    def backward(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        for table in tables:
            for column in SEARCH_TRIGRAM_INDEXES[table]:
                schema_editor.execute(f'DROP INDEX IF EXISTS "{trigram_index_name(table, column)}"')

    return migrations.RunPython(forward, backward)


# How a search's matching ids are read on PostgreSQL (``first_match_ids``): a term the planner expects to
# match at least a share of a table's rows is read from the table in its order with a LIMIT, which meets
# enough matches within its first pages and stops (a three-letter fragment: a few ms); a rarer one
# through the trigram indexes (a materialized CTE), since that read would go through every row to find
# too few. A share, not a number of rows: the planner's estimate of a long pattern grows with the table
# (an email address in 5,000,000 leads: 2,421 expected, 52 found), and the read in table order then went
# through 300,000 rows for its first six (0.3-1 s). The global search wants six ids of a kind: a term
# expected in one row in a thousand meets them soon.
COMMON_TERM_SHARE = 0.001
# Where the table's size is unknown (never analysed): the matches expected that make a term common.
COMMON_TERM_ROWS = 1000


def common_term(estimate: float, table_rows: float, share: float = COMMON_TERM_SHARE) -> bool:
    """Whether a term the planner expects in ``estimate`` rows of a table of ``table_rows`` (0 or less:
    unknown, as for a table never analysed) is read in table order rather than through the trigram
    indexes: expected in ``share`` of the rows or more."""
    if table_rows <= 0:
        return estimate >= COMMON_TERM_ROWS
    return estimate >= share * table_rows


def table_rows(models: list[type[Model]], using: str) -> dict[type[Model], float]:
    """The planner's count of each model's rows (``pg_class.reltuples``: -1 never analysed), one query."""
    tables = {model._meta.db_table: model for model in models}
    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT relname, reltuples FROM pg_class WHERE oid = ANY(%s::regclass[])", [list(tables)]
        )
        return {tables[name]: rows for name, rows in cursor.fetchall()}


def plan_rows(queryset: QuerySet) -> float:
    """The planner's estimate of the rows ``queryset`` returns (``EXPLAIN``, PostgreSQL)."""
    sql, params = queryset.query.sql_with_params()
    with connections[queryset.db].cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    return (json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]["Plan Rows"]


def first_match_ids(matches: QuerySet, count: int, rows: float, *, share: float = COMMON_TERM_SHARE) -> list:
    """The ids of up to ``count`` of ``matches``, in no order.

    On PostgreSQL the path is chosen from the planner's estimate of the matches (``EXPLAIN``, which
    applies the pattern to the column's statistics) against the table's rows (``rows``: ``table_rows``;
    0 or less when unknown): a common term is read with the LIMIT, a rare one through the trigram indexes
    (``common_term`` with ``share``). The latter is a materialized CTE: planned with the LIMIT in sight,
    the planner would read the table from the start hoping to meet enough matches soon, which for a rare
    term is every row (300,000 contacts: 100 ms quiet, seconds under load); the CTE is still read
    lazily, so it too stops at ``count``. One path for every term was 1 s or more for the other kind.
    """
    ids = matches.order_by().values_list("pk", flat=True)
    connection = connections[ids.db]
    if connection.vendor != "postgresql":
        return list(ids[:count])
    estimate = plan_rows(ids)
    sql, params = ids.query.sql_with_params()
    with connection.cursor() as cursor:
        if common_term(estimate, rows, share):
            cursor.execute(f"{sql} LIMIT %s", [*params, count])
        else:
            cursor.execute(
                f"WITH matches AS MATERIALIZED ({sql}) SELECT * FROM matches LIMIT %s", [*params, count]
            )
        return [row[0] for row in cursor.fetchall()]


# A search matching at most this many records is answered from their ids (see narrow_to_matches).
SEARCH_ID_LIST_MAX = 5000
# A term expected in this share of the table or more has its ids read in table order: it meets
# SEARCH_ID_LIST_MAX + 1 matches early. A rarer one goes through the trigram indexes. Measured at a
# million leads for a rep (who sees one lead in fifty): "Alexander", expected in 2.5% of the leads and
# 496 of them the rep's, went through every row in table order (252 ms; 45 ms through the indexes);
# fragments expected in 11-25% ("mar", "son", "ing") took 155-255 ms in table order and as long or
# longer (217-316 ms) through the indexes, which build the whole bitmap before the first row.
SEARCH_ID_LIST_COMMON_SHARE = 0.1


def narrow_to_matches(
    queryset: QuerySet,
    scope: Q | None = None,
    unsearched: QuerySet | None = None,
    *,
    counted: bool = False,
    keyed_scope: Q | None = None,
) -> QuerySet:
    """``queryset`` (already filtered by a search) restricted to the ids of its matches, when they are few.

    PostgreSQL cannot estimate how many rows ``LIKE '%term%'`` matches. Ordered by the list's index
    (created_at) with a LIMIT, it guesses hundreds of matches and walks that index backwards hoping to
    meet 25 of them soon: for a rare term that reads the whole table (2 s at a million leads). Asked for
    the matching ids without an order, it bounds the work. Up to SEARCH_ID_LIST_MAX matches, the page
    and its count are then read by primary key; beyond that, matches are common enough for the index
    walk to find a page quickly.

    ``counted``: the page will be counted exactly (the API's page-number lists). Every match is then
    read once, the ids of the first SEARCH_ID_LIST_MAX with their count (``match_count_and_ids``,
    planned as the count is), and the queryset returned knows its count (``KnownCountQuery``): past
    SEARCH_ID_LIST_MAX the count no longer reads every match a second time (a rep's "son" at a million
    leads, 6,481 matches: 108-135 ms a page -> 67-78). Otherwise (a cursor page, an export, an admin
    changelist), up to SEARCH_ID_LIST_MAX + 1 ids are read and the read stops there
    (``first_match_ids``).

    ``scope``: the reader's visibility rule with the owners listed (``record_visible_listed``), which
    ``queryset`` already applies in its own form; added to the read of the ids (and, past
    SEARCH_ID_LIST_MAX, to the page and its count), it lets the owner index and the trigram indexes
    answer it together: a rep's "mar" at a million leads, 82 ms instead of 317.

    ``keyed_scope``: the same rule on the owner key (``record_visible_keyed``), where the kind has an
    index on it carrying its search text (the leads'); used instead of ``scope``. The planner then
    tests the reader's rows one by one from that index, one LIKE each (a rep's "mar", "son" or "an" at
    five million leads: 37-65 ms for 111,000 rows, where the trigram and owner indexes' bitmaps took
    520-620 ms), or, for a term its trigrams narrow to a few rows ("bob@"), goes through the trigram
    index: both are priced right now that a row costs one LIKE, not five ``UPPER() LIKE``.

    ``unsearched``: ``queryset`` before the search's conditions. The ids found are then read from it,
    so the page and its count neither plan the search's patterns again (PostgreSQL estimates each
    against a thousand sampled values of its column, a few ms a query on the leads) nor recheck them.
    """
    if connections[queryset.db].vendor != "postgresql":
        return queryset
    try:
        if keyed_scope is not None:
            scope = keyed_scope
        matches = queryset.filter(scope) if scope else queryset
        if counted:
            total, ids = match_count_and_ids(matches, SEARCH_ID_LIST_MAX)
        else:
            rows = table_rows([queryset.model], queryset.db).get(queryset.model, -1)
            ids = first_match_ids(matches, SEARCH_ID_LIST_MAX + 1, rows, share=SEARCH_ID_LIST_COMMON_SHARE)
            total = None
    except EmptyResultSet:
        # A condition Django writes no SQL for (an inactive reader's rule, ``pk IN ()``): no match.
        return queryset.none()
    if (len(ids) if total is None else total) > SEARCH_ID_LIST_MAX:
        return matches if total is None else with_known_count(matches, total)
    # One array parameter rather than an IN list of up to SEARCH_ID_LIST_MAX placeholders, which
    # the count and the page would each build, send and have parsed.
    found = queryset if unsearched is None else unsearched
    found = found.filter(pk__in=RawSQL("SELECT unnest(%s::bigint[])", (ids,)))
    return found if total is None else with_known_count(found, total)


def match_count_and_ids(matches: QuerySet, limit: int) -> tuple[int, list]:
    """How many rows ``matches`` has, and the ids of up to ``limit`` of them (in no order): one read of
    every match, planned without a LIMIT, as its count is (PostgreSQL)."""
    ids = matches.order_by().values_list("pk", flat=True)
    sql, params = ids.query.sql_with_params()
    with connections[ids.db].cursor() as cursor:
        cursor.execute(f"SELECT count(*), (array_agg(m.pk))[1:%s] FROM ({sql}) AS m(pk)", [limit, *params])
        total, first = cursor.fetchone()
    return total, first or []


class KnownCountQuery(Query):
    """A query whose count was read with its rows' ids (``narrow_to_matches``): ``count()`` answers
    it without a query as long as nothing changed what is counted since (a condition added, distinct,
    a slice, a grouping, a combination); an ordering or a selection of columns does not."""

    known_count: int | None = None
    known_shape: tuple | None = None

    def count_shape(self) -> tuple:
        return (
            len(self.where.children),
            self.where.connector,
            self.where.negated,
            self.distinct,
            self.distinct_fields,
            self.combinator,
            self.low_mark,
            self.high_mark,
            self.group_by,
        )

    def get_count(self, using):
        if self.known_count is not None and self.count_shape() == self.known_shape:
            return self.known_count
        return super().get_count(using)


def with_known_count(queryset: QuerySet, count: int) -> QuerySet:
    """``queryset``, whose count is ``count``, answering ``count()`` without reading it again."""
    counted = queryset.all()
    query = counted.query.chain(KnownCountQuery)
    query.known_count = count
    query.known_shape = query.count_shape()
    counted.query = query
    return counted
