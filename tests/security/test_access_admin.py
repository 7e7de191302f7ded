"""The access matrix over the admin: changelists, change pages, autocompletes, boards and their move
endpoint, record pages, the dashboard, forecast, calendar and exports, for every persona."""

import csv
import io
import json

import pytest
from django.urls import reverse

from crm import services
from tests.security.test_access_api import EDITS_SHARED, SEES, visible_ids

OWNED = {"crm.lead": "lead", "sales.opportunity": "opportunity", "activities.activity": "activity"}
SHARED = {"crm.account": "account", "crm.contact": "contact"}


def admin_url(label, name, *args):
    app, model = label.split(".")
    return reverse(f"admin:{app}_{model}_{name}", args=args)


def changelist_ids(client, label, kind, people):
    html = client.get(admin_url(label, "changelist")).content.decode()
    everything = [getattr(records, kind) for records in [*people.records.values(), people.unowned]]
    return {r.pk for r in everything if admin_url(label, "change", r.pk) in html}


@pytest.mark.django_db
@pytest.mark.parametrize("persona", SEES)
@pytest.mark.parametrize("label", OWNED)
def test_changelists_list_visible_records_only(people, admin_as, persona, label):
    kind = OWNED[label]
    assert changelist_ids(admin_as(persona), label, kind, people) == visible_ids(people, persona, kind)


@pytest.mark.django_db
@pytest.mark.parametrize("persona", SEES)
@pytest.mark.parametrize("label", OWNED)
def test_another_reps_change_page_is_like_a_missing_record(people, admin_as, persona, label):
    record = getattr(people.records["owner"], OWNED[label])
    client = admin_as(persona)

    response = client.get(admin_url(label, "change", record.pk))

    if "owner" in SEES[persona]:
        assert response.status_code == 200
    else:
        assert response.status_code == 302 and response.url == reverse("admin:index")
        # A POST to it changes nothing either.
        response = client.post(admin_url(label, "change", record.pk), {"name": "x", "subject": "x"})
        assert response.status_code == 302
        assert type(record).objects.get(pk=record.pk).description == record.description
        # Reps may not delete leads or deals at all (403); activities they may, but not this one.
        assert client.get(admin_url(label, "delete", record.pk)).status_code in (302, 403)


@pytest.mark.django_db
@pytest.mark.parametrize("persona", SEES)
@pytest.mark.parametrize("label", SHARED)
def test_accounts_and_contacts_are_shown_to_all_but_saved_only_by_the_owners_team(
    people, admin_as, persona, label
):
    record = getattr(people.records["owner"], SHARED[label])
    client = admin_as(persona)
    assert changelist_ids(client, label, SHARED[label], people) == {
        getattr(r, SHARED[label]).pk for r in [*people.records.values(), people.unowned]
    }

    page = client.get(admin_url(label, "change", record.pk))

    assert page.status_code == 200
    editable = EDITS_SHARED[persona]
    assert ('name="_save"' in page.content.decode()) is editable
    if not editable:
        response = client.post(admin_url(label, "change", record.pk), {"name": "Renamed"})
        assert response.status_code == 403
        record.refresh_from_db()
        assert record.pk and str(record) != "Renamed"


@pytest.mark.django_db
@pytest.mark.parametrize("persona", SEES)
@pytest.mark.parametrize("field,kind", [("lead", "lead"), ("opportunity", "opportunity")])
def test_autocompletes_offer_visible_records_only(people, admin_as, persona, field, kind):
    response = admin_as(persona).get(
        reverse("admin:autocomplete"),
        {"app_label": "activities", "model_name": "activity", "field_name": field, "term": ""},
    )
    assert response.status_code == 200
    ids = {int(row["id"]) for row in response.json()["results"]}
    assert ids == visible_ids(people, persona, kind)


@pytest.mark.django_db
@pytest.mark.parametrize("persona", SEES)
@pytest.mark.parametrize("label", ["crm.lead", "sales.opportunity"])
def test_boards_show_and_move_visible_records_only(people, admin_as, persona, label):
    kind = OWNED[label]
    client = admin_as(persona)
    html = client.get(admin_url(label, "board")).content.decode()
    for name, records in people.records.items():
        assert (str(getattr(records, kind)) in html) is (name in SEES[persona])

    record = getattr(people.records["owner"], kind)
    response = client.post(
        admin_url(label, "board_move"), {"record": record.pk, "stage": people.stages["Qualified"].pk}
    )

    visible = "owner" in SEES[persona]
    assert response.status_code == (200 if visible else 404), response.content
    if not visible:
        assert json.loads(response.content) == {"ok": False, "error": "This record no longer exists."}
    record.refresh_from_db()
    assert (record.stage == people.stages["Qualified"]) is visible


RECORD_PAGES = [
    ("crm.lead", "convert"),
    ("crm.lead", "mark_lost"),
    ("sales.opportunity", "mark_won"),
    ("sales.opportunity", "mark_lost"),
]


@pytest.mark.django_db
@pytest.mark.parametrize("persona", SEES)
@pytest.mark.parametrize("label,page", RECORD_PAGES)
def test_record_pages_of_another_reps_record_are_not_found(people, admin_as, persona, label, page):
    record = getattr(people.records["owner"], OWNED[label])
    client = admin_as(persona)
    response = client.get(admin_url(label, page, record.pk))
    visible = "owner" in SEES[persona]
    assert response.status_code == (200 if visible else 404)
    if not visible:
        assert client.post(admin_url(label, page, record.pk), {}).status_code == 404
        record.refresh_from_db()
        assert record.status == "open"


@pytest.mark.django_db
@pytest.mark.parametrize("persona", SEES)
def test_dashboard_forecast_and_calendar_count_visible_records_only(people, admin_as, persona):
    client = admin_as(persona)
    dashboard = client.get(reverse("admin:index"))
    assert dashboard.context["figures"]["total_leads"] == len(visible_ids(people, persona, "lead"))

    forecast = client.get(admin_url("sales.opportunity", "forecast"))
    assert forecast.context["forecast"]["totals"]["count"] == len(visible_ids(people, persona, "opportunity"))

    calendar = client.get(admin_url("activities.activity", "calendar"), {"everyone": "1"})
    listed = {a.pk for week in calendar.context["weeks"] for day in week for a in day["activities"]}
    # A month's day lists its first few activities and counts them all.
    assert listed <= visible_ids(people, persona, "activity")
    assert calendar.context["count"] == len(visible_ids(people, persona, "activity"))


@pytest.mark.django_db
@pytest.mark.parametrize("persona", SEES)
def test_admin_lead_export_contains_no_outsiders_ids(people, admin_as, persona):
    response = admin_as(persona).get(admin_url("crm.lead", "export"), {"format": "csv"})
    assert response.status_code == 200
    rows = csv.DictReader(io.StringIO(response.content.decode("utf-8-sig")))
    assert {int(row["id"]) for row in rows} == visible_ids(people, persona, "lead")


@pytest.mark.django_db
def test_admin_refuses_an_owner_the_rep_may_not_assign_on_the_field(people, admin_as):
    account = people.records["owner"].account
    client = admin_as("owner")
    page = client.get(admin_url("crm.account", "change", account.pk))
    data = {
        key: value
        for key, value in page.context["adminform"].form.initial.items()
        if value is not None and key not in ("tags",)
    }
    data["owner"] = people.users["outsider"].pk
    # Leave the inlines (contacts, deals, activities) untouched.
    for formset in page.context["inline_admin_formsets"]:
        management = formset.formset.management_form
        data[f"{management.prefix}-TOTAL_FORMS"] = data[f"{management.prefix}-INITIAL_FORMS"] = 0

    response = client.post(admin_url("crm.account", "change", account.pk), data)

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["owner"] == [services.OWNER_CHANGE_REFUSED]
    account.refresh_from_db()
    assert account.owner == people.users["owner"]


@pytest.mark.django_db
def test_admin_activity_form_does_not_accept_a_lead_the_rep_does_not_see(people, admin_as):
    hidden = people.records["outsider"].lead
    response = admin_as("owner").post(
        admin_url("activities.activity", "add"),
        {
            "subject": "Peek",
            "activity_type": "call",
            "status": "scheduled",
            "priority": "medium",
            "lead": hidden.pk,
            "owner": people.users["owner"].pk,
        },
    )
    assert response.status_code == 200
    assert "lead" in response.context["adminform"].form.errors
    assert not hidden.activities.filter(subject="Peek").exists()
