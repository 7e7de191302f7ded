"""Building blocks shared by every CRM model: timestamps, choice lists, constraint error mapping."""

import logging
from contextlib import nullcontext

from django.core.exceptions import NON_FIELD_ERRORS, FieldError, ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import (
    DEFAULT_DB_ALIAS,
    DatabaseError,
    NotSupportedError,
    connections,
    models,
    router,
    transaction,
)
from django.db.models import BooleanField, F, Func, Q, Value
from django.db.models.functions import Coalesce, Lower, Replace, StrIndex, Substr
from django.db.models.sql import Query
from django.db.models.sql.constants import SINGLE
from simple_history.models import HistoricalRecords

logger = logging.getLogger(__name__)

PROBABILITY_VALIDATORS = [MinValueValidator(0), MaxValueValidator(100)]


class Priority(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"
    URGENT = "urgent", "Urgent"


class Rating(models.TextChoices):
    COLD = "cold", "Cold"
    WARM = "warm", "Warm"
    HOT = "hot", "Hot"


def probability_constraint(prefix: str) -> models.CheckConstraint:
    return models.CheckConstraint(
        condition=Q(probability__gte=0) & Q(probability__lte=100),
        name=f"{prefix}_probability_0_100",
        violation_error_code="probability_range",
        violation_error_message="Probability must be between 0 and 100.",
    )


def non_negative_constraint(prefix: str, field: str) -> models.CheckConstraint:
    return models.CheckConstraint(
        condition=Q(**{f"{field}__isnull": True}) | Q(**{f"{field}__gte": 0}),
        name=f"{prefix}_{field}_not_negative",
        violation_error_code=f"{field}_negative",
        violation_error_message="This amount cannot be negative.",
    )


def email_domain_expression(field: str = "email"):
    """The domain of the address in ``field``, in SQL: lower-cased, after its "@". Indexed on the
    leads and the contacts, so that the records of one company's domain (a likely duplicate) are
    looked up, not searched for: ``email LIKE '%@domain'`` could only be answered by the trigram
    index, whose common trigrams (".example", "ing", "ltd") made it read thousands of pages, 90 ms at
    a million leads for a domain of 13."""
    return Lower(Substr(field, StrIndex(field, Value("@")) + 1))


def owner_key_expression():
    """A record's owner id in SQL, 0 for none (no user has id 0): ``COALESCE(owner_id, 0)``. The owner
    rule written on it (``owner_key IN (0, <the owners a reader sees>)``) is one condition an index on
    it answers alone, where ``owner_id IS NULL OR owner_id IN (...)`` needs two index reads joined as a
    bitmap, which must then visit the table's pages."""
    return Coalesce("owner_id", Value(0))


# What a phone number's digits are written between; a duplicate's phone is compared without them.
PHONE_SEPARATORS = (" ", "-", "(", ")", ".", "+", "/")


def phone_digits_expression(field: str):
    """The number in ``field`` without its separators, in SQL. Indexed on every phone field the
    duplicate rules compare (a lead's phone, a contact's phone and mobile, an account's phone), so
    that the records sharing a number are looked up: computed on every row, the comparison read the
    whole table (720 ms for a lead created with a phone among a million)."""
    expression = F(field)
    for separator in PHONE_SEPARATORS:
        expression = Replace(expression, Value(separator), Value(""))
    return expression


# The legal forms a company's name may end with; its name key leaves them out ("Globex Corp." and
# "GLOBEX Corporation" are one company).
LEGAL_FORMS = (
    "inc", "incorporated", "llc", "llp", "lp", "ltd", "limited", "corp", "corporation", "co", "company",
    "gmbh", "ag", "kg", "sa", "sas", "sarl", "srl", "spa", "bv", "nv", "plc", "pty", "oy", "ab",
)  # fmt: skip


class CompanyNameKey(Func):
    """A company's name as the duplicate rule compares it, in SQL (PostgreSQL): lower case, every run of
    punctuation or spaces one space, a leading "the" and the trailing legal forms (``LEGAL_FORMS``) left
    out. "The Globex Corp." and "GLOBEX, Inc." both give "globex".

    Indexed (btree) on a lead's company and an account's name (crm 0043), so that the records of the
    same company are looked up: similar names through the trigram index cost 15-40 ms at a million
    leads, and seconds for a common name at five million. ``crm.duplicates.company_name_key`` is the
    same in Python, for the other databases.
    """

    arity = 1
    output_field = models.CharField()

    def as_sql(self, compiler, connection, **extra_context):
        raise NotSupportedError(
            "CompanyNameKey is PostgreSQL's; crm.duplicates.company_name_key is Python's."
        )

    def as_postgresql(self, compiler, connection, **extra_context):
        sql, params = compiler.compile(self.source_expressions[0])
        forms = "|".join(LEGAL_FORMS)
        # The patterns are written into the statement, not passed as parameters: the planner uses the
        # index only for an expression equal to the indexed one.
        return (
            "BTRIM(REGEXP_REPLACE(REGEXP_REPLACE(REGEXP_REPLACE("
            f"LOWER({sql}), '[^[:alnum:]]+', ' ', 'g'), '^\\s*the\\s+', ''), '(\\s+({forms}))+\\s*$', ''))",
            params,
        )


NULL_CHARACTERS_MESSAGE = "Null characters are not allowed."


class ValidatedModel(models.Model):
    """A model whose validation refuses a null character in any text it holds.

    PostgreSQL's text cannot hold a NUL: saved, it is a DataError when the statement runs. Django's
    form fields and DRF's string fields refuse one, but a service's ``full_clean()`` did not, so a door
    that hands a service a string no form field checked (an admin page reading ``request.POST``, a
    job, an email) reached the database with it. Filed under the field, with Django's other errors.
    """

    class Meta:
        abstract = True

    def clean_fields(self, exclude=None):
        errors: dict = {}
        try:
            super().clean_fields(exclude=exclude)
        except ValidationError as exc:
            errors = exc.update_error_dict(errors)
        for field in self._meta.concrete_fields:
            if field.name in errors or (exclude and field.name in exclude):
                continue
            value = getattr(self, field.attname)
            if isinstance(value, str) and "\x00" in value:
                errors[field.name] = [
                    ValidationError(NULL_CHARACTERS_MESSAGE, code="null_characters_not_allowed")
                ]
        if errors:
            raise ValidationError(errors)


class TimeStampedModel(ValidatedModel):
    """Adds created_at / updated_at, and files constraint violations under the field they concern.

    Django reports a violated CheckConstraint or expression UniqueConstraint as a non-field error;
    a form or an API client needs it next to the field. ``constraint_error_fields`` maps a
    constraint's ``violation_error_code`` to that field.
    """

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    constraint_error_fields: dict[str, str] = {
        "probability_range": "probability",
        "expected_revenue_negative": "expected_revenue",
        "amount_negative": "amount",
        "annual_revenue_negative": "annual_revenue",
    }

    class Meta:
        abstract = True

    @classmethod
    def from_db(cls, db, field_names, values):
        instance = super().from_db(db, field_names, values)
        # The keys as read: a key still holding its read value names a record that existed then.
        instance._read_keys = (field_names, values)
        return instance

    def refresh_from_db(self, *args, **kwargs):
        # Read again: what was read before no longer vouches for anything.
        self.__dict__.pop("_read_keys", None)
        super().refresh_from_db(*args, **kwargs)

    def clean_fields(self, exclude=None):
        """Django's validation of the fields, less the existence query of a foreign key whose related
        record this instance holds as read from (or written to) the database, or whose value is the
        one read with the instance: a service that sets a deal's account, contact, stage and owner as
        records, or moves a deal it read, asked Django to look up each of them again, a query apiece
        on every save. A key given a new bare id, or one whose choices are limited, is still looked
        up; the database's constraint stays the last word either way."""
        read = _read_keys(self)
        known = {
            field.name
            for field in self._meta.concrete_fields
            if field.many_to_one
            and not field.get_limit_choices_to()
            and (
                read.get(field.attname, _UNREAD) == getattr(self, field.attname) or _holds_stored(self, field)
            )
        }
        super().clean_fields(exclude={*(exclude or ()), *known})

    def validate_constraints(self, exclude=None):
        """Django's validation of the model's constraints, but its check constraints are asked in one
        query (Django asks each in its own query and savepoint: three round trips a constraint, on
        every save of a record), and a violation is filed under the field it concerns."""
        using = router.db_for_write(type(self), instance=self)
        errors: dict = {}
        checks = []
        for model_class, constraints in self.get_constraints():
            for constraint in constraints:
                if isinstance(constraint, models.CheckConstraint):
                    checks.append(constraint)
                    continue
                try:
                    constraint.validate(model_class, self, exclude=exclude, using=using)
                except ValidationError as exc:
                    if getattr(exc, "code", None) == "unique" and len(constraint.fields) == 1:
                        errors.setdefault(constraint.fields[0], []).append(exc)
                    else:
                        errors = exc.update_error_dict(errors)
        for constraint in violated_checks(self, checks, exclude=exclude, using=using):
            error = ValidationError(
                constraint.get_violation_error_message(), code=constraint.violation_error_code
            )
            errors = error.update_error_dict(errors)
        if errors:
            filed: dict[str, list[ValidationError]] = {}
            for field, field_errors in errors.items():
                for error in field_errors:
                    target = field
                    if field == NON_FIELD_ERRORS:
                        target = self.constraint_error_fields.get(error.code, field)
                    filed.setdefault(target, []).append(error)
            raise ValidationError(filed)


_UNREAD = object()


def _read_keys(instance: models.Model) -> dict:
    """The values ``instance`` was read with from the database it is written to (``from_db``), by
    attname; empty for an instance made in Python or read from a replica."""
    read = instance.__dict__.get("_read_keys")
    if read is None:
        return {}
    if instance._state.adding:  # read, then made to stand for a new record (a copy)
        return {}
    if instance._state.db != DEFAULT_DB_ALIAS:
        return {}  # read from a replica, which may lag behind the database written to
    names, values = read
    return dict(zip(names, values, strict=True))


def _holds_stored(instance: models.Model, field) -> bool:
    """Whether ``instance`` holds, for the foreign key ``field``, the related record its value
    names, and that record is stored (read from the database, or saved)."""
    if not field.is_cached(instance):
        return False
    related = field.get_cached_value(instance)
    return (
        related is not None
        and not related._state.adding
        and getattr(related, field.target_field.attname) == getattr(instance, field.attname)
    )


def violated_checks(
    instance: models.Model, checks: list[models.CheckConstraint], *, exclude=None, using: str
) -> list[models.CheckConstraint]:
    """The check constraints of ``checks`` that ``instance``'s values would violate, asked of the
    database in one ``SELECT``, each as Django's ``CheckConstraint.validate`` asks it: a constraint on
    an excluded field is not asked, NULL passes (as in SQL), and a database error lets it pass (the
    database enforces it on save anyway)."""
    if not checks:
        return []
    query = Query(None)
    for name, value in instance._get_field_expression_map(meta=instance._meta, exclude=exclude).items():
        if not hasattr(value, "resolve_expression"):
            value = Value(value)
        query.add_annotation(value, name, select=False)
    asked = []
    for constraint in checks:
        condition = Coalesce(Q(constraint.condition), True, output_field=BooleanField())
        try:
            query.add_annotation(condition, f"_check_{len(asked)}")
        except FieldError:  # it concerns an excluded field
            continue
        asked.append(constraint)
    if not asked:
        return []
    connection = connections[using]
    savepoint = transaction.atomic(using=using) if connection.in_atomic_block else nullcontext()
    try:
        with savepoint:
            row = query.get_compiler(using=using).execute_sql(SINGLE)
    except DatabaseError as exc:
        logger.warning("Got a database error checking %r: %s", asked, exc)
        return []
    return [constraint for constraint, passed in zip(asked, row, strict=True) if not passed]


class _AllFieldsBut:
    """A container of every field name except ``kept``: for HistoricalRecords(no_db_index=...)."""

    def __init__(self, *kept: str):
        self.kept = kept

    def __contains__(self, name) -> bool:
        return name not in self.kept


def audit_history(*, derived_fields: tuple[str, ...] = ()) -> HistoricalRecords:
    """The audit trail of a model (django-simple-history). Its table is written for every change and
    read per record, newest first: indexed on the record's id and the version's date only, not on
    every indexed field of the model, so a bulk import's history rows stay cheap to write.

    ``derived_fields`` (a lead's computed score) are left out: the trail records what people changed,
    and a derived value follows from those changes."""
    return HistoricalRecords(no_db_index=_AllFieldsBut("id"), excluded_fields=list(derived_fields))
