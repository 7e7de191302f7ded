"""API hardening: per-user and anonymous rate limits (429 with Retry-After), the token endpoint with
its brute-force lockout, and request size limits."""

import json

import pytest
from django.contrib.messages import get_messages
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient
from rest_framework.throttling import AnonRateThrottle, UserRateThrottle

from crm import services as crm_services
from crm.actors import SYSTEM
from crm.models import Lead
from crm_project.auth import BAD_CREDENTIALS, LOCKED_OUT, TokenThrottle
from tests.api.conftest import url
from tests.factories import UserFactory

TOKEN = "/api/v1/auth/token/"


@pytest.fixture
def rep(db):
    from django.contrib.auth.models import Group

    user = UserFactory(username="rep")
    user.groups.add(Group.objects.get(name="Sales Rep"))
    return user


@pytest.mark.django_db
def test_a_user_over_the_rate_gets_429_with_retry_after(monkeypatch, rep, stages):
    monkeypatch.setitem(UserRateThrottle.THROTTLE_RATES, "user", "3/minute")
    client = APIClient()
    client.force_authenticate(rep)
    for _ in range(3):
        assert client.get(url("leads/")).status_code == 200

    response = client.get(url("leads/"))

    assert response.status_code == 429
    assert 0 < int(response["Retry-After"]) <= 60
    assert response.json()["detail"].startswith("Request was throttled.")
    # The budget is per user: someone else is still served.
    other = APIClient()
    other.force_authenticate(UserFactory(username="other"))
    assert other.get(url("pipelines/")).status_code != 429


@pytest.mark.django_db
def test_anonymous_requests_have_their_own_smaller_budget(monkeypatch):
    monkeypatch.setitem(AnonRateThrottle.THROTTLE_RATES, "anon", "2/minute")
    client = APIClient()
    # Resources answer 401 before any budget is spent; what anyone may call is throttled.
    assert client.get(url("leads/")).status_code == 401
    statuses = [client.get("/api/schema/").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]


@pytest.mark.django_db
def test_the_token_endpoint_gives_the_users_token(rep):
    response = APIClient().post(TOKEN, {"username": "rep", "password": "pw-test-123!"}, format="json")

    assert response.status_code == 200
    key = response.json()["token"]
    assert Token.objects.get(user=rep).key == key
    client = APIClient(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.get(url("leads/")).status_code == 200
    # Asking again gives the same token.
    again = APIClient().post(TOKEN, {"username": "rep", "password": "pw-test-123!"}, format="json")
    assert again.json() == {"token": key}


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body,expected",
    [
        ({"username": "rep", "password": "wrong"}, {"non_field_errors": [BAD_CREDENTIALS]}),
        ({"username": "nobody", "password": "pw-test-123!"}, {"non_field_errors": [BAD_CREDENTIALS]}),
        ({"username": "rep"}, {"password": ["This field is required."]}),
    ],
)
def test_bad_credentials_get_no_token(rep, body, expected):
    response = APIClient().post(TOKEN, body, format="json")
    assert response.status_code == 400
    assert response.json() == expected
    assert not Token.objects.exists()


@pytest.mark.django_db
def test_an_inactive_user_gets_no_token(rep):
    rep.is_active = False
    rep.save()
    response = APIClient().post(TOKEN, {"username": "rep", "password": "pw-test-123!"}, format="json")
    assert response.status_code == 400
    assert not Token.objects.exists()


@pytest.mark.django_db
def test_five_wrong_passwords_lock_token_creation_even_with_the_right_one(rep):
    client = APIClient()
    for _ in range(4):
        assert client.post(TOKEN, {"username": "rep", "password": "wrong"}, format="json").status_code == 400

    locked = client.post(TOKEN, {"username": "rep", "password": "wrong"}, format="json")

    assert locked.status_code == 429
    assert locked.json() == {"detail": LOCKED_OUT}
    assert int(locked["Retry-After"]) > 0
    right = client.post(TOKEN, {"username": "rep", "password": "pw-test-123!"}, format="json")
    assert right.status_code == 429
    assert not Token.objects.exists()
    # The admin login shares the lockout.
    from django.test import Client

    admin_login = Client().post("/admin/login/", {"username": "rep", "password": "pw-test-123!"})
    assert admin_login.status_code == 429


@pytest.mark.django_db
def test_token_requests_are_throttled_per_address(monkeypatch, rep):
    monkeypatch.setitem(TokenThrottle.THROTTLE_RATES, "token", "2/minute")
    client = APIClient()
    statuses = [
        client.post(TOKEN, {"username": f"user{n}", "password": "x"}, format="json").status_code
        for n in range(3)
    ]
    assert statuses == [400, 400, 429]


@pytest.mark.django_db
def test_a_json_body_over_the_limit_is_refused_and_writes_nothing(settings, api_client_for_rep):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = json.dumps({"name": "Big", "description": "x" * 2000})

    response = api_client_for_rep.post(url("leads/"), body, content_type="application/json")

    assert response.status_code == 400
    assert not Lead.objects.filter(name="Big").exists()
    small = api_client_for_rep.post(url("leads/"), {"name": "Small"}, format="json")
    assert small.status_code == 201


@pytest.mark.django_db
def test_a_form_body_is_refused_with_415_where_the_api_reads_json(api_client_for_rep):
    response = api_client_for_rep.post(url("leads/"), {"name": "Form"}, format="multipart")
    assert response.status_code == 415
    assert response.json()["detail"].startswith('Unsupported media type "multipart/form-data')
    assert not Lead.objects.filter(name="Form").exists()


@pytest.mark.django_db
def test_a_form_over_the_limit_is_refused(settings, api_client_for_rep):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    upload = SimpleUploadedFile("leads.csv", b"name\nBig\n", content_type="text/csv")
    response = api_client_for_rep.post(
        url("leads/import/"), {"file": upload, "dry_run": "x" * 2000}, format="multipart"
    )
    assert response.status_code == 400
    assert not Lead.objects.filter(name="Big").exists()


@pytest.mark.django_db
def test_an_import_file_over_the_limit_is_refused_before_reading(settings, api_client_for_rep):
    settings.CRM_IMPORT_MAX_BYTES = 100
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 50  # the upload is spooled to a temporary file
    upload = SimpleUploadedFile("leads.csv", b"name\n" + b"A lead\n" * 50, content_type="text/csv")

    response = api_client_for_rep.post(url("leads/import/"), {"file": upload}, format="multipart")

    assert response.status_code == 400
    assert response.json()["file_errors"][0].startswith("The file is too large")
    assert not Lead.objects.exists()


@pytest.fixture
def api_client_for_rep(rep, stages):
    client = APIClient()
    client.force_authenticate(rep)
    return client


@pytest.mark.django_db
def test_a_query_parameter_with_a_null_character_is_refused_with_a_400_naming_it(
    admin_client, admin_user, stages
):
    # On PostgreSQL these were 500s: the admin hands ?<field>=... to the queryset, and the text cannot
    # hold a NUL when the statement runs (the crawler in test_hostile_admin_crawler.py sends one to
    # every parameter of every admin page).
    crm_services.lead_create(user=SYSTEM, data={"name": "Kept"})
    page = admin_client.get("/admin/crm/lead/?status__exact=a%00b")
    assert page.status_code == 400
    assert "Null characters are not allowed" in page.content.decode()
    assert "status__exact" in page.content.decode()
    assert admin_client.get("/admin/crm/lead/?name=%00").status_code == 400
    assert admin_client.get("/admin/crm/lead/?a%00b=1").status_code == 400  # in a name too

    # The API authenticates first (no credentials: a 401, nothing told), then its filters refuse a NUL
    # field by field; a parameter no filter reads is ignored.
    assert APIClient().get("/api/v1/crm/leads/?search=a%00b").status_code == 401
    api = APIClient()
    api.force_authenticate(admin_user)
    answer = api.get("/api/v1/crm/leads/?search=x%00&status=open")
    assert answer.status_code == 400
    assert answer.json() == {"search": ["Null characters are not allowed."]}
    assert api.get("/api/v1/crm/leads/?unread=x%00").status_code == 200

    # A percent sign that is not a NUL goes through, and so does the same page without one.
    assert admin_client.get("/admin/crm/lead/?q=100%25").status_code == 200
    assert admin_client.get("/admin/crm/lead/?status__exact=open").status_code == 200
    assert api.get("/api/v1/crm/leads/?search=a%2500b").status_code == 200


@pytest.mark.django_db
def test_an_admin_action_over_a_tampered_selection_changes_nothing_and_says_why(admin_client, stages):
    # Django's admin filters the changelist by the posted ids: one that is no id (a tampered form)
    # raised ValueError there, a 500 on every changelist of the site (and one past the column's range
    # an OverflowError on SQLite).
    lead = crm_services.lead_create(user=SYSTEM, data={"name": "Kept"})
    for selected in (["abc", str(lead.pk)], [str(lead.pk), "a\x00b"], ["99999999999999999999"]):
        response = admin_client.post(
            "/admin/crm/lead/", {"action": "delete_selected", "index": "0", "_selected_action": selected}
        )
        assert response.status_code == 302
        shown = [str(message) for message in get_messages(response.wsgi_request)]
        assert any("not the id of a record" in message for message in shown), shown
    assert Lead.objects.filter(pk=lead.pk).exists()
    # A sound selection still reaches the action (its confirmation page).
    page = admin_client.post(
        "/admin/crm/lead/", {"action": "delete_selected", "index": "0", "_selected_action": [str(lead.pk)]}
    )
    assert page.status_code == 200 and "Are you sure" in page.content.decode()
