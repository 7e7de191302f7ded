"""Strict cell parsers built once per import from the model's fields, and spreadsheet formula escaping.

A parser takes one cell (a ``str`` from CSV; ``str``, ``int``, ``float``, ``bool``, ``datetime`` or
``None`` from XLSX) and returns the model value or raises ``CellError`` with the reason. Parsers are
closures over everything they need (bounds, choice maps, lookup dicts), so the per-row loop does no
attribute look-ups and no queries.
"""

import csv
import re
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

# A spreadsheet runs a cell that starts with one of these as a formula (or DDE command).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
# Escaped by a leading apostrophe; a value that already starts with one is escaped too, so the
# escaping is reversible and an export re-imports to exactly the same text.
_ESCAPED_PREFIXES = frozenset("=+-@\t\r'")


class CellError(ValueError):
    """A cell that cannot become the field's value; the message says why, for a person."""


class _Keep:
    """An empty cell in a column whose field cannot be empty: keep the record's value (or the default)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "KEEP"


KEEP = _Keep()


def escape_formula(value: str) -> str:
    """Make a text cell inert in a spreadsheet: '=1+1' is written as "'=1+1"."""
    if value and value[0] in _ESCAPED_PREFIXES:
        return "'" + value
    return value


def unescape_formula(value: str) -> str:
    """Undo ``escape_formula`` on a cell read back from an exported file."""
    if len(value) > 1 and value[0] == "'" and value[1] in _ESCAPED_PREFIXES:
        return value[1:]
    return value


def cell_text(raw) -> str:
    """A cell as text: XLSX numbers, dates and booleans in a text column become what they show."""
    if raw is None:
        return ""
    if raw.__class__ is str:
        return raw
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, float) and raw.is_integer():
        return str(int(raw))
    if isinstance(raw, datetime):
        return raw.isoformat(sep=" ")
    if isinstance(raw, date):
        return raw.isoformat()
    return str(raw)


def _shown(raw) -> str:
    return cell_text(raw)[:200]


# Addresses this matches are valid for Django's EmailValidator too (a strict subset of what it
# accepts); anything else is checked by the validator itself, which is slower.
_PLAIN_EMAIL_RE = re.compile(
    r"[a-z0-9_%+-]+(?:\.[a-z0-9_%+-]+)*@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}\Z",
    re.IGNORECASE,
)


def text_parser(field: models.Field, *, required: bool = False):
    max_length = field.max_length or 10**9
    validators = [
        v
        for v in field.validators
        if not isinstance(v, (MaxValueValidator, MinValueValidator))
        and type(v).__name__ != "MaxLengthValidator"
    ]
    plain_email = _PLAIN_EMAIL_RE.match if isinstance(field, models.EmailField) else None
    # A URL typed without a scheme gets https://, as the admin's form does (assume_scheme).
    is_url = isinstance(field, models.URLField)

    def too_long(value):
        return CellError(f"At most {max_length} characters (it has {len(value)}).")

    def empty():
        if required:
            raise CellError("This column is required.")
        return ""

    def validate(value):
        if is_url and "://" not in value:
            value = "https://" + value
            if len(value) > max_length:
                raise too_long(value)
        if plain_email is not None and plain_email(value):
            return value
        for validator in validators:
            try:
                validator(value)
            except ValidationError as exc:
                raise CellError(" ".join(exc.messages)) from None
        return value

    # The common case — plain text within its length — is the first three lines of parse().
    def parse(raw):
        value = (raw if raw.__class__ is str else cell_text(raw)).strip()
        if value and value[0] != "'" and len(value) <= max_length and not validators:
            return value
        if not value:
            return empty()
        if value[0] == "'":
            value = unescape_formula(value)
        if len(value) > max_length:
            raise too_long(value)
        return validate(value) if validators else value

    return parse


_DECIMAL_RE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)\Z")
_INTEGER_RE = re.compile(r"[+-]?\d+\Z")


def decimal_parser(field: models.DecimalField, *, non_negative: bool):
    max_whole = field.max_digits - field.decimal_places
    places = field.decimal_places
    quantum = Decimal(1).scaleb(-places)
    nullable = field.null

    def parse(raw):
        if raw.__class__ is str:
            text = raw.strip()
            if not text:
                if nullable:
                    return None
                return KEEP
            if not _DECIMAL_RE.match(text):
                raise CellError("Not a number: write digits with a '.' for decimals, e.g. 1234.50.")
            value = Decimal(text)
        elif raw is None:
            return None if nullable else KEEP
        elif isinstance(raw, bool):
            raise CellError("Not a number.")
        elif isinstance(raw, int):
            value = Decimal(raw)
        elif isinstance(raw, float):
            try:
                value = Decimal(repr(raw))
            except InvalidOperation:
                raise CellError("Not a number.") from None
            if not value.is_finite():
                raise CellError("Not a number.")
        elif isinstance(raw, Decimal):
            value = raw
        else:
            raise CellError("Not a number.")
        if value.adjusted() >= max_whole:
            raise CellError(f"Too large: at most {max_whole} digits before the decimal point.")
        if value.as_tuple().exponent < -places:
            rounded = value.quantize(quantum)
            if rounded != value:
                raise CellError(f"At most {places} decimal places.")
            value = rounded
        if non_negative and value < 0:
            raise CellError("Cannot be negative.")
        return value

    return parse


def _integer_bounds(field: models.Field) -> tuple[int | None, int | None]:
    low = high = None
    for validator in field.validators:
        if isinstance(validator, MinValueValidator):
            low = validator.limit_value if low is None else max(low, validator.limit_value)
        elif isinstance(validator, MaxValueValidator):
            high = validator.limit_value if high is None else min(high, validator.limit_value)
    return low, high


def integer_parser(field: models.Field):
    low, high = _integer_bounds(field)
    nullable = field.null

    def parse(raw):
        if raw.__class__ is str:
            text = raw.strip()
            if not text:
                return None if nullable else KEEP
            if not _INTEGER_RE.match(text):
                raise CellError("Not a whole number.")
            value = int(text)
        elif raw is None:
            return None if nullable else KEEP
        elif isinstance(raw, bool):
            raise CellError("Not a whole number.")
        elif isinstance(raw, int):
            value = raw
        elif isinstance(raw, float) and raw.is_integer():
            value = int(raw)
        else:
            raise CellError("Not a whole number.")
        if low is not None and value < low:
            raise CellError(f"Must be at least {low}.")
        if high is not None and value > high:
            raise CellError(f"Must be at most {high}.")
        return value

    return parse


_TRUE = frozenset({"true", "yes", "y", "1", "t"})
_FALSE = frozenset({"false", "no", "n", "0", "f"})


def boolean_parser(field: models.Field):
    def parse(raw):
        if raw is None:
            return KEEP
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, (int, float)) and raw in (0, 1):
            return bool(raw)
        text = cell_text(raw).strip().lower()
        if not text:
            return KEEP
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise CellError("Write true or false (yes/no, 1/0 are accepted too).")

    return parse


def date_parser(field: models.Field):
    def parse(raw):
        if raw is None:
            return None
        if isinstance(raw, datetime):
            if raw.time() != datetime.min.time():
                raise CellError("A date without a time is expected.")
            return raw.date()
        if isinstance(raw, date):
            return raw
        text = cell_text(raw).strip()
        if not text:
            return None
        try:
            return date.fromisoformat(text)
        except ValueError:
            raise CellError("Not a date: write it as YYYY-MM-DD.") from None

    return parse


def datetime_parser(field: models.Field):
    def parse(raw):
        if raw is None:
            return None
        if isinstance(raw, datetime):
            value = raw
        elif isinstance(raw, date):
            value = datetime(raw.year, raw.month, raw.day)
        else:
            text = cell_text(raw).strip()
            if not text:
                return None
            try:
                value = datetime.fromisoformat(text)
            except ValueError:
                raise CellError("Not a date and time: write it as YYYY-MM-DD HH:MM (ISO 8601).") from None
        if timezone.is_naive(value):
            value = timezone.make_aware(value)
        return value

    return parse


def choice_parser(field: models.Field):
    """An enumeration by its value ("cold_call") or its label ("Cold call"), in any case."""
    by_name = {}
    for value, label in field.flatchoices:
        by_name[str(value).lower()] = value
        by_name[str(label).lower()] = value
    allowed = ", ".join(str(value) for value, _ in field.flatchoices)
    empty = "" if field.blank else KEEP
    exact = {str(value): value for value, _ in field.flatchoices}

    def parse(raw):
        if raw in exact:
            return exact[raw]
        text = cell_text(raw).strip()
        if not text:
            return empty
        if text[0] == "'":
            text = unescape_formula(text)
        try:
            return by_name[text.lower()]
        except KeyError:
            raise CellError(f"Not one of: {allowed}.") from None

    return parse


def name_parser(*, noun: str, ids_by_name: dict[str, list[int]], nullable: bool):
    """A related record by its name, in any case, from a dict loaded once for the whole file."""

    def parse(raw):
        text = cell_text(raw).strip()
        if not text:
            return None if nullable else KEEP
        if text[0] == "'":
            text = unescape_formula(text)
        ids = ids_by_name.get(text.lower())
        if not ids:
            raise CellError(f"No {noun} is named “{text}”.")
        if len(ids) > 1:
            raise CellError(f"{len(ids)} {noun}s are named “{text}”: rename one to tell them apart.")
        return ids[0]

    return parse


def deferred_name_parser(*, nullable: bool, max_length: int, seen: set[str]):
    """A name resolved after the whole file is read (a stage needs the row's pipeline, an account may be
    in the file itself): returns the trimmed name and remembers it for one bulk look-up."""

    def parse(raw):
        text = cell_text(raw).strip()
        if not text:
            return None if nullable else KEEP
        if text[0] == "'":
            text = unescape_formula(text)
        if len(text) > max_length:
            raise CellError(f"At most {max_length} characters (it has {len(text)}).")
        seen.add(text.lower())
        return text

    return parse


def split_tags(text: str) -> list[str]:
    """Tag names from a comma-separated cell; a name holding a comma is written in double quotes."""
    if '"' in text:
        try:
            return next(csv.reader([text], skipinitialspace=True), [])
        except csv.Error:
            raise CellError("Malformed tag list: check the double quotes.") from None
    return text.split(",")


def join_tags(names) -> str:
    parts = []
    for name in names:
        parts.append(f'"{name.replace(chr(34), chr(34) * 2)}"' if ("," in name or '"' in name) else name)
    return ", ".join(parts)


def tags_parser(*, max_length: int, known: dict[str, str], new_tags: dict[str, str]):
    """Tag names as a frozenset of lower-case names; names not in ``known`` are collected in ``new_tags``
    (lower-case name → spelling first seen) to be created when the import is committed."""
    interned: dict[str, str] = {}
    # Files repeat the same few tag lists over and over: each distinct cell is parsed once.
    seen_cells: dict[str, frozenset] = {}
    empty = frozenset()

    def parse(raw):
        try:
            return seen_cells[raw]
        except (KeyError, TypeError):
            pass
        text = cell_text(raw).strip()
        if not text:
            return empty
        names = []
        for part in split_tags(text):
            name = part.strip()
            if not name:
                continue
            if name[0] == "'":
                name = unescape_formula(name)
            if len(name) > max_length:
                raise CellError(f"The tag “{name[:40]}…” is longer than {max_length} characters.")
            key = name.lower()
            canonical = interned.get(key)
            if canonical is None:
                canonical = interned[key] = key
                if key not in known and key not in new_tags:
                    new_tags[key] = name
            names.append(canonical)
        tags = frozenset(names)
        if raw.__class__ is str and len(seen_cells) < 100_000:
            seen_cells[raw] = tags
        return tags

    return parse


def shown_value(raw) -> str:
    """A cell's value as it appears in an error report."""
    return _shown(raw)
