"""The role groups exist after migrating, with the permissions each role needs."""

import pytest
from django.contrib.auth.models import Group

from tests.factories import SalesTeam, UserFactory


def perms(group_name):
    group = Group.objects.get(name=group_name)
    return {
        f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.select_related("content_type")
    }


@pytest.mark.django_db
def test_three_roles_exist():
    assert set(Group.objects.values_list("name", flat=True)) >= {"Sales Rep", "Sales Manager", "CRM Admin"}


@pytest.mark.django_db
def test_sales_rep_works_leads_but_cannot_delete_them_or_configure_pipelines():
    rep = perms("Sales Rep")
    assert {"crm.view_lead", "crm.add_lead", "crm.change_lead", "sales.change_opportunity"} <= rep
    assert "crm.delete_lead" not in rep
    assert "crm.change_pipeline" not in rep and "crm.view_pipeline" in rep


@pytest.mark.django_db
def test_manager_may_delete_and_admin_configures_pipelines():
    assert "crm.delete_lead" in perms("Sales Manager")
    assert "crm.change_pipeline" not in perms("Sales Manager")
    admin = perms("CRM Admin")
    assert {"crm.change_pipeline", "crm.delete_stage", "authtoken.add_token"} <= admin


@pytest.mark.django_db
def test_a_user_in_a_role_has_its_permissions():
    user = UserFactory()
    user.groups.add(Group.objects.get(name="Sales Rep"))
    assert user.has_perm("crm.add_lead")
    assert not user.has_perm("crm.delete_account")


@pytest.mark.django_db
def test_sales_team_has_a_manager_and_members():
    manager, rep = UserFactory(), UserFactory()
    team = SalesTeam.objects.create(name="West", manager=manager)
    team.members.add(rep)
    assert list(manager.managed_teams.all()) == [team]
    assert list(rep.sales_teams.all()) == [team]
