"""/leads/kanban, /leads/{id}/move-stage, /leads/{id}/mark-lost, /leads/{id}/convert."""

from decimal import Decimal

import pytest

from crm.models import Account, Contact, Lead
from sales.models import Opportunity
from tests.api.conftest import grant, url
from tests.factories import (
    AccountFactory,
    ContactFactory,
    LeadFactory,
    LostReasonFactory,
    PipelineFactory,
    StageFactory,
    UserFactory,
)

# --- move-stage -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_move_stage_returns_the_updated_lead(api, stages):
    lead = LeadFactory()

    response = api.post(url(f"leads/{lead.pk}/move-stage/"), {"stage_id": stages["Proposal"].pk})

    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["stage_id"], body["stage_name"], body["probability"], body["status"]) == (
        lead.pk,
        stages["Proposal"].pk,
        "Proposal",
        60,
        "open",
    )
    lead.refresh_from_db()
    assert (lead.stage, lead.probability) == (stages["Proposal"], 60)


@pytest.mark.django_db
def test_move_stage_without_slash(api, stages):
    lead = LeadFactory()
    response = api.post(url(f"leads/{lead.pk}/move-stage"), {"stage_id": stages["Qualified"].pk})
    assert response.status_code == 200


@pytest.mark.django_db
def test_move_stage_into_lost_marks_the_lead_lost(api, stages):
    lead = LeadFactory()
    response = api.post(url(f"leads/{lead.pk}/move-stage/"), {"stage_id": stages["Lost"].pk})
    assert response.status_code == 200
    assert response.json()["status"] == "lost"


@pytest.mark.django_db
def test_move_stage_into_won_converts_the_lead(api, stages):
    lead = LeadFactory(company_name="Acme")

    response = api.post(url(f"leads/{lead.pk}/move-stage/"), {"stage_id": stages["Won"].pk})

    assert response.status_code == 200
    body = response.json()
    opportunity = Opportunity.objects.get()
    assert body["status"] == "converted"
    assert body["converted_opportunity_id"] == opportunity.pk
    assert body["converted_account_id"] == Account.objects.get(name="Acme").pk


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({}, "This field is required."),
        ({"stage_id": None}, "This field may not be null."),
        ({"stage_id": 999999}, 'Invalid pk "999999" - object does not exist.'),
        ({"stage_id": "seven"}, "Incorrect type. Expected pk value, received str."),
    ],
)
def test_move_stage_bad_body_is_a_field_error(api, stages, payload, message):
    lead = LeadFactory()
    response = api.post(url(f"leads/{lead.pk}/move-stage/"), payload)
    assert response.status_code == 400
    assert response.json() == {"stage_id": [message]}


@pytest.mark.django_db
def test_move_stage_to_another_pipeline_is_a_stage_id_error(api, stages):
    lead = LeadFactory()
    foreign = StageFactory(pipeline=PipelineFactory(name="Enterprise"), name="Discovery")

    response = api.post(url(f"leads/{lead.pk}/move-stage/"), {"stage_id": foreign.pk})

    assert response.status_code == 400
    assert "belongs to the pipeline “Enterprise”" in response.json()["stage_id"][0]
    lead.refresh_from_db()
    assert lead.stage == stages["New"]


@pytest.mark.django_db
@pytest.mark.parametrize("status", ["lost", "converted"])
def test_move_stage_of_a_closed_lead_is_409(api, stages, status):
    lead = LeadFactory(status=status, converted_at="2026-01-01T00:00:00Z" if status == "converted" else None)

    response = api.post(url(f"leads/{lead.pk}/move-stage/"), {"stage_id": stages["Qualified"].pk})

    assert response.status_code == 409
    assert response.json()["code"] == "closed"
    assert f"already {status}" in response.json()["detail"]


@pytest.mark.django_db
def test_move_stage_of_a_missing_lead_is_404(api, stages):
    response = api.post(url("leads/999999/move-stage/"), {"stage_id": stages["New"].pk})
    assert response.status_code == 404


@pytest.mark.django_db
def test_malformed_json_is_a_400(api, stages):
    lead = LeadFactory()
    response = api.post(url(f"leads/{lead.pk}/move-stage/"), "{not json", content_type="application/json")
    assert response.status_code == 400
    assert "JSON parse error" in response.json()["detail"]


@pytest.mark.django_db
def test_move_stage_needs_change_permission(stages, client_for):
    lead = LeadFactory()
    adder = client_for("add_lead", "view_lead")
    changer = client_for("change_lead", "view_lead")

    assert (
        adder.post(url(f"leads/{lead.pk}/move-stage/"), {"stage_id": stages["Qualified"].pk}).status_code
        == 403
    )
    assert (
        changer.post(url(f"leads/{lead.pk}/move-stage/"), {"stage_id": stages["Qualified"].pk}).status_code
        == 200
    )


@pytest.fixture
def client_for(db):
    from rest_framework.test import APIClient

    def make(*codenames):
        client = APIClient()
        client.force_authenticate(grant(UserFactory(), *codenames))
        return client

    return make


# --- mark-lost ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_mark_lost_with_reason_and_note(api, stages):
    lead = LeadFactory()
    reason = LostReasonFactory(name="Budget")

    response = api.post(
        url(f"leads/{lead.pk}/mark-lost/"), {"lost_reason_id": reason.pk, "lost_note": "Next year"}
    )

    assert response.status_code == 200
    body = response.json()
    assert (
        body["status"],
        body["stage_name"],
        body["lost_reason_id"],
        body["lost_reason_name"],
        body["lost_note"],
    ) == (
        "lost",
        "Lost",
        reason.pk,
        "Budget",
        "Next year",
    )
    lead.refresh_from_db()
    assert (lead.status, lead.lost_reason, lead.lost_note) == ("lost", reason, "Next year")


@pytest.mark.django_db
def test_mark_lost_with_no_body(api, stages):
    lead = LeadFactory()
    response = api.post(url(f"leads/{lead.pk}/mark-lost/"))
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["lost_reason_id"]) == ("lost", None)


@pytest.mark.django_db
def test_mark_lost_with_an_inactive_reason_is_a_field_error(api, stages):
    lead = LeadFactory()
    reason = LostReasonFactory(is_active=False)

    response = api.post(url(f"leads/{lead.pk}/mark-lost/"), {"lost_reason_id": reason.pk})

    assert response.status_code == 400
    assert "no longer in use" in response.json()["lost_reason_id"][0]
    assert Lead.objects.get().status == "open"


@pytest.mark.django_db
def test_mark_lost_with_an_unknown_reason_is_a_field_error(api, stages):
    lead = LeadFactory()
    response = api.post(url(f"leads/{lead.pk}/mark-lost/"), {"lost_reason_id": 999999})
    assert response.status_code == 400
    assert list(response.json()) == ["lost_reason_id"]


@pytest.mark.django_db
def test_mark_lost_twice_is_409(api, stages):
    lead = LeadFactory()
    api.post(url(f"leads/{lead.pk}/mark-lost/"))
    response = api.post(url(f"leads/{lead.pk}/mark-lost/"))
    assert response.status_code == 409
    assert response.json()["code"] == "closed"


# --- convert --------------------------------------------------------------------------------------


@pytest.fixture
def lead(stages):
    return LeadFactory(
        name="Acme — 50 seats",
        company_name="Acme Corp",
        contact_name="Ann Lee",
        email="ann@acme.test",
        expected_revenue=Decimal("12000"),
    )


@pytest.mark.django_db
def test_convert_with_defaults(api, lead, stages):
    response = api.post(url(f"leads/{lead.pk}/convert/"))

    assert response.status_code == 200, response.json()
    body = response.json()
    assert set(body) == {"lead", "account", "contact", "opportunity"}
    account, contact, opportunity = Account.objects.get(), Contact.objects.get(), Opportunity.objects.get()
    assert body["lead"]["status"] == "converted"
    assert body["lead"]["converted_at"] is not None
    assert (
        body["lead"]["converted_account_id"],
        body["lead"]["converted_contact_id"],
        body["lead"]["converted_opportunity_id"],
    ) == (account.pk, contact.pk, opportunity.pk)
    assert (body["account"]["id"], body["account"]["name"], body["account"]["opportunity_count"]) == (
        account.pk,
        "Acme Corp",
        1,
    )
    assert (body["contact"]["full_name"], body["contact"]["account_id"]) == ("Ann Lee", account.pk)
    assert (body["opportunity"]["name"], body["opportunity"]["amount"], body["opportunity"]["lead_id"]) == (
        "Acme — 50 seats",
        "12000.00",
        lead.pk,
    )
    assert (body["opportunity"]["account_id"], body["opportunity"]["contact_id"]) == (account.pk, contact.pk)
    lead.refresh_from_db()
    assert (lead.status, lead.converted_account, lead.converted_contact) == ("converted", account, contact)


@pytest.mark.django_db
def test_convert_to_an_existing_account_by_id(api, lead):
    existing = AccountFactory(name="Parent Co")

    response = api.post(url(f"leads/{lead.pk}/convert/"), {"account_id": existing.pk})

    assert response.status_code == 200
    assert response.json()["account"]["id"] == existing.pk
    assert Account.objects.count() == 1
    assert Opportunity.objects.get().account == existing


@pytest.mark.django_db
def test_convert_reuses_an_account_by_name_ignoring_case(api, lead):
    existing = AccountFactory(name="acme CORP")

    response = api.post(url(f"leads/{lead.pk}/convert/"), {"create_account": True})

    assert response.status_code == 200
    assert response.json()["account"]["id"] == existing.pk
    assert Account.objects.count() == 1


@pytest.mark.django_db
def test_convert_reuses_a_contact_by_email(api, lead):
    existing = ContactFactory(first_name="Ann", email="ANN@acme.test")

    response = api.post(url(f"leads/{lead.pk}/convert/"))

    assert response.status_code == 200
    assert response.json()["contact"]["id"] == existing.pk
    assert Contact.objects.count() == 1


@pytest.mark.django_db
def test_convert_to_an_existing_contact_by_id(api, lead):
    existing = ContactFactory(email="someone@else.test")
    response = api.post(url(f"leads/{lead.pk}/convert/"), {"contact_id": existing.pk})
    assert response.status_code == 200
    assert response.json()["contact"]["id"] == existing.pk
    assert Contact.objects.count() == 1


@pytest.mark.django_db
def test_convert_without_opportunity_account_or_contact(api, lead):
    response = api.post(
        url(f"leads/{lead.pk}/convert/"),
        {"create_opportunity": False, "create_account": False, "create_contact": False},
    )

    assert response.status_code == 200
    body = response.json()
    assert (body["account"], body["contact"], body["opportunity"]) == (None, None, None)
    assert body["lead"]["status"] == "converted"
    assert not Opportunity.objects.exists() and not Account.objects.exists() and not Contact.objects.exists()


@pytest.mark.django_db
def test_convert_with_opportunity_options(api, lead, stages):
    response = api.post(
        url(f"leads/{lead.pk}/convert/"),
        {
            "opportunity_name": "Pilot",
            "amount": "250.50",
            "close_date": "2026-12-31",
            "stage_id": stages["Proposal"].pk,
        },
    )

    assert response.status_code == 200
    opportunity = response.json()["opportunity"]
    assert (opportunity["name"], opportunity["amount"], opportunity["close_date"]) == (
        "Pilot",
        "250.50",
        "2026-12-31",
    )
    assert (opportunity["stage_name"], opportunity["probability"]) == ("Proposal", 60)


@pytest.mark.django_db
def test_convert_twice_is_409(api, lead):
    assert api.post(url(f"leads/{lead.pk}/convert/")).status_code == 200

    response = api.post(url(f"leads/{lead.pk}/convert/"))

    assert response.status_code == 409
    assert response.json()["code"] == "closed"
    assert "already converted" in response.json()["detail"]
    assert Opportunity.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"account_id": 999999}, "account_id"),
        ({"contact_id": "x"}, "contact_id"),
        ({"stage_id": 999999}, "stage_id"),
        ({"amount": "-1"}, "amount"),
        ({"amount": "lots"}, "amount"),
        ({"close_date": "31/12/2026"}, "close_date"),
        ({"create_opportunity": "perhaps"}, "create_opportunity"),
        ({"create_opportunity": False, "amount": "5"}, "create_opportunity"),
        ({"account_id": None, "create_account": True, "opportunity_name": "x" * 201}, "opportunity_name"),
    ],
)
def test_convert_bad_input_is_a_field_error_and_changes_nothing(api, lead, payload, field):
    response = api.post(url(f"leads/{lead.pk}/convert/"), payload)

    assert response.status_code == 400
    assert field in response.json()
    assert Lead.objects.get().status == "open"
    assert not Account.objects.exists() and not Opportunity.objects.exists()


@pytest.mark.django_db
def test_convert_with_a_stage_of_another_pipeline_than_asked_is_a_stage_id_error(api, lead, pipeline):
    foreign = StageFactory(pipeline=PipelineFactory(name="Enterprise"))
    response = api.post(
        url(f"leads/{lead.pk}/convert/"), {"pipeline_id": pipeline.pk, "stage_id": foreign.pk}
    )
    assert response.status_code == 400
    assert list(response.json()) == ["stage_id"]


@pytest.mark.django_db
def test_convert_needs_permission_to_create_what_it_creates(lead, client_for):
    only_leads = client_for("view_lead", "change_lead")
    assert only_leads.post(url(f"leads/{lead.pk}/convert/")).status_code == 403

    everything = client_for("view_lead", "change_lead", "add_opportunity", "add_account", "add_contact")
    assert everything.post(url(f"leads/{lead.pk}/convert/")).status_code == 200


# --- kanban ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_lead_kanban_shape_and_figures(api, stages, pipeline):
    LeadFactory(name="one", expected_revenue=Decimal("100"))
    LeadFactory(name="two", expected_revenue=Decimal("50.25"))
    LeadFactory(name="three", stage=stages["Qualified"])

    response = api.get(url("leads/kanban/"))

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"pipeline", "columns"}
    assert (body["pipeline"]["id"], body["pipeline"]["name"]) == (pipeline.pk, "Sales")
    assert [column["stage"]["name"] for column in body["columns"]] == [
        "New",
        "Qualified",
        "Proposal",
        "Won",
        "Lost",
    ]
    new = body["columns"][0]
    assert set(new) == {"stage", "count", "total", "results"}
    assert set(new["stage"]) == {"id", "name", "sequence", "probability", "color", "is_won", "is_lost"}
    assert (new["count"], new["total"]) == (2, "150.25")
    assert [card["name"] for card in new["results"]] == ["two", "one"]
    assert (body["columns"][1]["count"], body["columns"][1]["total"]) == (1, "0.00")


@pytest.mark.django_db
def test_lead_kanban_of_another_pipeline_with_limit_and_filters(api, stages):
    other = PipelineFactory(name="Enterprise")
    stage = StageFactory(pipeline=other, name="Scoping")
    for name in ("a", "b", "c"):
        LeadFactory(name=name, pipeline=other, stage=stage, rating="hot")
    LeadFactory(name="cold", pipeline=other, stage=stage, rating="cold")

    response = api.get(
        url("leads/kanban"), {"pipeline": other.pk, "limit": 2, "rating": "hot", "ordering": "name"}
    )

    assert response.status_code == 200
    column = response.json()["columns"][0]
    assert (column["stage"]["name"], column["count"]) == ("Scoping", 3)
    assert [card["name"] for card in column["results"]] == ["a", "b"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"pipeline": 999999}, "pipeline"),
        ({"pipeline": "x"}, "pipeline"),
        ({"limit": "many"}, "limit"),
        ({"limit": 500}, "limit"),
    ],
)
def test_lead_kanban_bad_parameters_are_400(api, stages, params, field):
    response = api.get(url("leads/kanban/"), params)
    assert response.status_code == 400
    assert field in response.json()


@pytest.mark.django_db
def test_lead_kanban_without_a_default_pipeline_asks_for_one(api):
    response = api.get(url("leads/kanban/"))
    assert response.status_code == 400
    assert "no default pipeline" in response.json()["pipeline"][0]
