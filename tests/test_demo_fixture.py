"""fixtures/demo.json: exactly the demo data of the spec, and loading it twice changes nothing;
manage.py crm_load_demo loads it into an empty database only."""

from io import StringIO

import pytest
from django.conf import settings
from django.core import serializers
from django.core.management import call_command
from django.core.management.base import CommandError

from activities.models import Activity
from activities.services import activity_update
from crm.models import Account, Contact, Lead, LostReason, Pipeline, Stage, Tag
from crm.services import account_update, contact_update, lead_update
from sales.models import Opportunity
from sales.services import lead_convert, opportunity_update

MODELS = [Pipeline, Stage, Tag, LostReason, Account, Contact, Lead, Opportunity, Activity]


def snapshot():
    return {m.__name__: serializers.serialize("json", m.objects.order_by("pk")) for m in MODELS}


@pytest.mark.django_db
def test_demo_fixture_gives_exactly_the_demo_records():
    call_command("loaddata", "demo", verbosity=0)
    counts = {m.__name__: m.objects.count() for m in MODELS}
    assert counts == {
        "Pipeline": 2,
        "Stage": 12,
        "Tag": 8,
        "LostReason": 5,
        "Account": 5,
        "Contact": 5,
        "Lead": 5,
        "Opportunity": 4,
        "Activity": 6,
    }
    default = Pipeline.objects.get(is_default=True)
    assert default.name == "Sales Pipeline"
    assert list(default.stages.values_list("name", flat=True)) == [
        "New",
        "Qualified",
        "Proposal",
        "Negotiation",
        "Won",
        "Lost",
    ]
    assert Pipeline.objects.filter(name="Enterprise Deals", is_default=False).exists()
    assert set(Account.objects.values_list("name", flat=True)) == {
        "Acme Corp",
        "Global Industries",
        "Tech Innovators",
        "MedHealth",
        "EduLearn",
    }
    assert not Contact.objects.filter(account__isnull=True).exists()
    assert {"High Value", "Enterprise", "SMB"} <= set(Tag.objects.values_list("name", flat=True))
    assert Lead.objects.values("stage").distinct().count() > 1
    assert Lead.objects.values("priority").distinct().count() > 1
    assert Opportunity.objects.values("stage").distinct().count() == 4
    assert Opportunity.objects.values("amount").distinct().count() == 4


@pytest.mark.django_db
def test_demo_records_pass_their_own_validation():
    call_command("loaddata", "demo", verbosity=0)
    for model in MODELS:
        for obj in model.objects.all():
            obj.full_clean()


@pytest.mark.django_db
def test_loading_the_demo_twice_changes_nothing():
    call_command("loaddata", "demo", verbosity=0)
    first = snapshot()
    call_command("loaddata", "demo", verbosity=0)
    assert snapshot() == first


@pytest.mark.django_db
def test_records_created_after_loading_get_fresh_ids():
    call_command("loaddata", "demo", verbosity=0)
    assert Lead.objects.create(name="After demo").pk > 5


# --- manage.py crm_load_demo: the demo goes into an empty database only (issue 14 finding 20) -----

TRACKED = [Account, Contact, Lead, Opportunity, Activity]


def load_demo(*args: str) -> str:
    out = StringIO()
    call_command("crm_load_demo", *args, stdout=out)
    return out.getvalue()


def convert_a_demo_lead(user):
    lead = Lead.objects.filter(status="open").order_by("pk").first()
    lead_convert(lead=lead, user=user, create_opportunity=True)
    return lead


@pytest.mark.django_db
def test_crm_load_demo_loads_the_demo_into_an_empty_database():
    out = load_demo()

    assert "Loaded the demo data" in out
    assert Lead.objects.count() == 5 and Opportunity.objects.count() == 4


@pytest.mark.django_db
def test_crm_load_demo_never_overwrites_what_a_user_changed(admin_user):
    """Issue 14 finding 20: re-running `make run` reloaded the demo over the user's edits: a converted
    demo lead became `open` again while its opportunity still pointed at it."""
    load_demo()
    lead = convert_a_demo_lead(admin_user)
    before = snapshot()
    versions = {model.__name__: model.history.count() for model in TRACKED}

    out = load_demo()

    assert "not loaded" in out and "--reset" in out
    assert snapshot() == before
    assert {model.__name__: model.history.count() for model in TRACKED} == versions
    lead.refresh_from_db()
    assert lead.status == "converted"
    assert Opportunity.objects.filter(lead=lead).exists()


@pytest.mark.django_db
def test_crm_load_demo_reset_wipes_the_crm_data_and_reloads_the_demo(admin_user):
    load_demo()
    demo = snapshot()
    convert_a_demo_lead(admin_user)
    Lead.objects.create(name="Mine")

    out = load_demo("--reset", "--yes")

    assert "Loaded the demo data" in out
    assert snapshot() == demo
    # The history starts again with the demo: one first version per record.
    for model in TRACKED:
        assert model.history.count() == model.objects.count()


@pytest.mark.django_db
def test_crm_load_demo_reset_needs_a_confirmation(admin_user):
    load_demo()
    convert_a_demo_lead(admin_user)
    before = snapshot()

    with pytest.raises(CommandError, match="--yes"):
        load_demo("--reset")

    assert snapshot() == before


def test_make_run_loads_the_demo_only_into_an_empty_database():
    makefile = (settings.BASE_DIR / "Makefile").read_text()
    run = makefile.split("\nrun: setup\n", 1)[1].split("\n\n", 1)[0]
    assert "loaddata" not in run
    assert "manage.py crm_load_demo\n" in run
    assert "demo-reset:" in makefile


# --- a first history version for loaded records (issue 14 finding 21) ----------------------------


def assert_every_record_has_one_first_version():
    for model in TRACKED:
        versions = model.history.model.objects
        assert model.objects.exists()
        for record in model.objects.all():
            first = versions.filter(id=record.pk).order_by("history_date", "history_id").first()
            assert first is not None, f"{model.__name__} {record.pk} has no history"
            assert first.history_type == "+"
            assert versions.filter(id=record.pk, history_type="+").count() == 1


def assert_first_change_shows_the_old_values(user):
    changes = [
        (Lead, lambda r: lead_update(lead=r, user=user, data={"phone": "555-0199"}), "phone"),
        (Account, lambda r: account_update(account=r, user=user, data={"phone": "555-0199"}), "phone"),
        (Contact, lambda r: contact_update(contact=r, user=user, data={"phone": "555-0199"}), "phone"),
        (
            Opportunity,
            lambda r: opportunity_update(opportunity=r, user=user, data={"description": "Changed"}),
            "description",
        ),
        (
            Activity,
            lambda r: activity_update(activity=r, user=user, data={"description": "Changed"}),
            "description",
        ),
    ]
    for model, change, field in changes:
        record = model.objects.order_by("pk").first()
        old = getattr(record, field)
        change(record)
        latest = model.history.model.objects.filter(id=record.pk).latest("history_date", "history_id")
        delta = latest.diff_against(latest.prev_record)
        assert [(c.field, c.old) for c in delta.changes] == [(field, old)], model.__name__


@pytest.mark.django_db
def test_crm_load_demo_gives_every_record_a_first_version(admin_user):
    """Issue 14 finding 21: records created by loaddata had no first version, so their first change
    showed every old value as empty."""
    load_demo()

    assert_every_record_has_one_first_version()
    first = Lead.history.model.objects.filter(id=1, history_type="+").get()
    assert first.history_date == Lead.objects.get(pk=1).created_at
    assert_first_change_shows_the_old_values(admin_user)


@pytest.mark.django_db
def test_plain_loaddata_gives_every_record_a_first_version_once(admin_user):
    call_command("loaddata", "demo", verbosity=0)
    call_command("loaddata", "demo", verbosity=0)

    assert_every_record_has_one_first_version()
    assert_first_change_shows_the_old_values(admin_user)


@pytest.mark.django_db
def test_loaddata_over_a_changed_record_records_the_change(admin_user):
    call_command("loaddata", "demo", verbosity=0)
    lead = Lead.objects.get(pk=1)
    name = lead.name
    lead_update(lead=lead, user=admin_user, data={"name": "Renamed by a user"})

    call_command("loaddata", "demo", verbosity=0)

    latest = Lead.history.model.objects.filter(id=1).latest("history_date", "history_id")
    assert (latest.history_type, latest.name) == ("~", name)
    assert Lead.history.model.objects.filter(id=1).count() == 3


@pytest.mark.django_db
def test_crm_load_demo_reset_asks_on_a_terminal(admin_user, monkeypatch):
    load_demo()
    demo = snapshot()
    convert_a_demo_lead(admin_user)
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    answers = iter(["no", "yes"])
    monkeypatch.setattr("builtins.input", lambda prompt: next(answers))

    with pytest.raises(CommandError, match="cancelled"):
        load_demo("--reset")
    assert Lead.objects.filter(status="converted").count() == 1

    load_demo("--reset")
    assert snapshot() == demo
