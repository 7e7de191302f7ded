"""``owned_records_visible_listed``: the visibility rule with the owners read first and listed (crm
selectors), which "my next actions" repeats in its subqueries, sees exactly what the rule sees; so does
its form on the owner key (``owned_records_visible_listed_by_key``)."""

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Q

from activities.models import Activity
from activities.selectors import activity_owned_by, activity_visible_to
from crm.models import Lead
from crm.selectors import (
    lead_visible_to,
    owned_records_owned_by,
    owned_records_visible_listed,
    owned_records_visible_owners,
    owned_records_visible_owners_listed,
    record_visible_keyed,
)
from crm.selectors.visibility import owned_records_visible_listed_by_key
from sales.models import Opportunity, OpportunityRollup
from sales.selectors import opportunity_visible_to
from tests.factories import ActivityFactory, LeadFactory, OpportunityFactory, UserFactory


@pytest.mark.django_db
def test_each_reader_sees_through_the_listed_rule_what_the_rule_shows(people, stages):
    owners = [*people.users.values(), None]
    for index, owner in enumerate(owners * 2):
        lead = LeadFactory(stage=stages["New"], owner=owner)
        OpportunityFactory(stage=stages["New"], owner=owner)
        ActivityFactory(lead=lead, owner=owners[(index + 1) % len(owners)])
    inactive = UserFactory(is_active=False)
    readers = {**people.users, "inactive": inactive, "plain": UserFactory()}
    for name, reader in readers.items():
        reader = get_user_model().objects.get(pk=reader.pk)
        for model, visible_to in (
            (Lead, lead_visible_to),
            (Opportunity, opportunity_visible_to),
            (Activity, activity_visible_to),
        ):
            rule = owned_records_visible_listed(model, reader)
            assert rule is not None, (name, model)
            listed = set(model.objects.filter(rule).values_list("pk", flat=True))
            assert listed == set(visible_to(reader).values_list("pk", flat=True)), (name, model)
        # The leads' rule on the owner key (COALESCE(owner_id, 0) IN (0, ...)), which a search no
        # trigram index serves is read with: the same leads.
        keyed = owned_records_visible_listed_by_key(Lead, reader)
        assert set(Lead.objects.filter(keyed).values_list("pk", flat=True)) == set(
            lead_visible_to(reader).values_list("pk", flat=True)
        ), name
        seen_all = keyed == Q()
        assert record_visible_keyed(Lead, reader) == (None if seen_all else keyed), name
    assert set(Activity.objects.filter(owned_records_visible_listed(Activity, people.users["owner"]))) != set(
        Activity.objects.all()
    )


@pytest.mark.django_db
def test_a_territory_grant_leaves_the_rule_to_the_selector(people, settings):
    settings.CRM_TERRITORY_VISIBILITY = True
    assert owned_records_visible_listed(Opportunity, people.users["owner"]) is None
    assert owned_records_visible_owners_listed(Opportunity, people.users["owner"]) is None


@pytest.mark.django_db
def test_each_reader_sums_through_the_listed_owners_the_rollup_rows_the_rule_sums(people, stages):
    """``owned_records_visible_owners_listed`` (a rep's figures from the deals' rollup, read from its
    owner index) picks the rollup rows the one-condition rule picks, for every kind of reader."""
    for owner in [*people.users.values(), None, None]:
        OpportunityFactory(stage=stages["New"], owner=owner)
    readers = {**people.users, "inactive": UserFactory(is_active=False), "plain": UserFactory()}
    picked = {}
    for name, reader in readers.items():
        reader = get_user_model().objects.get(pk=reader.pk)
        rule = owned_records_visible_owners(Opportunity, reader)
        listed = owned_records_visible_owners_listed(Opportunity, reader)
        rows = set(OpportunityRollup.objects.filter(rule).values_list("pk", flat=True))
        assert set(OpportunityRollup.objects.filter(listed).values_list("pk", flat=True)) == rows, name
        picked[name] = len(rows)
    # Not everyone alike: the rule narrows some readers, and the unowned deals' rows are always there.
    assert len(set(picked.values())) > 1 and picked["plain"] > 0 and picked["inactive"] == 0


@pytest.mark.django_db
@pytest.mark.parametrize("territories", [False, True])
def test_the_records_a_reader_owns_are_those_the_rule_shows_them_as_theirs(
    people, stages, settings, territories
):
    """``owned_records_owned_by`` ("my next actions" reads it without the rule's subqueries): for every
    reader, the records the visibility rule shows them that they own, and nothing for an inactive user,
    with a territory grant widening the rule or not."""
    settings.CRM_TERRITORY_VISIBILITY = territories
    Activity.objects.all().delete()  # the personas' own: made below, one per owner and lead
    owners = [*people.users.values(), None]
    for owner in owners * 2:
        lead = LeadFactory(stage=stages["New"], owner=owner)
        OpportunityFactory(stage=stages["New"], owner=owner)
        ActivityFactory(lead=lead, owner=owner)
    inactive = UserFactory(is_active=False)
    Lead.objects.filter(pk=LeadFactory(stage=stages["New"]).pk).update(owner=inactive)
    readers = {**people.users, "inactive": inactive, "plain": UserFactory()}
    for name, reader in readers.items():
        reader = get_user_model().objects.get(pk=reader.pk)
        for model, visible_to in (
            (Lead, lead_visible_to),
            (Opportunity, opportunity_visible_to),
            (Activity, activity_visible_to),
        ):
            owned = set(owned_records_owned_by(model.objects.all(), reader).values_list("pk", flat=True))
            if model is Activity:  # the agenda's and "owns any" read
                assert owned == set(activity_owned_by(reader).values_list("pk", flat=True)), name
            shown = set(visible_to(reader).filter(owner=reader).values_list("pk", flat=True))
            assert owned == shown, (name, model)
            # Every reader but these two owns some: the comparison is not of two empty sets.
            assert bool(owned) == (name not in ("inactive", "plain")), (name, model)
    assert not owned_records_owned_by(Lead.objects.all(), inactive).exists()
    assert Lead.objects.filter(owner=inactive).exists()


@pytest.mark.django_db
def test_the_rule_is_written_with_what_the_reader_is_and_reads_the_team_live(people, stages):
    """``owned_records_visible_to`` without a grant: no condition at all for a CRM Admin (their
    membership read once per user object), and for anyone else no owner or an owner of the subquery
    of the owners they see, whose SQL is compiled once. That subquery is read by each statement, so a
    team changed by another process (here: behind the ORM's back, no signal) is seen by the next read
    of the same user object."""
    admin = get_user_model().objects.get(pk=people.users["crm_admin"].pk)
    assert "WHERE" not in str(lead_visible_to(admin).query)
    assert Lead.objects.count() == lead_visible_to(admin).count() > 0

    manager = get_user_model().objects.get(pk=people.users["manager"].pk)
    sql = str(lead_visible_to(manager).query)
    assert "auth_user_groups" not in sql and '"owner_id" IS NULL OR' in sql
    newcomer = UserFactory()
    theirs = LeadFactory(stage=stages["New"], owner=newcomer)
    assert not lead_visible_to(manager).filter(pk=theirs.pk).exists()
    team = people.teams["West"]
    assert team.manager_id == manager.pk
    through = type(team).members.through
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {through._meta.db_table} (salesteam_id, user_id) VALUES (%s, %s)",
            [team.pk, newcomer.pk],
        )
    assert lead_visible_to(manager).filter(pk=theirs.pk).exists()
    assert not lead_visible_to(people.users["outsider"]).filter(pk=theirs.pk).exists()


def test_a_users_permissions_role_and_team_are_read_in_one_statement_as_each_reader_reads_them(people):
    """What nearly every request asks of its user (model permissions, whether a CRM Admin, whom they
    manage) is read in one statement, and each reader answers what its own read gives: Django's
    ModelBackend for the permissions, the group for the role, the managed teams' members for the team.
    A direct permission and a permission of another group are among them."""
    from django.contrib.auth.backends import ModelBackend
    from django.contrib.auth.models import Group, Permission
    from django.test.utils import CaptureQueriesContext

    from crm.selectors import CRM_ADMIN_GROUP, user_sees_everything
    from crm.selectors.visibility import _managed_users, user_managed_id_list

    users = people.users
    users["teammate"].user_permissions.add(Permission.objects.get(codename="manage_all_mailboxes"))
    auditors = Group.objects.create(name="Auditors")
    auditors.permissions.add(Permission.objects.get(codename="view_token"))
    users["owner"].groups.add(auditors)
    plain = UserFactory()
    for name, person in {**users, "no group": plain}.items():
        fresh = get_user_model().objects.get(pk=person.pk)
        django_reads = get_user_model().objects.get(pk=person.pk)
        expected = (
            ModelBackend().get_user_permissions(django_reads),
            ModelBackend().get_group_permissions(django_reads),
            fresh.is_superuser or fresh.groups.filter(name=CRM_ADMIN_GROUP).exists(),
            set(_managed_users(person.pk).values_list("pk", flat=True)),
        )
        with CaptureQueriesContext(connection) as queries:
            read = (
                fresh.get_user_permissions(),
                fresh.get_group_permissions(),
                user_sees_everything(fresh),
                set(user_managed_id_list(fresh)),
            )
            assert fresh.has_perm("crm.view_lead") == ("crm.view_lead" in expected[0] | expected[1])
        assert read == expected, name
        # A superuser has every permission: those are read on their own, and the role is not read.
        assert len(queries) == (2 if fresh.is_superuser else 1), (name, queries.captured_queries)
    assert "activities.manage_all_mailboxes" in users["teammate"].get_user_permissions()
    assert "authtoken.view_token" in get_user_model().objects.get(pk=users["owner"].pk).get_all_permissions()
