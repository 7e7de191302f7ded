"""crm_seed: fill a database with a large, realistic CRM data set in one transaction."""

import random
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime

from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Group
from django.db import connection, transaction
from django.db.models import Max

from crm.actors import SYSTEM
from crm.models import Account, Contact, Lead, LostReason, Pipeline, Stage, Tag
from crm.seeding import words
from crm.seeding.generators import Clock, DataSetGenerator, PipelineInfo, SeedContext, StageInfo
from crm.seeding.progress import Progress
from crm.seeding.writers import writer_for
from crm.services import pipeline_save, pipeline_set_default
from crm.win_probability import win_models_rebuild

# The stages of the pipelines the seed creates when the database has none; the same as the demo data.
SALES_PIPELINE = (
    "Sales Pipeline",
    "The default pipeline for new business.",
    (
        ("New", 10, "#6c757d"),
        ("Qualified", 25, "#0d6efd"),
        ("Proposal", 50, "#6f42c1"),
        ("Negotiation", 75, "#fd7e14"),
    ),
)
ENTERPRISE_PIPELINE = (
    "Enterprise Deals",
    "Large enterprise opportunities with a longer, multi-party sales cycle.",
    (
        ("Discovery", 10, "#6c757d"),
        ("Solution Design", 30, "#0dcaf0"),
        ("Proof of Concept", 50, "#6f42c1"),
        ("Commercial Negotiation", 75, "#fd7e14"),
    ),
)
SALES_ROLE = "Sales Rep"
# Share of leads and deals that go to the default pipeline; the rest go to Enterprise Deals.
DEFAULT_PIPELINE_SHARE = 0.85


@dataclass(frozen=True)
class SeedSizes:
    """How many records of each kind to generate. The defaults are the scale the CRM is built for."""

    users: int = 50
    accounts: int = 100_000
    contacts: int = 300_000
    leads: int = 1_000_000
    opportunities: int = 200_000
    activities: int = 2_000_000

    def __post_init__(self):
        for name, value in asdict(self).items():
            if value < 0:
                raise ValueError(f"The number of {name} cannot be negative.")
        if self.activities and not (self.leads or self.opportunities or self.contacts or self.accounts):
            raise ValueError(
                "Activities are linked to a lead, an opportunity, a contact or an account: "
                "generate some of those too."
            )

    @property
    def records(self) -> int:
        return self.accounts + self.contacts + self.leads + self.opportunities + self.activities


class SeedRefused(Exception):
    """The database already holds CRM records and the caller did not say to add to them."""

    def __init__(self, existing: dict[str, int]):
        self.existing = existing
        held = ", ".join(f"{count:,} {name}" for name, count in existing.items())
        super().__init__(
            f"This database already holds CRM records ({held}). crm_seed adds made-up records, and mixed "
            "into real data they could not be told apart or removed. Run it against a new, migrated "
            "database, or pass --force (alias --append) to add the generated records next to the "
            "existing ones; nothing that is there now is changed or deleted."
        )


@dataclass
class SeedResult:
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())


def _record_models() -> dict[str, type]:
    # sales and activities depend on crm, never the other way round at import time.
    return {
        "leads": Lead,
        "opportunities": apps.get_model("sales", "Opportunity"),
        "accounts": Account,
        "contacts": Contact,
        "activities": apps.get_model("activities", "Activity"),
    }


def crm_record_counts() -> dict[str, int]:
    """How many leads, opportunities, accounts, contacts and activities the database holds."""
    return {name: model.objects.count() for name, model in _record_models().items()}


def crm_seed(
    *,
    sizes: SeedSizes | None = None,
    seed: int = 0,
    end_date: date | None = None,
    force: bool = False,
    progress: Progress | None = None,
) -> SeedResult:
    """Generate users, pipelines, tags, lost reasons and ``sizes`` records, all or nothing.

    The same ``seed`` and ``end_date`` give the same records. Dates spread over the two years before
    ``end_date`` (default: today, UTC). Refuses with ``SeedRefused`` when the database already holds
    leads, opportunities, accounts, contacts or activities, unless ``force``.
    """
    sizes = sizes or SeedSizes()
    progress = progress or Progress(lambda text: None, enabled=False)
    existing = {name: count for name, count in crm_record_counts().items() if count}
    if existing and not force:
        raise SeedRefused(existing)

    writer = writer_for(connection)
    end_date = end_date or datetime.now(UTC).date()
    clock = Clock(
        end=int(datetime(end_date.year, end_date.month, end_date.day, tzinfo=UTC).timestamp()),
        utc_suffix=writer.utc_suffix,
    )
    models = _record_models()
    Opportunity, Activity = models["opportunities"], models["activities"]
    started = time.monotonic()
    result = SeedResult()

    with transaction.atomic():
        writer.begin()
        user_ids = _sales_users(seed=seed, count=sizes.users)
        pipelines = _pipelines()
        tag_ids = _named(Tag, [{"name": name, "color": color} for name, color in words.TAGS])
        lost_reason_ids = _named(LostReason, [{"name": name} for name in words.LOST_REASONS])
        base_ids = {
            label: model.objects.aggregate(top=Max("id"))["top"] or 0
            for label, model in (
                ("account", Account),
                ("contact", Contact),
                ("lead", Lead),
                ("opportunity", Opportunity),
                ("activity", Activity),
            )
        }
        generator = DataSetGenerator(
            SeedContext(
                seed=seed,
                clock=clock,
                users=user_ids,
                pipelines=pipelines,
                tags=tag_ids,
                lost_reasons=lost_reason_ids,
                accounts=sizes.accounts,
                contacts=sizes.contacts,
                leads=sizes.leads,
                opportunities=sizes.opportunities,
                activities=sizes.activities,
                base_ids=base_ids,
            )
        )
        # Dependency order: each table refers only to tables written before it.
        g = generator
        steps = [
            ("accounts", Account, g.ACCOUNT_FIELDS, g.accounts, sizes.accounts),
            ("contacts", Contact, g.CONTACT_FIELDS, g.contacts, sizes.contacts),
            ("leads", Lead, g.LEAD_FIELDS, g.leads, sizes.leads),
            ("opportunities", Opportunity, g.OPPORTUNITY_FIELDS, g.opportunities, sizes.opportunities),
            ("activities", Activity, g.ACTIVITY_FIELDS, g.activities, sizes.activities),
        ]
        tables = []

        def load(label: str, table: str, columns: list[str], rows, total: int | None) -> None:
            with progress.phase(label, total) as tick:
                result.rows[label] = writer.write(table, columns, rows, tick)
            if pending := writer.indexes_to_rebuild(table):
                with progress.phase(f"{label} indexes", pending, "indexes") as tick:
                    writer.rebuild_indexes(table, tick)
            tables.append(table)

        for label, model, fields, rows, total in steps:
            columns = [model._meta.get_field(name).column for name in fields]
            load(label, model._meta.db_table, columns, rows(), total)
            if "tags" in {f.name for f in model._meta.many_to_many}:
                relation = model._meta.get_field("tags")
                through = relation.remote_field.through
                columns = [
                    through._meta.get_field(relation.m2m_field_name()).column,
                    through._meta.get_field(relation.m2m_reverse_field_name()).column,
                ]
                kind = model._meta.model_name
                load(f"{kind} tags", through._meta.db_table, columns, generator.tags(kind, total), None)
        writer.reset_sequences([Account, Contact, Lead, Opportunity, Activity])
        writer.finish(tables)
        # The seeded history is what the win-probability models learn from.
        win_models_rebuild()
    result.seconds = time.monotonic() - started
    return result


def _sales_users(*, seed: int, count: int) -> list[int]:
    """The sales reps who own the records: made-up people who cannot log in until given a password."""
    User = get_user_model()
    rng = random.Random(f"{seed}:users")
    people: list[tuple[str, str, str]] = []
    usernames: set[str] = set()
    while len(people) < count:
        first, last = rng.choice(words.FIRST_NAMES), rng.choice(words.LAST_NAMES)
        username = f"{first}.{last}".lower()
        if len(usernames) >= len(words.FIRST_NAMES) * len(words.LAST_NAMES):
            username = f"{username}{len(people)}"
        if username in usernames:
            continue
        usernames.add(username)
        people.append((username, first, last))
    existing = {
        user.username: user.pk
        for user in User.objects.filter(username__in=[username for username, *_ in people])
    }
    User.objects.bulk_create(
        [
            User(
                username=username,
                first_name=first,
                last_name=last,
                email=f"{username}@sales.example",
                password=make_password(None),
                is_staff=True,
            )
            for username, first, last in people
            if username not in existing
        ]
    )
    ids = dict(User.objects.filter(username__in=usernames).values_list("username", "pk"))
    # The role the access-control work defines for reps, where this database has it.
    role = Group.objects.filter(name=SALES_ROLE).first()
    if role is not None:
        role.user_set.add(*ids.values())
    return [ids[username] for username, *_ in people]


def _pipelines() -> list[tuple[PipelineInfo, float]]:
    """The default pipeline (reused, or "Sales Pipeline" created) and "Enterprise Deals", with weights."""
    default = Pipeline.objects.default()
    if default is None:
        default = _pipeline(*SALES_PIPELINE, sequence=0)
        if not default.is_default:
            default = pipeline_set_default(pipeline=default, user=SYSTEM)
    enterprise = Pipeline.objects.filter(name__iexact=ENTERPRISE_PIPELINE[0]).first()
    if enterprise is None:
        enterprise = _pipeline(*ENTERPRISE_PIPELINE, sequence=1)
    infos = [(_pipeline_info(default), DEFAULT_PIPELINE_SHARE)]
    if enterprise.pk != default.pk:
        info = _pipeline_info(enterprise)
        if info.open_stages:
            infos.append((info, 1 - DEFAULT_PIPELINE_SHARE))
    if not infos[0][0].open_stages:
        raise ValueError(f"The default pipeline “{default}” has no open stage to put records in.")
    return infos


def _pipeline(name: str, description: str, stages, *, sequence: int) -> Pipeline:
    pipeline = Pipeline.objects.filter(name__iexact=name).first()
    if pipeline is None:
        pipeline = pipeline_save(
            pipeline=Pipeline(name=name, description=description, sequence=sequence), user=SYSTEM
        )
    if not pipeline.stages.exists():
        rows = [(*stage, False, False) for stage in stages]
        rows += [("Won", 100, "#198754", True, False), ("Lost", 0, "#dc3545", False, True)]
        for position, (stage_name, probability, color, is_won, is_lost) in enumerate(rows):
            stage = Stage(
                pipeline=pipeline,
                name=stage_name,
                sequence=position,
                probability=probability,
                color=color,
                is_won=is_won,
                is_lost=is_lost,
            )
            stage.full_clean()
            stage.save()
    return pipeline


def _pipeline_info(pipeline: Pipeline) -> PipelineInfo:
    stages = list(Stage.objects.filter(pipeline=pipeline).order_by("sequence", "id"))
    return PipelineInfo(
        id=pipeline.pk,
        open_stages=[StageInfo(s.pk, s.probability) for s in stages if not (s.is_won or s.is_lost)],
        won=next((StageInfo(s.pk, s.probability) for s in stages if s.is_won), None),
        lost=next((StageInfo(s.pk, s.probability) for s in stages if s.is_lost), None),
    )


def _named(model: type, rows: list[dict]) -> list[int]:
    """Ids of the named rows (tags, lost reasons), reusing any of the same name whatever its case."""
    existing = {obj.name.lower(): obj.pk for obj in model.objects.all()}
    missing = [model(**row) for row in rows if row["name"].lower() not in existing]
    for obj in missing:
        obj.full_clean()
    model.objects.bulk_create(missing)
    existing = {obj.name.lower(): obj.pk for obj in model.objects.all()}
    return [existing[row["name"].lower()] for row in rows]
