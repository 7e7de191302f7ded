import re
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.http import HttpRequest


@pytest.mark.django_db
def test_create_admin_prints_a_random_password_once_that_logs_in(client):
    out = StringIO()
    call_command("crm_create_admin", stdout=out)
    password = re.search(r"password: (\S+)", out.getvalue()).group(1)
    assert len(password) >= 12
    # django-axes authenticates with the request, as the login page does.
    assert client.login(request=HttpRequest(), username="admin", password=password)

    again = StringIO()
    call_command("crm_create_admin", stdout=again)
    assert "password:" not in again.getvalue()
    assert get_user_model().objects.filter(is_superuser=True).count() == 1


@pytest.mark.django_db
def test_two_installs_get_different_passwords():
    first, second = StringIO(), StringIO()
    call_command("crm_create_admin", stdout=first)
    get_user_model().objects.all().delete()
    call_command("crm_create_admin", stdout=second)
    assert re.search(r"password: (\S+)", first.getvalue()).group(1) != re.search(
        r"password: (\S+)", second.getvalue()
    ).group(1)
