"""The application's PostgreSQL sessions run without JIT compilation (crm_project/settings.py):
compiling cost more than it saved on every page measured (a rep's funnel: 236 of its 345 ms)."""

import pytest
from django.db import connection

pytestmark = pytest.mark.skipif(connection.vendor != "postgresql", reason="a PostgreSQL setting")


@pytest.mark.django_db
def test_the_applications_sessions_do_not_jit_compile():
    with connection.cursor() as cursor:
        cursor.execute("SHOW jit")
        assert cursor.fetchone()[0] == "off"
