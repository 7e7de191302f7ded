"""Querysets compiled once and run again with another key: the hot reads of a write's event, and of every
API request (its token, its user's permissions, role and team).

Building and compiling a queryset costs Django about half a millisecond, ten times the round trip of
the statement itself; a service publishing an event reads a few small things by primary key (the
record's annotations, its tags, its pipeline's win model) on every write. ``PreparedQuery`` keeps the
SQL the ORM wrote for a key and runs it again with the next key, applying the same converters.
"""

import threading
from collections.abc import Callable, Hashable
from typing import Any

from django.core.exceptions import EmptyResultSet, FullResultSet
from django.db import connections
from django.db.models import Model, QuerySet
from django.db.models.expressions import Col

# An id no row has: compiled in place of the real key, then swapped for it at each run.
_KEY = -2_147_000_123  # within a 32-bit integer column's range
# The same for a text key (an API token): a text no key is.
_TEXT_KEY = "crm-prepared-key-5b7f0e2c"


class NotPreparable(Exception):
    """The queryset's SQL does not take the key as a parameter: use the ORM instead."""


class PreparedQuery:
    def __init__(self, build: Callable[[Any], QuerySet], *, text: bool = False, keyless: bool = False):
        sentinel = None if keyless else _TEXT_KEY if text else _KEY
        queryset = build(sentinel)
        self.model = queryset.model
        self.db = queryset.db
        compiler = queryset.query.get_compiler(using=self.db)
        try:
            self.sql, params = compiler.as_sql()
        except (EmptyResultSet, FullResultSet) as exc:
            raise NotPreparable(str(queryset.query.__class__)) from exc
        # A keyless query has nothing to swap (a None among its values is a value, not the key).
        positions = [
            n
            for n, value in enumerate(params)
            if not keyless and type(value) is type(sentinel) and value == sentinel
        ]
        if not positions and not keyless:
            raise NotPreparable(self.sql)
        self.params, self.positions = list(params), positions
        self.compiler = compiler
        self.columns = [alias for _, _, alias in compiler.select]
        self.converters = compiler.get_converters([expression for expression, _, _ in compiler.select])
        # For a plain model query: the attnames of its columns, to build instances with Model.from_db.
        self.attnames = (
            [expression.target.attname for expression, _, _ in compiler.select]
            if all(isinstance(expression, Col) for expression, _, _ in compiler.select)
            else None
        )
        self.klass_info, self.annotation_col_map = compiler.klass_info, compiler.annotation_col_map

    def rows(self, key) -> list[tuple]:
        params = list(self.params)
        for position in self.positions:
            params[position] = key
        with connections[self.db].cursor() as cursor:
            cursor.execute(self.sql, params)
            rows = cursor.fetchall()
        if self.converters:
            rows = [tuple(row) for row in self.compiler.apply_converters(rows, self.converters)]
        return rows

    def objects(self, key) -> list[Model]:
        """The model instances of a model query, with its select_related relations and annotations
        (what the ORM's ModelIterable builds from the same rows)."""
        from django.db.models.query import get_related_populators

        if self.klass_info is None:
            raise NotPreparable(self.sql)
        fields = self.klass_info["select_fields"]
        start, end = fields[0], fields[-1] + 1
        init_list = [expression.target.attname for expression, _, _ in self.compiler.select[start:end]]
        populators = get_related_populators(self.klass_info, self.compiler.select, self.db)
        found = []
        for row in self.rows(key):
            obj = self.model.from_db(self.db, init_list, row[start:end])
            for populator in populators:
                populator.populate(row, obj)
            for name, position in self.annotation_col_map.items():
                setattr(obj, name, row[position])
            found.append(obj)
        return found

    def instances(self, key) -> list[Model]:
        if self.attnames is None:
            raise NotPreparable(self.sql)
        return [self.model.from_db(self.db, self.attnames, row) for row in self.rows(key)]


_local = threading.local()


def prepared(
    key: Hashable, build: Callable[[Any], QuerySet], *, text: bool = False, keyless: bool = False
) -> PreparedQuery | None:
    """The PreparedQuery of ``key`` in this thread (a compiler holds its thread's connection), built
    from ``build(pk)`` on first use (``text``: the key is a text, not an integer; ``keyless``: a query
    that takes none, built from ``build(None)`` and run as it is, with any key); None when the
    queryset cannot be prepared (use the ORM)."""
    cache = getattr(_local, "queries", None)
    if cache is None:
        cache = _local.queries = {}
    if key not in cache:
        try:
            cache[key] = PreparedQuery(build, text=text, keyless=keyless)
        except NotPreparable:
            cache[key] = None
    return cache[key]
