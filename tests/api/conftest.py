"""API personas and helpers: a manager with every permission, a viewer, an outsider, anonymous."""

import pytest
from django.contrib.auth.models import Group, Permission
from rest_framework.test import APIClient

from tests.factories import UserFactory

API = "/api/v1/crm/"


def url(path: str) -> str:
    return f"{API}{path}"


def grant(user, *codenames: str):
    """Give ``user`` permissions by codename ("view_lead"); returns a fresh copy (perm caches reset)."""
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return type(user).objects.get(pk=user.pk)


@pytest.fixture
def manager(db):
    """A staff user with every model permission (a superuser short-circuits the permission checks),
    in the CRM Admin group so every record is visible (visibility is tested in tests/security)."""
    user = UserFactory(username="manager")
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label__in=["crm", "sales", "activities"])
    )
    user.groups.add(Group.objects.get(name="CRM Admin"))
    return type(user).objects.get(pk=user.pk)


@pytest.fixture
def api(manager):
    client = APIClient()
    client.force_authenticate(manager)
    return client


@pytest.fixture
def anon():
    return APIClient()


@pytest.fixture
def outsider(db):
    """Logged in, but without any CRM permission."""
    client = APIClient()
    client.force_authenticate(UserFactory(username="outsider"))
    return client


@pytest.fixture
def viewer(db):
    """May read everything, change nothing."""
    user = UserFactory(username="viewer")
    user = grant(
        user,
        *(
            f"view_{model}"
            for model in (
                "lead",
                "opportunity",
                "account",
                "contact",
                "activity",
                "pipeline",
                "stage",
                "tag",
                "lostreason",
            )
        ),
    )
    client = APIClient()
    client.force_authenticate(user)
    return client
