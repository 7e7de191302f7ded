"""Every invariant is refused twice: by the database, and by validation with a clear message."""

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from activities.models import Activity
from crm import services as crm_services
from crm.actors import SYSTEM
from crm.models import Contact, Lead, Pipeline, Stage, Tag
from sales.models import Opportunity
from tests.factories import (
    AccountFactory,
    ActivityFactory,
    ContactFactory,
    LeadFactory,
    OpportunityFactory,
    PipelineFactory,
    StageFactory,
    TagFactory,
    UserFactory,
)


def assert_db_refuses(fn):
    with pytest.raises(IntegrityError), transaction.atomic():
        fn()


def field_errors(instance) -> dict:
    with pytest.raises(ValidationError) as excinfo:
        instance.full_clean()
    return excinfo.value.message_dict


@pytest.mark.django_db
@pytest.mark.parametrize("value", [-1, 101, 150])
def test_lead_probability_outside_0_100_is_refused(pipeline, value):
    lead = LeadFactory()
    assert field_errors(Lead(name="x", pipeline=pipeline, probability=value))["probability"]
    assert_db_refuses(lambda: Lead.objects.filter(pk=lead.pk).update(probability=value))


@pytest.mark.django_db
def test_opportunity_probability_150_is_refused(pipeline):
    opp = OpportunityFactory()
    errors = field_errors(Opportunity(name="x", pipeline=pipeline, probability=150))
    assert "Ensure this value is less than or equal to 100." in errors["probability"]
    assert_db_refuses(lambda: Opportunity.objects.filter(pk=opp.pk).update(probability=150))


@pytest.mark.django_db
def test_stage_probability_150_is_refused(pipeline):
    stage = pipeline.stages.first()
    assert field_errors(Stage(pipeline=pipeline, name="Odd", probability=150))["probability"]
    assert_db_refuses(lambda: Stage.objects.filter(pk=stage.pk).update(probability=150))


@pytest.mark.django_db
def test_second_default_pipeline_is_refused_by_the_database(pipeline):
    other = PipelineFactory(name="Other")
    assert_db_refuses(lambda: Pipeline.objects.filter(pk=other.pk).update(is_default=True))


@pytest.mark.django_db
def test_unsetting_the_only_default_pipeline_is_refused_with_a_message(pipeline):
    pipeline.is_default = False
    errors = field_errors(pipeline)
    assert "There must always be a default pipeline" in errors["is_default"][0]


@pytest.mark.django_db
def test_default_pipeline_must_be_active(pipeline):
    pipeline.is_active = False
    assert field_errors(pipeline)["is_active"] == ["The default pipeline must be active."]
    assert_db_refuses(lambda: Pipeline.objects.filter(pk=pipeline.pk).update(is_active=False))


@pytest.mark.django_db
def test_stage_both_won_and_lost_is_refused(pipeline):
    stage = Stage(pipeline=PipelineFactory(), name="Both", is_won=True, is_lost=True)
    assert field_errors(stage)["is_lost"] == ["A stage cannot be both won and lost."]
    new_stage = StageFactory(pipeline=PipelineFactory(name="P2"))
    assert_db_refuses(lambda: Stage.objects.filter(pk=new_stage.pk).update(is_won=True, is_lost=True))


@pytest.mark.django_db
def test_second_won_stage_in_a_pipeline_is_refused(pipeline):
    stage = Stage(pipeline=pipeline, name="Also won", is_won=True)
    assert field_errors(stage)["is_won"] == ["This pipeline already has a won stage."]
    assert_db_refuses(lambda: StageFactory(pipeline=pipeline, name="Also won", is_won=True))


@pytest.mark.django_db
def test_tag_names_are_unique_ignoring_case():
    TagFactory(name="VIP")
    errors = field_errors(Tag(name="vip"))
    assert errors["name"] == ["A tag with this name already exists (names ignore case)."]
    assert_db_refuses(lambda: Tag.objects.create(name="Vip"))


@pytest.mark.django_db
def test_an_account_has_at_most_one_primary_contact():
    account = AccountFactory()
    ContactFactory(account=account, is_primary=True)
    second = Contact(first_name="Second", account=account, is_primary=True)
    assert field_errors(second)["is_primary"] == ["This account already has a primary contact."]
    assert_db_refuses(lambda: ContactFactory(account=account, is_primary=True))
    # Another account may have its own primary contact.
    ContactFactory(account=AccountFactory(), is_primary=True)


@pytest.mark.django_db
def test_a_primary_contact_needs_an_account():
    errors = field_errors(Contact(first_name="Solo", is_primary=True))
    assert errors["is_primary"] == ["Only a contact linked to an account can be its primary contact."]
    assert_db_refuses(lambda: ContactFactory(is_primary=True))


@pytest.mark.django_db
def test_lead_stage_must_belong_to_its_pipeline(pipeline):
    other = PipelineFactory(name="Enterprise")
    foreign_stage = StageFactory(pipeline=other, name="Discovery")
    lead = Lead(name="x", pipeline=pipeline, stage=foreign_stage)
    errors = field_errors(lead)
    assert errors["stage"] == ["The stage “Discovery” belongs to the pipeline “Enterprise”, not to “Sales”."]


@pytest.mark.django_db
def test_opportunity_stage_must_belong_to_its_pipeline(pipeline):
    foreign_stage = StageFactory(pipeline=PipelineFactory(name="Enterprise"), name="Discovery")
    errors = field_errors(Opportunity(name="x", pipeline=pipeline, stage=foreign_stage))
    assert "belongs to the pipeline “Enterprise”" in errors["stage"][0]


@pytest.mark.django_db
def test_opportunity_contact_must_work_for_its_account(pipeline):
    contact = ContactFactory(account=AccountFactory(name="Acme"))
    opp = Opportunity(name="x", pipeline=pipeline, account=AccountFactory(name="Initech"), contact=contact)
    assert "works for Acme, not for Initech" in field_errors(opp)["contact"][0]


@pytest.mark.django_db
def test_activity_must_be_linked_to_a_record(pipeline):
    errors = field_errors(Activity(subject="Call", activity_type="call"))
    assert errors["__all__"] == ["Link the activity to at least one lead, opportunity, contact or account."]
    activity = ActivityFactory(lead=LeadFactory())
    assert_db_refuses(lambda: Activity.objects.filter(pk=activity.pk).update(lead=None))


@pytest.mark.django_db
def test_negative_money_is_refused(pipeline):
    errors = field_errors(Lead(name="x", pipeline=pipeline, expected_revenue=-5))
    assert errors["expected_revenue"] == ["This amount cannot be negative."]
    opp = OpportunityFactory()
    assert_db_refuses(lambda: Opportunity.objects.filter(pk=opp.pk).update(amount=-1))


@pytest.mark.django_db
def test_won_opportunity_needs_close_date_and_full_probability(pipeline):
    opp = OpportunityFactory()
    assert_db_refuses(lambda: Opportunity.objects.filter(pk=opp.pk).update(status="won"))
    assert_db_refuses(
        lambda: Opportunity.objects.filter(pk=opp.pk).update(status="won", closed_at="2026-01-01T00:00Z")
    )


@pytest.mark.django_db
def test_account_cannot_be_its_own_ancestor():
    top = AccountFactory(name="Top")
    child = AccountFactory(name="Child", parent=top)
    top.parent = child
    assert "circular" in field_errors(top)["parent"][0]
    top.parent = top
    assert "An account cannot be its own parent." in field_errors(top)["parent"]


@pytest.mark.django_db
def test_a_records_check_constraints_are_asked_in_one_query_and_each_violation_named(pipeline):
    """Django asks each check constraint in its own query and savepoint; a save of a deal (four check
    constraints) asks them all in one SELECT and still names every one it violates, under its field."""
    opp = OpportunityFactory(amount=10, probability=40)
    opp.status, opp.closed_at, opp.probability = "won", None, 60
    with CaptureQueriesContext(connection) as ctx, pytest.raises(ValidationError) as excinfo:
        opp.validate_constraints()
    assert excinfo.value.message_dict == {
        "closed_at": ["A won or lost opportunity needs the date it was closed."],
        "probability": ["A won opportunity has a probability of 100."],
    }
    asked = [q["sql"] for q in ctx.captured_queries if "SAVEPOINT" not in q["sql"].upper()]
    assert len(asked) == 1, asked
    # A constraint on an excluded field (one whose own validation failed) is not asked.
    with pytest.raises(ValidationError) as excinfo:
        opp.validate_constraints(exclude={"closed_at"})
    assert excinfo.value.message_dict == {"probability": ["A won opportunity has a probability of 100."]}
    opp.probability, opp.closed_at = 100, timezone.now()
    opp.validate_constraints()


@pytest.mark.django_db
def test_a_foreign_key_held_as_a_stored_record_is_not_looked_up_again_a_bare_id_is(pipeline):
    """Validation looked up every foreign key of a record, a query apiece, even when the record was
    given its related records as read from the database: a conversion asked for the same account,
    contact, stage and owner again, save after save."""
    deal = OpportunityFactory(account=AccountFactory())
    deal = Opportunity.objects.select_related("account", "pipeline", "stage", "owner").get(pk=deal.pk)
    with CaptureQueriesContext(connection) as ctx:
        deal.clean_fields()
    assert ctx.captured_queries == []
    # A key given as a bare id is still looked up, and one that names nothing is refused.
    deal.account_id = deal.account_id + 1000
    with CaptureQueriesContext(connection) as ctx, pytest.raises(ValidationError) as excinfo:
        deal.clean_fields()
    assert list(excinfo.value.message_dict) == ["account"]
    assert len(ctx.captured_queries) == 1


@pytest.mark.django_db
def test_a_foreign_key_still_holding_the_value_it_was_read_with_is_not_looked_up_again(pipeline):
    """A deal read from the database and moved (the service locks and re-reads it, without its related
    records) was validated with an existence query for each of its keys: account, contact, pipeline,
    lead, owner. A key still holding the value read names a record that existed then, and the
    database's constraint stays the last word; a key given another value is looked up."""
    deal = OpportunityFactory(account=AccountFactory(), owner=UserFactory())
    read = Opportunity.objects.get(pk=deal.pk)
    with CaptureQueriesContext(connection) as ctx:
        read.clean_fields()
    assert ctx.captured_queries == []
    other = AccountFactory()
    read.account_id = other.pk
    with CaptureQueriesContext(connection) as ctx:
        read.clean_fields()
    assert len(ctx.captured_queries) == 1  # the new account is looked up
    read.account_id = other.pk + 1000
    with pytest.raises(ValidationError) as excinfo:
        read.clean_fields()
    assert list(excinfo.value.message_dict) == ["account"]
    read.account_id = deal.account_id  # back to the value read
    with CaptureQueriesContext(connection) as ctx:
        read.clean_fields()
    assert ctx.captured_queries == []
    # Read again, or made in Python: nothing vouches for the keys, each is looked up.
    read.refresh_from_db()
    with CaptureQueriesContext(connection) as ctx:
        read.clean_fields()
    looked_up = " ".join(query["sql"] for query in ctx.captured_queries)
    assert '"crm_account"' in looked_up and '"auth_user"' in looked_up and '"crm_pipeline"' in looked_up
    made = Opportunity(
        name="New", account_id=deal.account_id, pipeline_id=deal.pipeline_id, stage_id=deal.stage_id
    )
    with CaptureQueriesContext(connection) as ctx:
        made.clean_fields()
    looked_up = " ".join(query["sql"] for query in ctx.captured_queries)
    assert '"crm_account"' in looked_up and '"crm_pipeline"' in looked_up


@pytest.mark.django_db
def test_a_null_character_in_any_text_field_is_refused_by_validation_with_the_others(pipeline):
    # PostgreSQL's text cannot hold a NUL: saved, it was a DataError (a 500 at the admin's saved-view
    # form and any door that hands a service a string no form field has checked).
    lead = Lead(
        name="A\x00B", pipeline=pipeline, email="a\x00@example.com", description="ok", probability=150
    )
    errors = field_errors(lead)
    assert errors["name"] == ["Null characters are not allowed."]
    assert errors["email"][0] in ("Null characters are not allowed.", "Enter a valid email address.")
    assert "description" not in errors
    assert errors["probability"]  # the other checks still run

    with pytest.raises(ValidationError) as refused:
        crm_services.lead_create(user=SYSTEM, data={"name": "Lead\x00"})
    assert refused.value.message_dict["name"] == ["Null characters are not allowed."]
    assert not Lead.objects.filter(name__startswith="Lead").exists()
