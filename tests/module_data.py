"""Data made once for a test module instead of before each of its tests.

A module-scoped fixture builds it inside ``made_once`` and yields within it: the data is written in
a transaction that spans the module and is rolled back at its end, and each test runs in a savepoint
inside it (pytest-django's ``db``), so a test's writes are undone before the next test. The instances
the fixture built are shared by the module's tests: a function-scoped fixture gives each test
``fresh`` copies read from the database, as a test may change its instances in memory (attributes,
``refresh_from_db``) and user objects keep their permissions and visibility once read
(crm.selectors.visibility).
"""

import contextlib
from types import SimpleNamespace

from django.db import transaction
from django.db.models import Model
from django.test import override_settings

FAST_HASHER = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@contextlib.contextmanager
def made_once(django_db_blocker):
    """Database access outside a test, in a transaction rolled back on leaving (with the suite's fast
    password hasher, which tests/conftest.py sets per test)."""
    with django_db_blocker.unblock(), override_settings(PASSWORD_HASHERS=FAST_HASHER), transaction.atomic():
        yield
        transaction.set_rollback(True)


def fresh(value):
    """``value`` with every model instance in it (in dicts, lists, tuples and namespaces) read again from
    the database, one query per model."""
    wanted: dict[type[Model], set] = {}
    _walk(value, lambda instance: wanted.setdefault(type(instance), set()).add(instance.pk))
    loaded = {model: model._base_manager.in_bulk(pks) for model, pks in wanted.items()}
    return _walk(value, lambda instance: loaded[type(instance)][instance.pk])


def _walk(value, visit):
    if isinstance(value, Model):
        return visit(value)
    if isinstance(value, dict):
        return {key: _walk(item, visit) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_walk(item, visit) for item in value)
    if isinstance(value, SimpleNamespace):
        return SimpleNamespace(**{key: _walk(item, visit) for key, item in vars(value).items()})
    return value
