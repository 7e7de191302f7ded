"""manage.py crm_seed on a small size, against the real database (SQLite locally, PostgreSQL in CI)."""

import os
import re
import signal
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError, connection
from django.db.models import Count, F, Max, Min, Sum

from activities.models import Activity
from activities.services import (
    account_last_activity_refresh,
    contact_last_activity_refresh,
    lead_last_activity_refresh,
    opportunity_last_activity_refresh,
)
from crm.models import Account, Contact, Lead, LeadRollup, LeadStatus, LostReason, Pipeline, Stage, Tag
from crm.reached import LEAD_REACH, reached_differences
from crm.rollups import LEAD_ROLLUP, rollup_differences
from crm.seeding import Progress, SeedSizes
from crm.seeding.generators import Clock, DataSetGenerator, SeedContext
from crm.seeding.runner import seed_columns
from crm.seeding.share import ArrayInChild, RowShare
from crm.seeding.writers import CopyWriter
from sales.models import Opportunity
from sales.rollups import OPPORTUNITY_REACH, OPPORTUNITY_ROLLUP
from tests.factories import AccountFactory, LeadFactory

SIZES = {"leads": 200, "opportunities": 40, "accounts": 20, "contacts": 60, "activities": 400, "users": 5}
END_DATE = "2026-06-30"


def seed(*extra: str, stdout=None, **sizes) -> str:
    out = stdout or StringIO()
    args = [f"--{name}={count}" for name, count in {**SIZES, **sizes}.items()]
    call_command("crm_seed", *args, f"--end-date={END_DATE}", *extra, stdout=out)
    return out.getvalue()


def fingerprint(after_ids: dict[str, int] | None = None) -> list:
    """What the generated records say, without the ids that differ between two loads of them."""
    after_ids = after_ids or {}

    def rows(model, *fields):
        queryset = model.objects.filter(pk__gt=after_ids.get(model.__name__, 0)).order_by("pk")
        return list(queryset.values_list(*fields))

    return [
        rows(
            Account, "name", "website", "phone", "industry", "created_at", "parent__name", "owner__username"
        ),
        rows(Contact, "first_name", "last_name", "email", "account__name", "is_primary", "created_at"),
        rows(
            Lead,
            "name",
            "contact_name",
            "email",
            "company_name",
            "stage__name",
            "status",
            "expected_revenue",
            "created_at",
            "converted_at",
            "converted_contact__email",
            "owner__username",
        ),
        rows(
            Opportunity,
            "name",
            "amount",
            "stage__name",
            "status",
            "close_date",
            "lead__email",
            "account__name",
        ),
        rows(Activity, "subject", "activity_type", "status", "due_date", "completed_at", "lead__email"),
        list(
            Lead.tags.through.objects.filter(lead_id__gt=after_ids.get("Lead", 0))
            .order_by("lead_id", "tag__name")
            .values_list("lead__email", "tag__name")
        ),
    ]


def top_ids() -> dict[str, int]:
    return {
        model.__name__: model.objects.aggregate(top=Max("pk"))["top"] or 0
        for model in (Account, Contact, Lead, Opportunity, Activity)
    }


@pytest.mark.django_db
def test_seed_creates_exactly_the_requested_counts():
    seed()

    assert Lead.objects.count() == 200
    assert Opportunity.objects.count() == 40
    assert Account.objects.count() == 20
    assert Contact.objects.count() == 60
    assert Activity.objects.count() == 400
    users = get_user_model().objects.all()
    assert users.count() == 5
    assert not any(user.has_usable_password() for user in users)
    assert set(Pipeline.objects.values_list("name", flat=True)) == {"Sales Pipeline", "Enterprise Deals"}
    assert Pipeline.objects.get(is_default=True).name == "Sales Pipeline"
    assert list(Pipeline.objects.get(name="Sales Pipeline").stages.values_list("name", flat=True)) == [
        "New",
        "Qualified",
        "Proposal",
        "Negotiation",
        "Won",
        "Lost",
    ]
    assert Tag.objects.count() == 20
    assert LostReason.objects.count() == 8


@pytest.mark.django_db
def test_sizes_not_given_follow_the_leads_in_the_default_proportions():
    out = StringIO()
    call_command(
        "crm_seed", "--leads=500", "--contacts=90", "--no-progress", f"--end-date={END_DATE}", stdout=out
    )

    # Per 1,000,000 leads: 200,000 deals, 100,000 accounts, 2,000,000 activities, 50 users; the
    # contacts were given. 500 leads have 0.025 of a user by the proportion: at least one owns them.
    assert (Lead.objects.count(), Opportunity.objects.count(), Account.objects.count()) == (500, 100, 50)
    assert (Contact.objects.count(), Activity.objects.count()) == (90, 1000)
    assert get_user_model().objects.count() == 1
    assert (
        "Seeding 500 leads, 100 opportunities, 50 accounts, 90 contacts, 1,000 activities" in out.getvalue()
    )


def test_five_million_leads_scale_every_other_size_five_times():
    sizes = SeedSizes.scaled(5_000_000)
    assert sizes == SeedSizes(
        leads=5_000_000,
        opportunities=1_000_000,
        accounts=500_000,
        contacts=1_500_000,
        activities=10_000_000,
        users=250,
    )
    assert SeedSizes.scaled(1_000_000) == SeedSizes()
    assert SeedSizes.scaled(0) == SeedSizes(0, 0, 0, 0, 0, 0)
    assert SeedSizes.scaled(2_000_000, users=7, activities=0).users == 7


@pytest.mark.django_db
def test_seeded_leads_know_when_their_last_activity_was_logged():
    """Activities are seeded around the services: each lead is written with its last activity (what
    scoring reads), known from the activities' links replayed before the leads are drawn."""
    seed()

    assert_leads_carry_their_last_activity()


def assert_leads_carry_their_last_activity() -> None:
    newest = dict(
        Activity.objects.filter(lead__isnull=False).values_list("lead_id").annotate(last=Max("created_at"))
    )
    written = dict(Lead.objects.filter(last_activity_at__isnull=False).values_list("pk", "last_activity_at"))
    assert newest and written == newest


def small_generator(*, seed: int = 0, leads: int = 200, **sizes: int) -> DataSetGenerator:
    """A generator of a few records, ending on 2026-06-30, without pipelines or tags."""
    return DataSetGenerator(
        SeedContext(
            seed=seed,
            clock=Clock(end=int(datetime(2026, 6, 30, tzinfo=UTC).timestamp())),
            users=[1, 2, 3],
            pipelines=[],
            tags=[],
            lost_reasons=[],
            accounts=sizes.pop("accounts", leads // 10),
            contacts=sizes.pop("contacts", leads * 3 // 10),
            leads=leads,
            base_ids={"account": 0, "contact": 0, "lead": 0, "opportunity": 0, "activity": 0},
            **sizes,
        )
    )


@pytest.mark.django_db
def test_every_seeded_record_passes_its_models_full_clean():
    seed()

    for model in (Pipeline, Stage, Tag, LostReason, Account, Contact, Lead, Opportunity, Activity):
        for record in model.objects.all():
            record.full_clean()


@pytest.mark.django_db
def test_seeded_records_keep_the_business_rules():
    seed()
    end = datetime(2026, 6, 30, tzinfo=UTC)
    start = end - timedelta(days=730)

    converted = Lead.objects.filter(status="converted")
    assert converted.exists()
    for lead in converted:
        assert lead.converted_at is not None and lead.converted_at >= lead.created_at
        assert lead.converted_account is not None
        assert lead.stage.is_won and lead.probability == 100
        assert lead.company_name == lead.converted_account.name
        if lead.converted_contact is not None:
            assert lead.converted_contact.account_id == lead.converted_account_id
            assert lead.email == lead.converted_contact.email
        opportunity = lead.converted_opportunity
        assert opportunity.account_id == lead.converted_account_id
        assert opportunity.name == lead.name
    assert Opportunity.objects.filter(lead__isnull=False).count() == converted.count()

    lost_leads = Lead.objects.filter(status="lost")
    assert lost_leads.exists()
    assert not lost_leads.filter(lost_reason__isnull=True).exists()
    assert all(lead.stage.is_lost and lead.probability == 0 for lead in lost_leads)
    open_leads = Lead.objects.filter(status="open")
    assert not open_leads.filter(stage__is_won=True).exists()
    assert not open_leads.filter(stage__is_lost=True).exists()
    assert not open_leads.filter(converted_at__isnull=False).exists()

    won = Opportunity.objects.filter(status="won")
    assert won.exists()
    assert all(o.closed_at and o.probability == 100 and o.stage.is_won for o in won)
    lost = Opportunity.objects.filter(status="lost")
    assert all(o.closed_at and o.lost_reason_id and o.stage.is_lost for o in lost)
    assert not Opportunity.objects.filter(status="open", closed_at__isnull=False).exists()
    for opportunity in Opportunity.objects.filter(contact__isnull=False):
        assert opportunity.contact.account_id == opportunity.account_id
        assert opportunity.stage.pipeline_id == opportunity.pipeline_id

    primaries = Contact.objects.filter(is_primary=True)
    assert primaries.exists()
    assert not primaries.filter(account__isnull=True).exists()
    assert not primaries.values("account").annotate(n=Count("id")).filter(n__gt=1).exists()

    assert not Activity.objects.filter(status="completed", completed_at__isnull=True).exists()
    assert not Activity.objects.filter(
        lead__isnull=True, opportunity__isnull=True, contact__isnull=True, account__isnull=True
    ).exists()
    assert set(Activity.objects.values_list("status", flat=True)) == {
        "scheduled",
        "in_progress",
        "completed",
        "cancelled",
    }

    # More records in the early stages of a pipeline than in the late ones.
    new, negotiation = (
        Lead.objects.filter(status="open", stage__pipeline__name="Sales Pipeline", stage__name=name).count()
        for name in ("New", "Negotiation")
    )
    assert new > 2 * negotiation > 0

    for model in (Account, Contact, Lead, Opportunity, Activity):
        span = model.objects.aggregate(first=Min("created_at"), last=Max("updated_at"))
        assert start <= span["first"] and span["last"] <= end
        assert not model.objects.filter(updated_at__lt=F("created_at")).exists()
        assert model.objects.filter(owner__isnull=False).count() > 0.9 * model.objects.count()
    assert Lead.objects.filter(created_at__lt=start + timedelta(days=365)).exists()
    assert Lead.objects.filter(created_at__gte=end - timedelta(days=90)).exists()

    for model in (Lead, Opportunity, Account, Contact):
        tag_counts = set(model.objects.annotate(n=Count("tags")).values_list("n", flat=True))
        assert tag_counts <= {0, 1, 2, 3}
        assert {0, 1, 3} <= tag_counts


@pytest.mark.django_db
def test_the_same_seed_gives_the_same_data_and_another_seed_other_data():
    seed("--seed=5")
    first = fingerprint()
    after_first = top_ids()

    seed("--seed=5", "--force")
    again = fingerprint(after_first)
    after_again = top_ids()

    seed("--seed=6", "--force")
    other = fingerprint(after_again)

    assert again == first
    assert other[2] != first[2]
    assert [len(table) for table in other[:5]] == [len(table) for table in first[:5]]


@pytest.mark.django_db
def test_emails_of_people_and_account_names_are_unique_and_never_deliverable():
    seed()

    emails = list(Contact.objects.values_list("email", flat=True))
    assert len(set(emails)) == len(emails)
    names = list(Account.objects.values_list("name", flat=True))
    assert len(set(names)) == len(names)
    for email in [*emails, *Lead.objects.values_list("email", flat=True)]:
        assert email.endswith(".example"), email
    assert all(user.email.endswith(".example") for user in get_user_model().objects.all())
    assert all(account.website.endswith(".example") for account in Account.objects.all())


@pytest.mark.django_db
def test_seed_refuses_a_database_that_holds_crm_records(pipeline):
    LeadFactory(name="A real lead")
    users_before = get_user_model().objects.count()

    with pytest.raises(CommandError) as excinfo:
        seed()

    message = str(excinfo.value)
    assert "already holds CRM records (1 leads)" in message
    assert "--force" in message
    assert Lead.objects.count() == 1
    assert get_user_model().objects.count() == users_before
    assert Pipeline.objects.count() == 1


@pytest.mark.django_db
def test_seed_with_force_adds_to_existing_records_and_reuses_the_default_pipeline(pipeline):
    real = LeadFactory(name="A real lead")

    seed("--force")

    assert Lead.objects.count() == 201
    real.refresh_from_db()
    assert real.name == "A real lead"
    # The existing default pipeline is used rather than a new "Sales Pipeline".
    assert set(Pipeline.objects.values_list("name", flat=True)) == {"Sales", "Enterprise Deals"}
    assert Pipeline.objects.get(is_default=True) == pipeline
    in_default = Lead.objects.filter(pipeline=pipeline).exclude(pk=real.pk)
    assert in_default.count() > 100
    assert set(in_default.values_list("stage__pipeline", flat=True)) == {pipeline.pk}
    # The rollups are counted at the end, over the existing records and the seeded ones, and their
    # triggers are back for the writes that follow.
    assert rollup_differences(LEAD_ROLLUP) == [] and rollup_differences(OPPORTUNITY_ROLLUP) == []
    assert LeadRollup.objects.aggregate(n=Sum("n"))["n"] == 201
    # Each seeded record's furthest stage is generated with it (its stage: the seed writes no history).
    assert reached_differences(LEAD_REACH) == (0, []) and reached_differences(OPPORTUNITY_REACH) == (0, [])
    assert Lead.objects.filter(reached_sequence__isnull=False).exists()
    after = LeadFactory(name="After the seed")
    assert rollup_differences(LEAD_ROLLUP) == []
    assert Lead.objects.get(pk=after.pk).reached_sequence == after.stage.sequence


@pytest.mark.django_db
def test_append_is_another_name_for_force(pipeline):
    LeadFactory()

    seed("--append", leads=10, activities=10)

    assert Lead.objects.count() == 11


@pytest.mark.django_db
def test_new_records_get_ids_after_the_seeded_ones():
    seed()
    top = top_ids()

    lead = Lead.objects.create(name="Made after the seed")
    account = Account.objects.create(name="Made after the seed")
    activity = Activity.objects.create(subject="Call", activity_type="call", lead=lead)

    assert lead.pk == top["Lead"] + 1
    assert account.pk == top["Account"] + 1
    assert activity.pk == top["Activity"] + 1
    assert Lead.objects.filter(tags__isnull=False).exists()
    lead.tags.add(Tag.objects.first())


@pytest.mark.django_db
def test_indexes_and_constraints_are_all_back_after_the_load():
    tables = ["crm_lead", "crm_lead_tags", "crm_contact", "sales_opportunity", "activities_activity"]

    def constraints():
        with connection.cursor() as cursor:
            return {table: set(connection.introspection.get_constraints(cursor, table)) for table in tables}

    def statistics_targets():
        # An index's own statistics target (the search indexes', crm 0044) comes back with it.
        if connection.vendor != "postgresql":
            return set()
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT a.attrelid::regclass::text, a.attnum, a.attstattarget FROM pg_attribute a "
                "JOIN pg_index i ON i.indexrelid = a.attrelid WHERE i.indrelid = ANY(%s::regclass[])",
                [tables],
            )
            return set(cursor.fetchall())

    before = constraints()
    targets = statistics_targets()
    seed()

    assert constraints() == before
    assert statistics_targets() == targets
    if connection.vendor == "postgresql":
        assert ("crm_lead_contact_name_trgm", 1, 1000) in targets


@pytest.mark.django_db
def test_a_failure_half_way_leaves_nothing_behind(monkeypatch):
    def broken_activities(self):
        yield from ()
        raise RuntimeError("the generator broke")

    monkeypatch.setattr(DataSetGenerator, "activities", broken_activities)
    tables = ["crm_lead", "activities_activity"]

    def constraints():
        with connection.cursor() as cursor:
            return {table: set(connection.introspection.get_constraints(cursor, table)) for table in tables}

    before = constraints()

    with pytest.raises(RuntimeError):
        seed()

    assert Lead.objects.count() == 0
    assert Account.objects.count() == 0
    assert get_user_model().objects.count() == 0
    assert Pipeline.objects.count() == 0
    # On PostgreSQL the activities' indexes were dropped for the load when it failed.
    assert constraints() == before


@pytest.mark.django_db
def test_progress_without_a_terminal_is_plain_lines():
    output = seed()

    assert "\r" not in output
    lines = output.splitlines()
    assert lines[0].startswith("Seeding 200 leads, 40 opportunities, 20 accounts")
    assert lines[-1].startswith("Seeded ")
    assert any(re.fullmatch(r"leads: 200 rows in \d+\.\d+s \([\d,]+/s\)", line) for line in lines)
    assert any(line.startswith("lead tags: ") for line in lines)
    assert all(re.fullmatch(r"[a-z ]+: [\d,/]+ (rows|indexes|tables|steps) .*", line) for line in lines[1:-1])
    # The tables the activities' feed rewrites are compacted; the leads, written with their last
    # activity, are not rewritten.
    compacted = any(line.startswith("contacts compacted: ") for line in lines)
    assert compacted == (connection.vendor == "postgresql")
    assert not any(line.startswith("leads compacted: ") for line in lines)


def test_plain_progress_prints_a_line_per_tenth_and_one_at_the_end():
    lines = []
    progress = Progress(lines.append, interactive=False)

    with progress.phase("leads", 1000) as tick:
        for _ in range(40):
            tick(25)

    assert [line.split(" rows")[0] for line in lines[:-1]] == [f"leads: {n}00/1,000" for n in range(1, 10)]
    assert lines[-1].startswith("leads: 1,000 rows in ")
    assert all(line.endswith("\n") and "\r" not in line for line in lines)


class Terminal(StringIO):
    def isatty(self):
        return True


@pytest.mark.django_db
def test_progress_on_a_terminal_is_a_bar_redrawn_in_place():
    output = seed(stdout=Terminal())

    assert "\r" in output
    assert "█" in output
    assert "leads" in output


@pytest.mark.django_db
def test_quiet_and_no_progress_print_no_progress():
    out = StringIO()
    call_command("crm_seed", *[f"--{k}={v}" for k, v in SIZES.items()], "--no-progress", stdout=out)

    assert out.getvalue().splitlines()[-1].startswith("Seeded ")
    assert "leads:" not in out.getvalue()


@pytest.mark.django_db
def test_seeded_users_get_the_sales_rep_role_where_it_exists():
    # The access-control work makes this group in a migration; a database without it gets one here.
    role, _ = Group.objects.get_or_create(name="Sales Rep")
    role.user_set.clear()

    seed()

    assert role.user_set.count() == 5


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--leads=-1"], "must be 0 or more"),
        (["--leads=many"], "not a whole number"),
        (
            ["--leads=0", "--opportunities=0", "--accounts=0", "--contacts=0", "--activities=5"],
            "Activities are linked to",
        ),
    ],
)
def test_impossible_sizes_are_refused_with_a_reason(args, error):
    with pytest.raises(CommandError, match=error):
        call_command("crm_seed", *args, stdout=StringIO())
    assert Lead.objects.count() == 0


@pytest.mark.django_db
def test_every_seeded_record_has_its_first_history_version(pipeline):
    """Issue 14 finding 21: seeded records had no first version, so their first change showed every
    old value as empty. The seeder writes the '+' versions in bulk, for the records it adds only."""
    LeadFactory(stage=pipeline.stages.first())  # an existing record, with a version of its own
    existing = Lead.history.count()
    history_tables = [model.history.model._meta.db_table for model in (Lead, Account, Activity)]

    def constraints():
        with connection.cursor() as cursor:
            return {t: set(connection.introspection.get_constraints(cursor, t)) for t in history_tables}

    before = constraints()
    seed("--force")

    assert constraints() == before
    assert Lead.history.count() == existing + 200
    for model in (Lead, Opportunity, Account, Contact, Activity):
        versions = model.history.model.objects.filter(history_type="+")
        firsts = dict(versions.values_list("id").annotate(n=Count("history_id")).values_list("id", "n"))
        assert set(firsts) == set(model.objects.values_list("pk", flat=True)), model.__name__
        assert set(firsts.values()) == {1}
        record = model.objects.order_by("-pk").first()
        first = versions.get(id=record.pk)
        assert first.history_date == record.created_at
        for field in model.history.model.tracked_fields:
            assert getattr(first, field.attname) == getattr(record, field.attname), field.name

    lead = Lead.objects.order_by("-pk").first()
    old_phone = lead.phone
    lead.phone = "555-0199"
    lead.save()
    latest = Lead.history.filter(id=lead.pk).latest("history_date", "history_id")
    assert [(c.field, c.old) for c in latest.diff_against(latest.prev_record).changes] == [
        ("phone", old_phone)
    ]


SEEDED_TABLES = [
    (Account, DataSetGenerator.ACCOUNT_FIELDS),
    (Contact, DataSetGenerator.CONTACT_FIELDS),
    (Lead, DataSetGenerator.LEAD_FIELDS),
    (Opportunity, DataSetGenerator.OPPORTUNITY_FIELDS),
    (Activity, DataSetGenerator.ACTIVITY_FIELDS),
]


@pytest.mark.parametrize("model, fields", SEEDED_TABLES, ids=lambda value: getattr(value, "__name__", ""))
def test_every_concrete_field_of_a_seeded_model_is_generated_or_defaulted(model, fields):
    """Issue 15 item 3: the seeder writes every column of a seeded table, the generated ones and the
    rest with their model defaults, so adding a field to the model needs no change in the seeder."""
    columns, tail = seed_columns(model, fields)

    assert sorted(columns) == sorted(field.column for field in model._meta.concrete_fields)
    assert len(columns) == len(set(columns)) == len(fields) + len(tail)


def test_seed_columns_give_the_fields_the_generator_leaves_out_their_model_defaults():
    """Issue 15 item 3: the defaults come from the import writer's rule: the field's default, NULL for
    a nullable field without one, "" for a NOT NULL one."""
    generated = (
        "id",
        "created_at",
        "updated_at",
        "name",
        "pipeline_id",
        "stage_id",
        "probability",
        "owner_id",
    )

    columns, tail = seed_columns(Lead, generated)

    assert columns[: len(generated)] == [Lead._meta.get_field(name).column for name in generated]
    defaults = dict(zip(columns[len(generated) :], tail, strict=True))
    assert defaults["priority"] == Lead._meta.get_field("priority").get_default() == "medium"
    assert defaults["status"] == LeadStatus.OPEN
    assert defaults["description"] == defaults["lost_note"] == ""
    assert defaults["expected_revenue"] is None
    assert defaults["score"] is None


@pytest.mark.django_db
def test_a_lead_field_the_generator_does_not_write_gets_its_model_default(monkeypatch):
    """Issue 15 item 3: a field the generator does not know (here two it stops generating) is written
    with its model default instead of breaking the load."""
    dropped = ("priority", "lost_note")
    keep = [i for i, name in enumerate(DataSetGenerator.LEAD_FIELDS) if name not in dropped]
    generate = DataSetGenerator.leads

    def leads_without(self):
        for row in generate(self):
            yield tuple(row[i] for i in keep)

    monkeypatch.setattr(DataSetGenerator, "LEAD_FIELDS", tuple(DataSetGenerator.LEAD_FIELDS[i] for i in keep))
    monkeypatch.setattr(DataSetGenerator, "leads", leads_without)

    seed()

    assert Lead.objects.count() == SIZES["leads"]
    assert set(Lead.objects.values_list("priority", "lost_note").distinct()) == {("medium", "")}


# --- --jobs: the indexes built on several connections after the rows are committed (PostgreSQL) ------

on_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="--jobs builds indexes on several PostgreSQL connections"
)


def catalog() -> dict[str, list]:
    """Every index, constraint (and whether it is validated), trigger and index statistics target of
    the CRM's tables: what a seed must leave as the migrations made it."""
    queries = {
        "indexes": "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index i "
        "JOIN pg_class c ON c.oid = i.indrelid WHERE c.relnamespace = 'public'::regnamespace",
        "constraints": "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid), convalidated "
        "FROM pg_constraint WHERE connamespace = 'public'::regnamespace",
        "triggers": "SELECT tgrelid::regclass::text, tgname, tgenabled FROM pg_trigger "
        "WHERE NOT tgisinternal",
        "statistics": "SELECT a.attrelid::regclass::text, a.attnum, a.attstattarget FROM pg_attribute a "
        "JOIN pg_class c ON c.oid = a.attrelid WHERE c.relkind = 'i' AND a.attstattarget > 0 "
        "AND c.relnamespace = 'public'::regnamespace",
    }
    found = {}
    with connection.cursor() as cursor:
        for name, sql in queries.items():
            cursor.execute(sql)
            found[name] = sorted(cursor.fetchall())
    return found


def names(found: dict[str, list]) -> dict[str, list]:
    """``catalog()`` with the indexes by name alone."""
    return {**found, "indexes": sorted(name for name, _definition in found["indexes"])}


def derived_differences() -> list:
    """What the rollups and each record's furthest stage differ by from a recount (nothing)."""
    return [
        *(rollup_differences(rollup) for rollup in (LEAD_ROLLUP, OPPORTUNITY_ROLLUP)),
        *(reached_differences(reach) for reach in (LEAD_REACH, OPPORTUNITY_REACH)),
    ]


def empty_seeded_tables() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE crm_account, crm_contact, crm_lead, sales_opportunity, activities_activity, "
            "crm_historicalaccount, crm_historicalcontact, crm_historicallead, "
            "sales_historicalopportunity, activities_historicalactivity CASCADE"
        )


@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_jobs_give_the_records_indexes_and_constraints_of_one_transaction():
    schema = catalog()
    assert any(" USING gin " in definition for _name, definition in schema["indexes"])

    output = seed("--jobs=2")
    parallel, parallel_schema = fingerprint(), catalog()
    histories = Lead.history.model.objects.count(), Activity.history.model.objects.count()
    assert derived_differences() == [[], [], (0, []), (0, [])]
    # Each kind's last activity, recounted on the other connections after the activities' commit: a
    # recount here finds nothing to write.
    for model in (Lead, Opportunity, Contact, Account):
        assert model.objects.filter(last_activity_at__isnull=False).exists()
    refreshes = (
        lead_last_activity_refresh,
        opportunity_last_activity_refresh,
        contact_last_activity_refresh,
        account_last_activity_refresh,
    )
    assert [refresh() for refresh in refreshes] == [0, 0, 0, 0]
    assert "what the activities feed, and indexes, 2 at a time: " in output
    assert "constraints: " in output
    empty_seeded_tables()
    seed()

    assert parallel == fingerprint()
    assert parallel_schema == catalog()
    # Against the migrations' own, by name: an index rebuilt from its definition may print its
    # predicate's casts another way ("ANY ((ARRAY[…])::text[])" comes back as "ANY (ARRAY[(…)::text])").
    assert names(parallel_schema) == names(schema)
    assert histories == (Lead.history.model.objects.count(), Activity.history.model.objects.count())
    assert histories == (SIZES["leads"], SIZES["activities"])
    assert Lead.objects.filter(last_activity_at__isnull=False).exists()


@on_postgresql
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "rule",
    [
        # A unique index (built by the other connections) and a unique constraint (added in the last
        # transaction) that the generated leads break: a DBA's rule the seed cannot know of.
        "CREATE UNIQUE INDEX test_one_lead_a_status ON crm_lead (status)",
        "ALTER TABLE crm_lead ADD CONSTRAINT test_one_lead_a_status UNIQUE (status)",
    ],
    ids=["index", "constraint"],
)
def test_a_build_failing_after_the_commit_removes_the_records_and_makes_every_index_again(rule):
    with connection.cursor() as cursor:
        cursor.execute(rule)
    schema = catalog()

    with pytest.raises(IntegrityError, match="test_one_lead_a_status"):
        seed("--jobs=2")

    assert [model.objects.count() for model in (Account, Contact, Lead, Opportunity, Activity)] == [0] * 5
    assert Lead.history.model.objects.count() == Activity.history.model.objects.count() == 0
    assert Lead.tags.through.objects.count() == 0
    assert LeadRollup.objects.count() == 0
    assert names(catalog()) == names(schema)
    # The users, pipelines and tags it made stay, and the next seed takes them up again.
    assert Pipeline.objects.count() == 2
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE crm_lead DROP CONSTRAINT IF EXISTS test_one_lead_a_status")
        cursor.execute("DROP INDEX IF EXISTS test_one_lead_a_status")
    seed("--jobs=2")
    assert Lead.objects.count() == SIZES["leads"]
    assert get_user_model().objects.count() == SIZES["users"]
    assert derived_differences() == [[], [], (0, []), (0, [])]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "args, error",
    [
        (["--jobs=0"], "--jobs must be 1 or more"),
        # Inside a transaction (this test's) the other connections could not see the rows.
        (
            ["--jobs=2"],
            "--jobs commits as it goes" if connection.vendor == "postgresql" else "use it on PostgreSQL",
        ),
    ],
)
def test_jobs_are_refused_where_they_cannot_work(args, error):
    with pytest.raises(CommandError, match=error):
        seed(*args)
    assert Lead.objects.count() == 0


@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_jobs_refuse_to_add_to_existing_records(pipeline):
    LeadFactory(pipeline=pipeline)

    with pytest.raises(CommandError, match="only a database without CRM records"):
        seed("--jobs=2", "--force")

    assert Lead.objects.count() == 1


@on_postgresql
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("jobs", ["--jobs=1", "--jobs=2"])
def test_the_search_indexes_statistics_are_gathered_at_their_own_target(jobs):
    """crm 0044 gives the search indexes a statistics target of 1,000, and crm 0046 the leads' search
    text: the 200 seeded leads' contact names and search texts make histograms of nearly 200 bounds,
    not the default target's 101 at most."""
    seed(jobs)

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tablename, array_length(histogram_bounds::text::text[], 1) FROM pg_stats "
            "WHERE tablename = 'crm_lead_contact_name_trgm' "
            "OR (tablename = 'crm_lead' AND attname = 'search_text')"
        )
        bounds = dict(cursor.fetchall())
    assert set(bounds) == {"crm_lead_contact_name_trgm", "crm_lead"}
    assert min(bounds.values()) > 150, bounds


def pages_not_all_visible(tables: list[str]) -> dict[str, tuple[int, int]]:
    """The tables whose pages are not all marked all-visible (pages, marked), from the counts that
    VACUUM, ANALYZE and CREATE INDEX take of the visibility map."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname, relpages, relallvisible FROM pg_class WHERE relname = ANY(%s)", [tables]
        )
        found = {name: (pages, visible) for name, pages, visible in cursor.fetchall()}
    assert set(found) == set(tables)
    return {name: counts for name, counts in found.items() if counts[0] == 0 or counts[1] < counts[0]}


SEEDED_BY_COPY = [
    "crm_account",
    "crm_contact",
    "crm_lead",
    "sales_opportunity",
    "activities_activity",
    "crm_lead_tags",
    "crm_contact_tags",
    "sales_opportunity_tags",
]


@on_postgresql
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("jobs", ["--jobs=1", "--jobs=2"])
def test_a_seed_into_empty_tables_leaves_every_page_of_its_records_all_visible(jobs):
    """COPY FREEZE into the tables it truncates, VACUUM after the tables it compacts: the planner prices
    an index-only scan at what it costs (a board reads each stage's index) from the first request,
    without a VACUUM of its own (autovacuum may be off, as on the machines the benchmarks run on)."""
    printed = seed(jobs, leads=2000, activities=4000, contacts=600, opportunities=400)

    assert pages_not_all_visible(SEEDED_BY_COPY) == {}, printed  # names what it waited for, if anything
    assert derived_differences() == [[], [], (0, []), (0, [])]


class _SnapshotHolder(StringIO):
    """The seed's output, and another session of the database holding a snapshot taken before the seed
    began, ended when the seed says it waits for it (as a report or a dump that was running would)."""

    def __init__(self):
        super().__init__()
        self.session = connection.get_new_connection(connection.get_connection_params())
        self.session.autocommit = True
        self.session.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        self.session.execute("SELECT 1")  # the snapshot is taken here
        self.pid = self.session.info.backend_pid
        self.waited_for: list[str] = []

    def write(self, text: str) -> int:
        if "snapshot older than the seed's last writes" in text and not self.session.closed:
            self.waited_for.append(text)
            self.end()
        return super().write(text)

    def end(self) -> None:
        if not self.session.closed:
            self.session.execute("COMMIT")
            self.session.close()


@on_postgresql
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("jobs", ["--jobs=1", "--jobs=2"])
def test_the_compacted_tables_are_vacuumed_again_once_an_older_snapshot_has_ended(jobs):
    """A session whose snapshot is older than the seed's last-activity updates (as in CI, where one run
    of this file's test above left the contacts and deals unmarked) keeps VACUUM from marking their
    pages visible to all. The seed names it, waits for it to end, and vacuums those tables again."""
    holder = _SnapshotHolder()
    try:
        seed(jobs, stdout=holder, leads=2000, activities=4000, contacts=600, opportunities=400)
    finally:
        holder.end()

    assert pages_not_all_visible(SEEDED_BY_COPY) == {}
    assert len(holder.waited_for) == 1
    assert f"pid {holder.pid} " in holder.waited_for[0]


@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_a_seed_beside_existing_records_copies_without_freezing_and_keeps_them(pipeline):
    """No lead yet, but an activity (on an account) in a table that refers to the leads: the TRUNCATE
    that COPY FREEZE needs would take it along, so the seed copies its leads as before."""
    account = AccountFactory()
    activity = Activity.objects.create(subject="Call", activity_type="call", account=account)

    seed("--force")

    assert Lead.objects.count() == SIZES["leads"]
    assert Activity.objects.filter(pk=activity.pk, account=account).exists()
    # (The accounts are compacted, and vacuumed after that, whatever their copy was.)
    copied = ["crm_lead", "activities_activity"]
    assert set(pages_not_all_visible(copied)) == set(copied)


# --- a share of the activities drawn by a second process while the seed's loads the rest (PostgreSQL) ---


@pytest.fixture
def shares(monkeypatch):
    """Activities drawn in chunks of 64, so that the test's 400 are shared out (from 192 on), and the
    shares the seed made."""
    made = []

    class Recorded(RowShare):
        def __enter__(self):
            made.append(self)
            return super().__enter__()

    monkeypatch.setattr(DataSetGenerator, "ACTIVITY_CHUNK", 64)
    monkeypatch.setattr("crm.seeding.runner.RowShare", Recorded)
    return made


def last_activities() -> list:
    return [
        list(model.objects.order_by("pk").values_list("last_activity_at", flat=True))
        for model in (Lead, Opportunity, Contact, Account)
    ]


@on_postgresql
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("jobs", ["--jobs=1", "--jobs=2"])
def test_a_second_process_draws_the_later_activities_and_the_data_is_the_same(shares, monkeypatch, jobs):
    seed(jobs)
    [share] = shares
    assert (share.start, share.stop, share.lines) == (192, 400, 208)
    assert Activity.objects.count() == SIZES["activities"]
    shared = fingerprint(), last_activities(), list(Activity.objects.order_by("pk").values_list())
    empty_seeded_tables()

    monkeypatch.setattr(CopyWriter, "shares", False)
    seed(jobs)

    assert len(shares) == 1
    assert shared == (
        fingerprint(),
        last_activities(),
        list(Activity.objects.order_by("pk").values_list()),
    )


def _share_raises():
    raise ValueError("the second share broke")


def _share_is_killed():
    os.kill(os.getpid(), signal.SIGKILL)


@on_postgresql
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "breaks, error",
    [(_share_raises, "the second share broke"), (_share_is_killed, "ended with status -9")],
    ids=["raises", "killed"],
)
def test_the_second_process_failing_fails_the_seed_and_leaves_nothing(shares, monkeypatch, breaks, error):
    activities = DataSetGenerator.activities

    def broken_later(self, start=0, stop=None):
        yield from activities(self, start, stop)
        if start:  # the second process's share
            breaks()

    monkeypatch.setattr(DataSetGenerator, "activities", broken_later)
    schema = catalog()

    with pytest.raises(RuntimeError, match=rf"(?s)second process failed.*{error}"):
        seed()

    assert [model.objects.count() for model in (Account, Contact, Lead, Opportunity, Activity)] == [0] * 5
    assert names(catalog()) == names(schema)
    [share] = shares
    assert share.pid is None  # waited for
    assert not os.path.exists(share.path)


def test_activities_drawn_in_shares_are_the_activities_drawn_at_once(monkeypatch):
    """Each chunk of activities draws from its own random stream: where a share starts changes nothing."""
    monkeypatch.setattr(DataSetGenerator, "ACTIVITY_CHUNK", 64)
    generator = small_generator(seed=3, leads=100, activities=300)
    whole = list(generator.activities())
    assert len(whole) == 300
    assert generator.share_start("activities", 300) == 128
    assert generator.share_start("activities", 127) is None
    assert generator.share_start("leads", 300) is None
    for start in (64, 128, 256):
        assert list(generator.activities(0, start)) + list(generator.activities(start)) == whole
    with pytest.raises(ValueError, match="chunks of 64"):
        list(generator.activities(100))


# --- each lead's last activity, replayed from the activities' links before the leads are drawn ---------


@pytest.fixture
def foreseen(monkeypatch):
    """The child processes that worked out the leads' last activities."""
    made = []

    class Recorded(ArrayInChild):
        def __enter__(self):
            made.append(self)
            return super().__enter__()

    monkeypatch.setattr("crm.seeding.runner.ArrayInChild", Recorded)
    return made


@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_a_child_process_replays_the_leads_last_activities_while_the_accounts_are_loaded(foreseen):
    seed()

    [child] = foreseen
    assert child.pid is None  # waited for
    assert not os.path.exists(child.path)
    assert_leads_carry_their_last_activity()
    # What the child worked out is what the generator works out in the seed's own process.
    generator = small_generator(opportunities=40, activities=400)
    with ArrayInChild(generator.lead_last_activities) as child:
        assert child.result() == generator.lead_last_activities()


@on_postgresql
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "breaks, error",
    [(_share_raises, "the second share broke"), (_share_is_killed, "ended with status -9")],
    ids=["raises", "killed"],
)
def test_the_leads_last_activities_failing_in_the_child_fails_the_seed_and_leaves_nothing(
    foreseen, monkeypatch, breaks, error
):
    monkeypatch.setattr(DataSetGenerator, "lead_last_activities", lambda self: breaks())
    schema = catalog()

    with pytest.raises(RuntimeError, match=rf"(?s)second process failed.*{error}"):
        seed()

    assert [model.objects.count() for model in (Account, Contact, Lead, Opportunity, Activity)] == [0] * 5
    assert names(catalog()) == names(schema)
    [child] = foreseen
    assert child.pid is None
    assert not os.path.exists(child.path)
