"""A transactional test ends by emptying every table; the suite's teardown hook (tests/conftest.py) makes
the roles again so the tests after it find them as the migrations made them."""

import pytest
from django.contrib.auth.models import Group

from tests.conftest import _ROLES, roles_restore


@pytest.mark.django_db(transaction=True)
def test_the_roles_come_back_with_their_permissions_after_a_flush():
    as_migrated = {
        g.name: sorted(g.permissions.values_list("codename", flat=True)) for g in Group.objects.all()
    }
    assert {"Sales Rep", "Sales Manager", "CRM Admin"} <= set(as_migrated) == set(_ROLES)
    Group.objects.all().delete()  # what the flush at the end of a transactional test does to them

    roles_restore()

    assert {
        g.name: sorted(g.permissions.values_list("codename", flat=True)) for g in Group.objects.all()
    } == as_migrated
