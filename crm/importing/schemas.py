"""What each kind of record looks like as a file: its columns, natural key and the rules a row obeys.

One schema per kind serves import and export alike, so an exported file imports back unchanged.
Columns are the model's field names; a relation is written by the related record's name (a contact
and a lead by email, their natural key); tags are a comma-separated list of names.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from functools import cached_property

from django.apps import apps
from django.db import models

from crm import rules
from crm.models.lead import LeadStatus, pipeline_defaults

from .cells import (
    KEEP,
    boolean_parser,
    choice_parser,
    date_parser,
    datetime_parser,
    decimal_parser,
    deferred_name_parser,
    integer_parser,
    name_parser,
    tags_parser,
    text_parser,
)

# How a related record is named in a file, by the relation's field name.
RELATION_LABELS = {
    "pipeline": "name",
    "stage": "name",
    "owner": "username",
    "lost_reason": "name",
    "account": "name",
    "parent": "name",
    "contact": "email",
    "lead": "email",
}
READ_ONLY_COLUMNS = ("id", "created_at", "updated_at")


@dataclass(frozen=True)
class PendingAccount:
    """A parent account that is itself a new row of the file: its id is known once it is inserted."""

    key: str


@dataclass
class Problem:
    column: str
    value: str
    message: str


@dataclass
class Schema:
    """Export side: the columns of one kind of record, in file order."""

    kind: str
    model_label: str
    columns: tuple[str, ...]  # the data columns, in file order
    export_only: tuple[str, ...] = ()  # of the columns, those written by an export and ignored by an import
    verbose: str = ""
    # How the schema's own relations are named in a file, beyond RELATION_LABELS.
    relation_labels: dict[str, str] = field(default_factory=dict)

    @cached_property
    def model(self) -> type[models.Model]:
        return apps.get_model(self.model_label)

    @property
    def export_columns(self) -> tuple[str, ...]:
        return ("id", *self.columns, "created_at", "updated_at")

    @property
    def import_columns(self) -> tuple[str, ...]:
        """The columns an import writes: all but the export-only ones (state fields)."""
        return tuple(column for column in self.columns if column not in self.export_only)

    def field(self, column: str) -> models.Field:
        return self.model._meta.get_field(column)

    def export_path(self, column: str) -> str | None:
        """The values_list() path of a column; None for tags, which are read from the through table."""
        if column == "tags":
            return None
        field = self.field(column)
        if field.is_relation:
            return f"{column}__{self.relation_labels.get(column) or RELATION_LABELS[column]}"
        return column


@dataclass
class ImportContext:
    """Everything loaded once per import that parsers and rules consult."""

    pipelines: object = None
    users: dict = field(default_factory=dict)
    tags: dict = field(default_factory=dict)
    new_tags: dict = field(default_factory=dict)
    account_names: set = field(default_factory=set)  # names referenced by the file, lower-case
    accounts: dict = field(default_factory=dict)  # lower-case name → [ids], for those names
    new_keys: set = field(default_factory=set)  # natural keys of the file's rows that create records
    lost_reasons: dict = field(default_factory=dict)
    lost_reasons_by_id: dict = field(default_factory=dict)  # id → (name, is_active)
    # What a schema's own relations are named by (ImportSchema.load_lookups), by the schema's choice.
    named: dict = field(default_factory=dict)


class CompositeKey(tuple):
    """The natural key of a row matched on several columns: its parts (text in lower case, ids of the
    related records the cells name), shown in a report as the cells were written."""

    shown: str = ""

    def __new__(cls, parts, shown: str = ""):
        key = super().__new__(cls, parts)
        key.shown = shown
        return key

    def __str__(self) -> str:
        return self.shown


@dataclass
class ImportSchema(Schema):
    """Import side: natural key, required columns and the row rules that need more than one cell."""

    # The natural key: one column (matched through the index ``key_index`` names), or a tuple of
    # columns matched together (a price in a price list: the list and the product).
    key: str | tuple[str, ...] = ""
    key_index: str = "lower"  # the SQL function of a one-column natural key's index
    required: tuple[str, ...] = ()
    # Fields every row resolves and writes because a rule reads them, whether or not they are columns.
    rule_fields: tuple[str, ...] = ()
    # Relations named by a value that is resolved after the whole file is read.
    deferred: tuple[str, ...] = ()
    # Fields whose empty cell the schema's own rule resolves, instead of "keep the value / default".
    resolved_by_rule: tuple[str, ...] = ()
    # Values written to every updated record before the updates, so a unique flag can move between
    # records of the file in any order (a primary contact handed from one contact to another).
    released: dict = field(default_factory=dict)

    def attname(self, column: str) -> str:
        return self.field(column).attname if column != "tags" else "tags"

    @property
    def composite_key(self) -> bool:
        return isinstance(self.key, tuple)

    @property
    def key_columns(self) -> tuple[str, ...]:
        if self.composite_key:
            return self.key
        return (self.key,) if self.key else ()

    @property
    def key_label(self) -> str:
        """The natural key as a report names it: "email", "price_list and product"."""
        return " and ".join(self.key_columns)

    def load_lookups(self, ctx: ImportContext, names: list[str]) -> None:
        """Load into ``ctx.named`` what the parsers of this schema's own relations look up (called
        before the rows are parsed, on the thread that holds the import's transaction)."""

    def preview_label(self, row: tuple, index: dict[str, int], ctx: ImportContext) -> str:
        """How the import's preview names the record a row writes (``row`` in ``index`` order)."""
        return str(row[index.get("name", 0)])

    def parser(self, column: str, ctx: ImportContext):
        field = self.field(column)
        required = column in self.required
        if column == "tags":
            return tags_parser(
                max_length=field.related_model._meta.get_field("name").max_length,
                known=ctx.tags,
                new_tags=ctx.new_tags,
            )
        if column in self.deferred:
            seen = ctx.account_names if field.related_model._meta.model_name == "account" else set()
            max_length = field.related_model._meta.get_field(RELATION_LABELS[column]).max_length
            return deferred_name_parser(nullable=field.null, max_length=max_length, seen=seen)
        if field.is_relation:
            lookups = {
                "pipeline": ("pipeline", lambda: ctx.pipelines.pipeline_ids_by_name),
                "owner": ("user", lambda: ctx.users),
                "lost_reason": ("lost reason", lambda: ctx.lost_reasons),
            }
            noun, ids = lookups[column]
            return name_parser(noun=noun, ids_by_name=ids(), nullable=field.null)
        if field.choices:
            return choice_parser(field)
        if isinstance(field, models.BooleanField):
            return boolean_parser(field)
        if isinstance(field, models.DecimalField):
            return decimal_parser(field, non_negative=self._non_negative(field))
        if isinstance(field, models.IntegerField):
            return integer_parser(field)
        if isinstance(field, models.DateTimeField):
            return datetime_parser(field)
        if isinstance(field, models.DateField):
            return date_parser(field)
        return text_parser(field, required=required)

    def _non_negative(self, field: models.Field) -> bool:
        # The model's non_negative_constraint() names its violation code after the field.
        return any(
            getattr(constraint, "violation_error_code", None) == f"{field.name}_negative"
            for constraint in self.model._meta.constraints
        )

    @property
    def has_cross_row_rules(self) -> bool:
        """Whether a row's fate depends on other rows beyond its key (then rows are written together)."""
        return type(self).check_rows is not ImportSchema.check_rows or bool(self.released)

    def finalize(self, rec: dict, old: dict | None, ctx: ImportContext, problems: list[Problem]) -> None:
        """Resolve the rule fields of one row in place; append a Problem for each broken rule."""

    def check_rows(self, rows, index: dict[str, int], ctx: ImportContext) -> dict[int, list[Problem]]:
        """Rules across rows (and records outside the file).

        ``rows`` is [(row number, id or None, values)], values in the order ``index`` (attname → position).
        """
        return {}


class LeadSchema(ImportSchema):
    def finalize(self, rec, old, ctx, problems):
        cache = ctx.pipelines
        pipeline_id = rec["pipeline_id"]
        if pipeline_id is KEEP:
            pipeline_id = old["pipeline_id"] if old else None
        stage_name = rec["stage_id"]
        stage_id = None
        if stage_name is not KEEP:
            in_pipeline = pipeline_id if pipeline_id is not None else cache.default_id
            if in_pipeline is None:
                problems.append(Problem("pipeline", "", "Name a pipeline: there is no default pipeline."))
                return
            stage = cache.stage_by_name.get((in_pipeline, stage_name.lower()))
            if stage is None:
                pipeline_name = cache.pipelines[in_pipeline].name
                problems.append(
                    Problem("stage", stage_name, f"The pipeline “{pipeline_name}” has no stage of this name.")
                )
                return
            pipeline_id, stage_id = in_pipeline, stage.id
        elif old and old["pipeline_id"] == pipeline_id:
            stage_id = old["stage_id"]
        probability = rec["probability"]
        if probability is KEEP:
            # An unchanged stage keeps its record's probability; a new stage brings its own.
            probability = old["probability"] if old and old["stage_id"] == stage_id else None
        pipeline_id, stage_id, probability = pipeline_defaults(
            pipeline_id=pipeline_id, stage_id=stage_id, probability=probability, source=cache
        )
        if pipeline_id is None:
            problems.append(Problem("pipeline", "", "Name a pipeline: there is no default pipeline."))
            return
        if stage_id is None:
            problems.append(
                Problem("stage", "", f"The pipeline “{cache.pipelines[pipeline_id].name}” has no stages.")
            )
            return
        rec["pipeline_id"], rec["stage_id"], rec["probability"] = pipeline_id, stage_id, probability
        self.apply_state_rules(rec, old, ctx, problems)

    def apply_state_rules(self, rec, old, ctx, problems):
        """The services' rules (crm.rules) on the row's resolved values: a closed lead is not moved, a
        won stage converts (marked for the engine, which converts after writing), a lost stage loses."""
        stage_id = rec["stage_id"]
        moves = old is None or stage_id != old["stage_id"] or rec["pipeline_id"] != old["pipeline_id"]
        has_reason = "lost_reason_id" in rec
        reason_id = rec["lost_reason_id"] if has_reason else None
        old_reason_id = old["lost_reason_id"] if old is not None and has_reason else None
        if not moves:
            if reason_id != old_reason_id or (
                "lost_note" in rec and old and rec["lost_note"] != old["lost_note"]
            ):
                problems.append(_LOST_ONLY_WITH_A_LOST_STAGE)
            return
        if old is not None:
            status = old["status"]
            closed = rules.record_move_problem(
                noun="lead", status=status, status_label=_LEAD_STATUS_LABELS.get(status, status)
            )
            if closed is not None:
                problems.append(Problem("stage", "", closed))
                return
        stage = ctx.pipelines.stages[stage_id]
        effect = rules.stage_effect(is_won=stage.is_won, is_lost=stage.is_lost, noun="lead")
        if effect != rules.LOSE:
            if reason_id is not None or rec.get("lost_note"):
                problems.append(_LOST_ONLY_WITH_A_LOST_STAGE)
            elif effect == rules.CONVERT:
                rec[CONVERTS] = True
            return
        pipeline = ctx.pipelines.pipelines[rec["pipeline_id"]]
        name, active = (
            ctx.lost_reasons_by_id.get(reason_id, ("", True)) if reason_id is not None else (None, True)
        )
        problem = rules.lost_reason_problem(
            reason=name,
            reason_active=active,
            required=pipeline.lost_reason_required,
            pipeline=pipeline.name,
            noun="lead",
        )
        if problem is not None:
            problems.append(Problem("lost_reason", name or "", problem))
            return
        lost_stage = ctx.pipelines.lost_stages.get(pipeline.id)
        values = rules.lost_values(lost_stage=lost_stage.id if lost_stage is not None else None)
        rec["status"], rec["probability"] = values["status"], values["probability"]
        rec["stage_id"] = values.get("stage", stage_id)


# The key a row's values carry when its won stage converts it after the write (see the engine).
CONVERTS = "_converts"
_LEAD_STATUS_LABELS = dict(LeadStatus.choices)
_LOST_ONLY_WITH_A_LOST_STAGE = Problem(
    "lost_reason",
    "",
    "A lost reason and note are recorded when the lead is lost: put the row in its pipeline's lost stage "
    "(a lost lead's reason changes only by reopening it and losing it again).",
)


class ContactSchema(ImportSchema):
    def finalize(self, rec, old, ctx, problems):
        name = rec["account_id"]
        if isinstance(name, str):
            ids = ctx.accounts.get(name.lower())
            if not ids:
                problems.append(Problem("account", name, "No account has this name."))
                return
            if len(ids) > 1:
                problems.append(
                    Problem(
                        "account", name, f"{len(ids)} accounts have this name: rename one to tell them apart."
                    )
                )
                return
            rec["account_id"] = ids[0]
        if rec["is_primary"] and rec["account_id"] is None:
            problems.append(
                Problem(
                    "is_primary", "true", "Only a contact linked to an account can be its primary contact."
                )
            )

    def check_rows(self, rows, index, ctx):
        """At most one primary contact per account, counting the file and the contacts already stored."""
        problems: dict[int, list[Problem]] = defaultdict(list)
        claims: dict[int, int] = {}
        in_file: set[int] = {pk for _, pk, _ in rows if pk is not None}
        account, primary = index["account_id"], index["is_primary"]
        for number, _, row in rows:
            account_id = row[account]
            if not row[primary] or account_id is None:
                continue
            if account_id in claims:
                problems[number].append(
                    Problem(
                        "is_primary",
                        "true",
                        f"Row {claims[account_id]} already makes another contact the primary contact.",
                    )
                )
            else:
                claims[account_id] = number
        if claims:
            Contact = self.model
            stored = Contact.objects.filter(is_primary=True, account_id__in=list(claims)).values_list(
                "id", "account_id", "first_name", "last_name"
            )
            for pk, account_id, first, last in stored:
                if pk in in_file:
                    continue  # the file decides this contact's flag; its own row is checked above
                problems[claims[account_id]].append(
                    Problem(
                        "is_primary",
                        "true",
                        f"The account already has a primary contact ({first} {last}, id {pk}).".replace(
                            " ,", ","
                        ),
                    )
                )
        return problems


class AccountSchema(ImportSchema):
    def finalize(self, rec, old, ctx, problems):
        name = rec["parent_id"]
        if not isinstance(name, str):
            return
        key = name.lower()
        if key == rec["name"].lower():
            problems.append(Problem("parent", name, "An account cannot be its own parent."))
            return
        ids = ctx.accounts.get(key)
        if ids and len(ids) > 1:
            problems.append(
                Problem("parent", name, f"{len(ids)} accounts have this name: rename one to tell them apart.")
            )
        elif ids:
            rec["parent_id"] = ids[0]
        elif key in ctx.new_keys:
            rec["parent_id"] = PendingAccount(key)
        else:
            problems.append(Problem("parent", name, "No account has this name, in the database or the file."))

    def check_rows(self, rows, index, ctx):
        """No account may become its own ancestor, through the file's rows or the stored hierarchy."""
        problems: dict[int, list[Problem]] = defaultdict(list)
        parent_of: dict = {}  # node → parent node; a node is an id or a PendingAccount
        number_of: dict = {}
        name, parent_id = index["name"], index["parent_id"]
        for number, pk, row in rows:
            node = pk if pk is not None else PendingAccount(row[name].lower())
            parent_of[node] = row[parent_id]
            number_of[node] = number
        stored_parent: dict[int, int | None] = {}

        def parent(node):
            if node in parent_of:
                return parent_of[node]
            if node not in stored_parent:
                stored_parent[node] = (
                    self.model.objects.filter(pk=node).values_list("parent_id", flat=True).first()
                )
            return stored_parent[node]

        for start, number in number_of.items():
            seen = {start}
            node = parent(start)
            while node is not None:
                if node in seen:
                    problems[number].append(
                        Problem("parent", "", "This parent would make the account hierarchy circular.")
                    )
                    break
                seen.add(node)
                node = parent(node)
        return problems


LEADS = LeadSchema(
    kind="leads",
    model_label="crm.Lead",
    verbose="leads",
    columns=(
        "name",
        "contact_name",
        "email",
        "phone",
        "company_name",
        "job_title",
        "pipeline",
        "stage",
        "priority",
        "rating",
        "source",
        "expected_revenue",
        "probability",
        "description",
        "status",
        "lost_reason",
        "lost_note",
        "converted_at",
        "owner",
        "tags",
    ),
    export_only=rules.STATE_FIELDS["crm.Lead"],
    key="email",
    required=("name",),
    rule_fields=("pipeline", "stage", "probability", "status"),
    deferred=("stage",),
    resolved_by_rule=("pipeline", "stage", "probability"),
)
CONTACTS = ContactSchema(
    kind="contacts",
    model_label="crm.Contact",
    verbose="contacts",
    columns=(
        "first_name",
        "last_name",
        "email",
        "phone",
        "mobile",
        "job_title",
        "department",
        "account",
        "is_primary",
        "do_not_call",
        "email_opt_out",
        "is_active",
        "owner",
        "tags",
    ),
    key="email",
    required=("first_name",),
    rule_fields=("account", "is_primary"),
    deferred=("account",),
    released={"is_primary": False},
)
ACCOUNTS = AccountSchema(
    kind="accounts",
    model_label="crm.Account",
    verbose="accounts",
    columns=(
        "name",
        "website",
        "phone",
        "account_type",
        "industry",
        "rating",
        "tier",
        "employees",
        "annual_revenue",
        "billing_street",
        "billing_city",
        "billing_state",
        "billing_zip",
        "billing_country",
        "parent",
        "is_active",
        "owner",
        "tags",
    ),
    key="name",
    key_index="upper",
    required=("name",),
    rule_fields=("parent",),
    deferred=("parent",),
)
# Kinds of the apps above crm (opportunities, activities) are registered from their AppConfig.ready().
IMPORT_SCHEMAS: dict[str, ImportSchema] = {s.kind: s for s in (LEADS, CONTACTS, ACCOUNTS)}
EXPORT_SCHEMAS: dict[str, Schema] = {s.kind: s for s in (LEADS, CONTACTS, ACCOUNTS)}


def register_schema(schema: Schema) -> None:
    """Export (and, for an ImportSchema, import) another app's kind of record."""
    EXPORT_SCHEMAS[schema.kind] = schema
    if isinstance(schema, ImportSchema):
        IMPORT_SCHEMAS[schema.kind] = schema


def import_kinds() -> tuple[str, ...]:
    return tuple(IMPORT_SCHEMAS)


def export_kinds() -> tuple[str, ...]:
    return tuple(EXPORT_SCHEMAS)


def import_schema(kind: str) -> ImportSchema:
    try:
        return IMPORT_SCHEMAS[kind]
    except KeyError:
        raise ValueError(f"Cannot import {kind!r}: choose one of {', '.join(import_kinds())}.") from None


def export_schema(kind: str) -> Schema:
    try:
        return EXPORT_SCHEMAS[kind]
    except KeyError:
        raise ValueError(f"Cannot export {kind!r}: choose one of {', '.join(export_kinds())}.") from None


def schema_for_model(model: type[models.Model]) -> Schema:
    for schema in EXPORT_SCHEMAS.values():
        if schema.model is model:
            return schema
    raise ValueError(f"No import/export schema for {model._meta.label}.")
