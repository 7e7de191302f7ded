"""Issue 14 findings 1, 3 and 7: the admin's history pages, sales teams and API tokens, per persona."""

import pytest
from django.contrib.messages import get_messages
from django.core.exceptions import ValidationError
from django.urls import reverse
from rest_framework.authtoken.models import Token

from crm import services
from tests.admin.form_data import change_form_data
from tests.factories import SalesTeam, UserFactory

KINDS = {
    "lead": ("crm", "name"),
    "opportunity": ("sales", "name"),
    "account": ("crm", "name"),
    "contact": ("crm", "first_name"),
    "activity": ("activities", "subject"),
}
OWNED = ("lead", "opportunity", "activity")


def history_urls(kind, record):
    app = KINDS[kind][0]
    version = record.history.order_by("history_id").first()
    return (
        reverse(f"admin:{app}_{kind}_history", args=[record.pk]),
        reverse(f"admin:{app}_{kind}_simple_history", args=[record.pk, version.history_id]),
    )


def renamed(record, kind, value):
    field = KINDS[kind][1]
    type(record).objects.filter(pk=record.pk).update(**{field: value})
    record.refresh_from_db()
    # A second version, so the first one is an older state the page could revert to.
    record.save()
    return field


@pytest.mark.django_db
@pytest.mark.parametrize("kind", OWNED)
def test_history_pages_of_a_record_the_user_cannot_see_are_not_found(people, admin_as, kind):
    """Issue 14 finding 1: the per-version history page showed another team's record."""
    record = getattr(people.records["owner"], kind)
    client = admin_as("outsider")

    for url in history_urls(kind, record):
        response = client.get(url)
        assert response.status_code == 302 and response.url == reverse("admin:index"), url


@pytest.mark.django_db
@pytest.mark.parametrize("with_version", [False, True])
@pytest.mark.parametrize("kind", KINDS)
def test_history_version_post_by_another_team_changes_nothing(people, admin_as, kind, with_version):
    """Issue 14 finding 1: POSTing another team's per-version form saved it (with loaded_version: a 500)."""
    record = getattr(people.records["owner"], kind)
    field = renamed(record, kind, "Current name")
    _, version_url = history_urls(kind, record)
    data = change_form_data(admin_as("owner").get(version_url))
    data[field] = "Hijacked"
    if not with_version:
        data.pop("loaded_version", None)

    response = admin_as("outsider").post(version_url, data)

    assert response.status_code in (302, 403)
    record.refresh_from_db()
    assert getattr(record, field) == "Current name"


@pytest.mark.django_db
@pytest.mark.parametrize("kind", KINDS)
def test_history_revert_by_the_owner_goes_through_the_update_service(
    people, admin_as, kind, monkeypatch, settings
):
    """Issue 14 finding 1: a revert by someone who may change the record is an update by its service
    (where reverting is turned on; see the next test for the default)."""
    settings.SIMPLE_HISTORY_REVERT_DISABLED = False
    calls = []
    module = {"lead": services, "account": services, "contact": services}.get(kind)
    if module is None:
        import activities.services
        import sales.services

        module = sales.services if kind == "opportunity" else activities.services
    name = f"{kind}_update"
    real = getattr(module, name)
    monkeypatch.setattr(module, name, lambda **kw: calls.append(name) or real(**kw))
    record = getattr(people.records["owner"], kind)
    first_value = getattr(record, KINDS[kind][1])
    field = renamed(record, kind, "Current name")
    _, version_url = history_urls(kind, record)
    client = admin_as("owner")
    data = change_form_data(client.get(version_url))
    assert data[field] == first_value

    response = client.post(version_url, data)

    assert response.status_code == 302, response.content[:2000]
    assert calls == [name]
    record.refresh_from_db()
    assert getattr(record, field) == first_value


@pytest.mark.django_db
def test_history_revert_is_refused_with_a_message_while_reverting_is_turned_off(people, admin_as):
    """Issue 14 finding 1: the product turns reverting off (SIMPLE_HISTORY_REVERT_DISABLED), so a
    crafted POST to a version page by the record's owner changes nothing and says why."""
    lead = people.records["owner"].lead
    renamed(lead, "lead", "Current name")
    _, version_url = history_urls("lead", lead)
    client = admin_as("owner")
    data = change_form_data(client.get(version_url))

    response = client.post(version_url, data)

    assert response.status_code == 302
    assert any("turned off" in str(m) for m in get_messages(response.wsgi_request))
    lead.refresh_from_db()
    assert lead.name == "Current name"


@pytest.mark.django_db
def test_history_revert_does_not_reopen_or_move_a_closed_lead(people, admin_as, settings):
    """Issue 14 finding 1: a revert obeys the same rules as an edit; a lost lead's old open stage is
    not restored by a revert (its pipeline and stage are read-only, as on its change page)."""
    settings.SIMPLE_HISTORY_REVERT_DISABLED = False
    lead = people.records["owner"].lead
    old_stage = lead.stage_id
    services.lead_update(lead=lead, user=people.users["owner"], data={"stage": people.stages["Qualified"]})
    lead = services.lead_mark_lost(lead=lead, user=people.users["owner"])
    _, version_url = history_urls("lead", lead)
    client = admin_as("owner")
    data = change_form_data(client.get(version_url))
    data["stage"] = str(old_stage)
    data["pipeline"] = str(lead.pipeline_id)

    response = client.post(version_url, data)

    assert response.status_code in (200, 302)
    lead.refresh_from_db()
    assert (lead.status, lead.stage.is_lost) == ("lost", True)


@pytest.mark.django_db
def test_a_sales_manager_cannot_take_over_another_team(people, admin_as):
    """Issue 14 finding 3: a Sales Manager edited any team in the admin and made themselves its manager."""
    east = SalesTeam.objects.get(name="East")
    west = SalesTeam.objects.get(name="West")
    manager = people.users["manager"]
    client = admin_as("manager")

    for team in (east, west):
        url = reverse("admin:crm_salesteam_change", args=[team.pk])
        client.post(
            url, {"name": team.name, "manager": manager.pk, "members": [manager.pk], "is_active": "on"}
        )
    response = client.post(reverse("admin:crm_salesteam_add"), {"name": "Mine", "manager": manager.pk})

    assert response.status_code == 403
    east.refresh_from_db()
    assert east.manager.username == "east_manager"
    assert set(west.members.values_list("username", flat=True)) == {"owner", "teammate"}
    assert not SalesTeam.objects.filter(name="Mine").exists()


@pytest.mark.django_db
def test_team_services_refuse_a_sales_manager(people):
    """Issue 14 finding 3: the rule is the services', whatever the door."""
    east = SalesTeam.objects.get(name="East")
    manager = people.users["manager"]

    with pytest.raises(ValidationError):
        services.sales_team_update(team=east, user=manager, data={"manager": manager})
    with pytest.raises(ValidationError):
        services.sales_team_create(user=manager, data={"name": "Mine", "manager": manager})
    with pytest.raises(ValidationError):
        services.sales_team_delete(team=east, user=manager)
    team = services.sales_team_update(team=east, user=people.users["crm_admin"], data={"manager": manager})
    assert team.manager == manager


@pytest.mark.django_db
def test_a_sales_manager_sees_only_their_own_teams(people, admin_as):
    """Issue 14 finding 3: a manager may at most view their own teams."""
    client = admin_as("manager")

    html = client.get(reverse("admin:crm_salesteam_changelist")).content.decode()

    west, east = SalesTeam.objects.get(name="West"), SalesTeam.objects.get(name="East")
    assert reverse("admin:crm_salesteam_change", args=[west.pk]) in html
    assert reverse("admin:crm_salesteam_change", args=[east.pk]) not in html
    assert '<td class="field-member_count">2</td>' in html


@pytest.mark.django_db
def test_a_crm_admin_manages_teams(people, admin_as):
    """Issue 14 finding 3: team managers and members are for a CRM Admin (and superusers) to set."""
    east = SalesTeam.objects.get(name="East")
    newcomer = UserFactory(username="newcomer")
    client = admin_as("crm_admin")
    url = reverse("admin:crm_salesteam_change", args=[east.pk])
    data = change_form_data(client.get(url))
    data["manager"] = str(newcomer.pk)

    response = client.post(url, data)

    assert response.status_code == 302
    east.refresh_from_db()
    assert east.manager == newcomer


@pytest.mark.django_db
def test_a_crm_admin_views_adds_and_deletes_api_tokens(people, admin_as):
    """Issue 14 finding 7: the CRM Admin role could not open the API tokens page."""
    client = admin_as("crm_admin")
    rep = people.users["owner"]

    assert client.get(reverse("admin:authtoken_tokenproxy_changelist")).status_code == 200
    response = client.post(reverse("admin:authtoken_tokenproxy_add"), {"user": rep.pk})
    assert response.status_code == 302
    assert Token.objects.filter(user=rep).exists()
    response = client.post(reverse("admin:authtoken_tokenproxy_delete", args=[rep.pk]), {"post": "yes"})
    assert response.status_code == 302
    assert not Token.objects.filter(user=rep).exists()


@pytest.mark.django_db
@pytest.mark.parametrize("persona", ["owner", "manager"])
def test_reps_and_managers_do_not_manage_api_tokens(people, admin_as, persona):
    client = admin_as(persona)
    assert client.get(reverse("admin:authtoken_tokenproxy_changelist")).status_code == 403
