"""crm.0018 / sales.0011: SalesTeam moves from sales to crm with every team, membership, id and
permission (the content type is renamed in place, so permissions keep their ids), and back."""

import pytest
from django.contrib.auth.management import create_permissions
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from crm.models import SalesTeam
from tests.crm.migration_helpers import ROUNDTRIP_MARKS
from tests.factories import UserFactory

pytestmark = ROUNDTRIP_MARKS

BEFORE = [("sales", "0010_stage_change_record_index_covered"), ("crm", "0017_outbox_and_webhooks")]
AFTER = [("sales", "0011_salesteam_moves_to_crm"), ("crm", "0018_salesteam_from_sales")]


def migrate(target):
    executor = MigrationExecutor(connection)
    executor.migrate(target)
    ContentType.objects.clear_cache()
    return executor.loader.project_state(target).apps


@pytest.fixture(autouse=True)
def latest_schema_after():
    """Unapplying the move unapplies every later migration that depends on it; put them all back, or
    the rest of this process's tests run on an older schema."""
    yield
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    ContentType.objects.clear_cache()


@pytest.mark.django_db(transaction=True)
def test_teams_members_and_permissions_move_to_crm_with_their_ids():
    from django.apps import apps as current_apps

    create_permissions(current_apps.get_app_config("crm"), verbosity=0)  # a flushed database has none
    manager, rep, other = UserFactory(), UserFactory(), UserFactory()

    old_apps = migrate(BEFORE)
    old_type = ContentType.objects.get(app_label="sales", model="salesteam")
    assert not ContentType.objects.filter(app_label="crm", model="salesteam").exists()
    OldTeam = old_apps.get_model("sales", "SalesTeam")
    west = OldTeam.objects.create(name="West", manager_id=manager.pk)
    west.members.add(rep.pk, other.pk)
    east = OldTeam.objects.create(name="East", is_active=False, description="closed")
    east.members.add(rep.pk)
    change = Permission.objects.get(content_type=old_type, codename="change_salesteam")
    view = Permission.objects.get(content_type=old_type, codename="view_salesteam")
    admins = Group.objects.create(name="Team admins")
    admins.permissions.add(change, view)
    rep.user_permissions.add(view)
    rep.groups.add(admins)

    migrate(AFTER)

    new_type = ContentType.objects.get_for_model(SalesTeam)
    assert (new_type.pk, new_type.app_label) == (old_type.pk, "crm")
    assert not ContentType.objects.filter(app_label="sales", model="salesteam").exists()
    assert set(Permission.objects.filter(content_type=new_type).values_list("pk", "codename")) >= {
        (change.pk, "change_salesteam"),
        (view.pk, "view_salesteam"),
    }
    assert set(admins.permissions.values_list("pk", flat=True)) == {change.pk, view.pk}
    fresh_rep = type(rep).objects.get(pk=rep.pk)  # no permission cache
    assert fresh_rep.has_perm("crm.change_salesteam") and fresh_rep.has_perm("crm.view_salesteam")
    teams = {team.pk: team for team in SalesTeam.objects.all()}
    assert set(teams) == {west.pk, east.pk}
    assert (teams[west.pk].name, teams[west.pk].manager_id, teams[west.pk].is_active) == (
        "West",
        manager.pk,
        True,
    )
    assert (teams[east.pk].description, teams[east.pk].is_active) == ("closed", False)
    assert set(teams[west.pk].members.values_list("pk", flat=True)) == {rep.pk, other.pk}
    assert list(rep.sales_teams.order_by("pk").values_list("pk", flat=True)) == sorted([west.pk, east.pk])
    assert list(manager.managed_teams.all()) == [teams[west.pk]]
    # New teams continue after the old ids.
    assert SalesTeam.objects.create(name="North").pk > max(west.pk, east.pk)
