"""A user's model permissions are read in one query, and answer exactly as Django's ModelBackend."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext

from crm_project.auth_backends import OneQueryPermissionsBackend
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def _perm(codename: str) -> Permission:
    return Permission.objects.get(codename=codename)


def _fresh(user):
    return get_user_model().objects.get(pk=user.pk)


@pytest.fixture
def member():
    user = UserFactory(username="perm-member")
    user.user_permissions.add(_perm("view_lead"))
    readers = Group.objects.create(name="Perm readers")
    readers.permissions.add(_perm("view_account"), _perm("view_lead"))
    writers = Group.objects.create(name="Perm writers")
    writers.permissions.add(_perm("change_contact"))
    user.groups.add(readers, writers)
    Group.objects.create(name="Perm others").permissions.add(_perm("delete_lead"))
    return user


def test_a_users_own_and_their_groups_permissions_come_in_one_query_as_djangos(member):
    user = _fresh(member)
    with CaptureQueriesContext(connection) as context:
        assert user.has_perm("crm.view_lead")
        assert user.has_perm("crm.change_contact")
        assert user.has_perm("crm.view_account")
        assert not user.has_perm("crm.delete_lead")
        assert user.get_all_permissions() == {"crm.view_lead", "crm.view_account", "crm.change_contact"}
    assert len(context.captured_queries) == 1

    backend, django = OneQueryPermissionsBackend(), ModelBackend()
    ours, theirs = _fresh(member), _fresh(member)
    backend.get_all_permissions(ours)
    assert backend.get_user_permissions(ours) == django.get_user_permissions(theirs) == {"crm.view_lead"}
    assert (
        backend.get_group_permissions(ours)
        == django.get_group_permissions(theirs)
        == {"crm.view_lead", "crm.view_account", "crm.change_contact"}
    )


def test_a_superuser_has_every_permission_read_once_and_an_inactive_user_none(member):
    boss = UserFactory(username="perm-boss", is_superuser=True)
    boss = _fresh(boss)
    with CaptureQueriesContext(connection) as context:
        permissions = boss.get_all_permissions()
    assert len(context.captured_queries) == 1
    assert len(permissions) == Permission.objects.count()

    member.is_active = False
    member.save(update_fields=["is_active"])
    gone = _fresh(member)
    with CaptureQueriesContext(connection) as context:
        assert not gone.has_perm("crm.view_lead")
        assert gone.get_all_permissions() == set()
    assert context.captured_queries == []


def test_a_permission_given_or_taken_shows_on_the_next_request(member):
    Group.objects.get(name="Perm writers").permissions.remove(_perm("change_contact"))
    member.user_permissions.add(_perm("add_lead"))
    user = _fresh(member)
    assert not user.has_perm("crm.change_contact")
    assert user.has_perm("crm.add_lead")


def test_signing_in_still_goes_through_djangos_backend_and_sessions_name_it(client, member):
    response = client.post(
        "/admin/login/?next=/admin/", {"username": "perm-member", "password": "pw-test-123!"}
    )
    # The factory's users are staff: signed in, the session names ModelBackend.
    assert response.status_code == 302, response.content[:500]
    assert client.session["_auth_user_backend"] == "django.contrib.auth.backends.ModelBackend"
    backend = OneQueryPermissionsBackend()
    assert backend.authenticate(None, username="perm-member", password="pw-test-123!") is None


def test_each_user_gets_their_own_permissions_from_the_query_compiled_once(member):
    """The union is compiled once and run again with the next user's id, in both of its halves."""
    other = UserFactory(username="perm-other")
    other.user_permissions.add(_perm("delete_lead"))
    nobody = UserFactory(username="perm-nobody")
    for _ in range(2):
        assert _fresh(member).get_all_permissions() == {
            "crm.view_lead",
            "crm.view_account",
            "crm.change_contact",
        }
        assert _fresh(other).get_all_permissions() == {"crm.delete_lead"}
        assert _fresh(nobody).get_all_permissions() == set()
        Group.objects.get(name="Perm others").user_set.add(nobody)
        assert _fresh(nobody).get_all_permissions() == {"crm.delete_lead"}
        Group.objects.get(name="Perm others").user_set.remove(nobody)
