"""Personas for access tests: an owner and a team-mate (reps of team West), their manager, a rep of
another team (the outsider) and a CRM Admin; each owns one record of every kind."""

from types import SimpleNamespace

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone
from rest_framework.test import APIClient

from sales.models import SalesTeam
from tests.factories import (
    AccountFactory,
    ActivityFactory,
    ContactFactory,
    LeadFactory,
    OpportunityFactory,
    UserFactory,
)

PERSONAS = ("owner", "teammate", "manager", "outsider", "admin")


def _user(username: str, group: str):
    user = UserFactory(username=username)
    user.groups.add(Group.objects.get(name=group))
    return type(user).objects.get(pk=user.pk)


def _records(owner, stages):
    account = AccountFactory(name=f"{owner.username} account", owner=owner)
    contact = ContactFactory(first_name=owner.username, account=account, owner=owner)
    lead = LeadFactory(name=f"{owner.username} lead", stage=stages["New"], owner=owner)
    opportunity = OpportunityFactory(
        name=f"{owner.username} deal", stage=stages["New"], account=account, owner=owner, amount=1000
    )
    activity = ActivityFactory(
        subject=f"{owner.username} call", lead=lead, owner=owner, due_date=timezone.now()
    )
    return SimpleNamespace(
        account=account, contact=contact, lead=lead, opportunity=opportunity, activity=activity
    )


@pytest.fixture
def people(db, stages):
    """``people.users[persona]`` and ``people.records[persona]`` (what that persona owns)."""
    users = {
        "owner": _user("owner", "Sales Rep"),
        "teammate": _user("teammate", "Sales Rep"),
        "manager": _user("west_manager", "Sales Manager"),
        "outsider": _user("outsider_rep", "Sales Rep"),
        "admin": _user("crm_admin", "CRM Admin"),
    }
    west = SalesTeam.objects.create(name="West", manager=users["manager"])
    west.members.add(users["owner"], users["teammate"])
    east = SalesTeam.objects.create(name="East", manager=UserFactory(username="east_manager"))
    east.members.add(users["outsider"])
    records = {name: _records(user, stages) for name, user in users.items()}
    unowned = _records(UserFactory(username="nobody"), stages)
    for record in vars(unowned).values():
        type(record).objects.filter(pk=record.pk).update(owner=None)
    return SimpleNamespace(users=users, records=records, unowned=unowned, stages=stages)


@pytest.fixture
def api_as(people):
    def client_for(persona: str) -> APIClient:
        client = APIClient()
        client.force_authenticate(people.users[persona])
        return client

    return client_for


@pytest.fixture
def admin_as(people, client):
    def client_for(persona: str):
        client.force_login(people.users[persona])
        return client

    return client_for
