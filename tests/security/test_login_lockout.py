"""Brute-force protection on the admin login: a username is locked out after repeated failures."""

import pytest
from django.urls import reverse

from tests.factories import UserFactory

LOGIN = reverse("admin:login")


def attempt(client, username, password):
    return client.post(LOGIN, {"username": username, "password": password, "next": "/admin/"})


@pytest.mark.django_db
def test_five_wrong_passwords_lock_the_login_even_with_the_right_one(client):
    UserFactory(username="rep", is_staff=True)
    for _ in range(4):
        assert attempt(client, "rep", "wrong").status_code == 200  # the form again, with an error
    locked = attempt(client, "rep", "wrong")
    assert locked.status_code == 429
    assert "Too many failed logins" in locked.content.decode()
    assert attempt(client, "rep", "pw-test-123!").status_code == 429
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_a_success_before_the_limit_resets_the_count(client):
    UserFactory(username="rep", is_staff=True)
    for _ in range(4):
        attempt(client, "rep", "wrong")
    assert attempt(client, "rep", "pw-test-123!").status_code == 302
    client.logout()
    for _ in range(4):
        assert attempt(client, "rep", "wrong").status_code == 200


@pytest.mark.django_db
def test_lockout_is_per_username(client):
    UserFactory(username="rep", is_staff=True)
    UserFactory(username="other", is_staff=True)
    for _ in range(5):
        attempt(client, "rep", "wrong")
    assert attempt(client, "other", "pw-test-123!").status_code == 302
