"""Authentication (session, token) and Django model permissions on every endpoint."""

import pytest
from django.contrib.auth.models import Group
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from crm.models import Lead
from tests.api.conftest import grant, url
from tests.factories import (
    AccountFactory,
    ActivityFactory,
    ContactFactory,
    LeadFactory,
    LostReasonFactory,
    OpportunityFactory,
    TagFactory,
    UserFactory,
)


@pytest.fixture
def records(stages, pipeline):
    return {
        "lead": LeadFactory().pk,
        "opportunity": OpportunityFactory().pk,
        "account": AccountFactory().pk,
        "contact": ContactFactory().pk,
        "activity": ActivityFactory(account=AccountFactory()).pk,
        "pipeline": pipeline.pk,
        "stage": stages["New"].pk,
        "tag": TagFactory().pk,
        "lost_reason": LostReasonFactory().pk,
    }


RESOURCES = [
    ("leads", "lead"),
    ("opportunities", "opportunity"),
    ("accounts", "account"),
    ("contacts", "contact"),
    ("activities", "activity"),
    ("pipelines", "pipeline"),
    ("stages", "stage"),
    ("tags", "tag"),
    ("lost-reasons", "lost_reason"),
]

READS = [f"{path}/" for path, _ in RESOURCES] + [
    "leads/kanban/",
    "opportunities/kanban/",
    "opportunities/forecast/",
    "dashboard/",
]
READS += [f"{path}/{{{key}}}/" for path, key in RESOURCES]

WRITES = (
    [("post", f"{path}/") for path, _ in RESOURCES]
    + [(method, f"{path}/{{{key}}}/") for path, key in RESOURCES for method in ("put", "patch", "delete")]
    + [
        ("post", "leads/{lead}/move-stage/"),
        ("post", "leads/{lead}/mark-lost/"),
        ("post", "leads/{lead}/convert/"),
        ("post", "opportunities/{opportunity}/move-stage/"),
        ("post", "opportunities/{opportunity}/mark-won/"),
        ("post", "opportunities/{opportunity}/mark-lost/"),
    ]
)


@pytest.mark.django_db
@pytest.mark.parametrize("path", READS)
def test_reads_without_credentials_are_401(anon, records, path):
    response = anon.get(url(path.format(**records)))
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert response.json() == {"detail": "Authentication credentials were not provided."}


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "path"), WRITES)
def test_writes_without_credentials_are_401_and_change_nothing(anon, records, method, path):
    response = getattr(anon, method)(url(path.format(**records)), {"name": "x", "stage_id": records["stage"]})
    assert response.status_code == 401
    assert Lead.objects.get().status == "open"


@pytest.mark.django_db
@pytest.mark.parametrize("path", READS)
def test_reads_without_the_view_permission_are_403(no_permission_api, records, path):
    response = no_permission_api.get(url(path.format(**records)))
    assert response.status_code == 403
    assert response.json() == {"detail": "You do not have permission to perform this action."}


@pytest.mark.django_db
@pytest.mark.parametrize("path", READS)
def test_a_viewer_reads_everything(read_only_api, records, path):
    assert read_only_api.get(url(path.format(**records))).status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "path"), WRITES)
def test_a_viewer_writes_nothing(read_only_api, records, method, path):
    response = getattr(read_only_api, method)(
        url(path.format(**records)), {"name": "x", "stage_id": records["stage"]}
    )
    assert response.status_code == 403
    assert Lead.objects.get().status == "open"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("method", "perm", "status"),
    [("post", "add_lead", 201), ("patch", "change_lead", 200), ("delete", "delete_lead", 204)],
)
def test_each_write_needs_its_own_model_permission(records, method, perm, status):
    others = {"add_lead", "change_lead", "delete_lead"} - {perm}
    path = "leads/" if method == "post" else f"leads/{records['lead']}/"
    without = APIClient()
    without.force_authenticate(grant(UserFactory(), "view_lead", *others))
    with_perm = APIClient()
    with_perm.force_authenticate(grant(UserFactory(), "view_lead", perm))

    assert getattr(without, method)(url(path), {"name": "x"}).status_code == 403
    assert getattr(with_perm, method)(url(path), {"name": "x"}).status_code == status


@pytest.mark.django_db
def test_token_authentication(records, crm_admin):
    token = Token.objects.create(user=crm_admin)
    client = APIClient()

    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    assert client.get(url("leads/")).status_code == 200

    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-key")
    response = client.get(url("leads/"))
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid token."}


@pytest.mark.django_db
def test_session_authentication_with_csrf(records, crm_admin):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(crm_admin)

    assert client.get(url("leads/")).status_code == 200
    response = client.post(url("leads/"), {"name": "x"})
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]


@pytest.mark.django_db
def test_each_token_is_its_own_user_with_its_role_and_team_read_afresh(people, stages):
    """The token, the CRM Admin role and a manager's team are read by statements compiled once and run
    again with the next key (crm.prepared): each request is still its own user, with the role and team
    they have now."""
    from crm.prepared import _TEXT_KEY
    from crm.selectors.visibility import CRM_ADMIN_GROUP

    users = people.users
    clients = {}
    for persona in ("owner", "outsider", "manager", "teammate"):
        clients[persona] = APIClient()
        clients[persona].credentials(
            HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=users[persona]).key}"
        )

    def seen(persona) -> set[str]:
        response = clients[persona].get(url("leads/") + "?page_size=200")
        assert response.status_code == 200, response.content
        return {row["name"] for row in response.json()["results"]}

    def lead(persona) -> str:
        return f"{users[persona].username} lead"

    for _round in range(2):  # alternate users on the same compiled statements
        assert lead("owner") in seen("owner") and lead("outsider") not in seen("owner")
        assert lead("outsider") in seen("outsider") and lead("owner") not in seen("outsider")
    # The West team's manager sees its members' leads; not once no longer its manager.
    assert lead("owner") in seen("manager")
    west = people.teams["West"]
    west.manager = users["outsider"]
    west.save()
    assert lead("owner") not in seen("manager")
    assert lead("teammate") in seen("outsider")
    # A CRM Admin sees everything from their next request on.
    users["owner"].groups.add(Group.objects.get(name=CRM_ADMIN_GROUP))
    assert lead("outsider") in seen("owner")

    for key in ("not-a-real-key", "x'OR'1'='1;--", _TEXT_KEY, "a" * 400):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
        response = client.get(url("leads/"))
        assert response.status_code == 401 and response.json() == {"detail": "Invalid token."}, key
    users["teammate"].is_active = False
    users["teammate"].save()
    response = clients["teammate"].get(url("leads/"))
    assert response.status_code == 401 and response.json() == {"detail": "User inactive or deleted."}
