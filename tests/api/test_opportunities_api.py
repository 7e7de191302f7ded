"""/opportunities/: CRUD, filters, search, ordering, kanban, move-stage, mark-won, mark-lost, forecast."""

import datetime
from decimal import Decimal

import pytest

from crm.actors import SYSTEM
from sales import services
from sales.models import Opportunity
from tests.api.conftest import url
from tests.factories import (
    AccountFactory,
    ContactFactory,
    LostReasonFactory,
    OpportunityFactory,
    PipelineFactory,
    StageFactory,
    TagFactory,
    UserFactory,
)

OPPORTUNITY_FIELDS = {
    "id",
    "name",
    "account_id",
    "account_name",
    "contact_id",
    "contact_name",
    "pipeline_id",
    "pipeline_name",
    "stage_id",
    "stage_name",
    "amount",
    "currency",
    "probability",
    "automated_probability",
    "automated_probability_note",
    "weighted_amount",
    "close_date",
    "opportunity_type",
    "priority",
    "status",
    "closed_at",
    "lost_reason_id",
    "lost_reason_name",
    "lost_note",
    "lead_id",
    "description",
    "owner_id",
    "owner_username",
    "tags",
    "created_at",
    "updated_at",
    "campaign_id",
    "days_in_stage",
    "stage_usual_time",
    "is_rotting",
}


def names(response) -> list[str]:
    assert response.status_code == 200, response.json()
    return [row["name"] for row in response.json()["results"]]


@pytest.mark.django_db
def test_create_opportunity(api, crm_admin, stages):
    account = AccountFactory(name="Acme")
    contact = ContactFactory(first_name="Ann", last_name="Lee", account=account)
    tag = TagFactory()

    response = api.post(
        url("opportunities/"),
        {
            "name": "Renewal 2027",
            "account_id": account.pk,
            "contact_id": contact.pk,
            "amount": "1200",
            "close_date": "2026-12-15",
            "opportunity_type": "renewal",
            "tags": [tag.pk],
        },
    )

    assert response.status_code == 201, response.json()
    body = response.json()
    assert set(body) == OPPORTUNITY_FIELDS
    assert (body["account_name"], body["contact_name"], body["stage_name"], body["probability"]) == (
        "Acme",
        "Ann Lee",
        "New",
        10,
    )
    assert (body["amount"], body["weighted_amount"], body["status"], body["owner_id"]) == (
        "1200.00",
        "120.00",
        "open",
        crm_admin.pk,
    )
    opportunity = Opportunity.objects.get()
    assert (opportunity.account, opportunity.contact, opportunity.amount) == (
        account,
        contact,
        Decimal("1200"),
    )
    assert list(opportunity.tags.all()) == [tag]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "name"),
        ({"name": "x", "amount": "-1"}, "amount"),
        ({"name": "x", "amount": "1e400"}, "amount"),
        ({"name": "x", "probability": 101}, "probability"),
        ({"name": "x", "opportunity_type": "barter"}, "opportunity_type"),
        ({"name": "x", "close_date": "tomorrow"}, "close_date"),
        ({"name": "x", "account_id": 999999}, "account_id"),
        ({"name": "x", "contact_id": [1]}, "contact_id"),
        ({"name": "x", "status": "won", "probability": "x"}, "probability"),
    ],
)
def test_create_opportunity_bad_input(api, pipeline, payload, field):
    response = api.post(url("opportunities/"), payload)
    assert response.status_code == 400
    assert field in response.json()
    assert not Opportunity.objects.exists()


@pytest.mark.django_db
def test_create_opportunity_with_a_contact_of_another_account_is_a_contact_error(api, pipeline):
    contact = ContactFactory(account=AccountFactory(name="Rival"))
    response = api.post(
        url("opportunities/"), {"name": "x", "account_id": AccountFactory().pk, "contact_id": contact.pk}
    )
    assert response.status_code == 400
    assert "works for Rival" in response.json()["contact_id"][0]


@pytest.mark.django_db
def test_retrieve_update_delete_opportunity(api, stages):
    opportunity = OpportunityFactory(name="Deal")

    assert api.get(url(f"opportunities/{opportunity.pk}/")).json()["name"] == "Deal"
    response = api.patch(url(f"opportunities/{opportunity.pk}/"), {"amount": "99.99", "priority": "high"})
    assert response.status_code == 200
    opportunity.refresh_from_db()
    assert (opportunity.amount, opportunity.priority) == (Decimal("99.99"), "high")
    assert api.put(url(f"opportunities/{opportunity.pk}/"), {"name": "Renamed"}).status_code == 200
    assert Opportunity.objects.get().name == "Renamed"
    assert api.delete(url(f"opportunities/{opportunity.pk}/")).status_code == 204
    assert not Opportunity.objects.exists()
    assert api.get(url(f"opportunities/{opportunity.pk}/")).status_code == 404


@pytest.mark.django_db
def test_patch_stage_into_won_wins_and_a_won_deal_keeps_its_place(api, stages):
    opportunity = OpportunityFactory()

    response = api.patch(url(f"opportunities/{opportunity.pk}/"), {"stage_id": stages["Won"].pk})
    assert (response.status_code, response.json()["status"]) == (200, "won")

    response = api.patch(url(f"opportunities/{opportunity.pk}/"), {"stage_id": stages["New"].pk})
    assert response.status_code == 409
    assert response.json()["code"] == "closed"

    response = api.patch(url(f"opportunities/{opportunity.pk}/"), {"probability": 50})
    assert response.status_code == 400
    assert response.json() == {"probability": ["A won opportunity has a probability of 100."]}


@pytest.mark.django_db
def test_opportunity_filters(api, stages, pipeline):
    account = AccountFactory()
    owner = UserFactory()
    tag = TagFactory()
    other = StageFactory(pipeline=PipelineFactory(name="Other"))
    OpportunityFactory(name="plain", close_date=datetime.date(2026, 1, 1))
    target = OpportunityFactory(
        name="target",
        account=account,
        stage=stages["Proposal"],
        priority="urgent",
        owner=owner,
        opportunity_type="upsell",
        close_date=datetime.date(2026, 6, 30),
    )
    target.tags.add(tag)
    services.opportunity_mark_lost(
        opportunity=OpportunityFactory(name="lost", close_date=datetime.date(2025, 1, 1)), user=SYSTEM
    )
    OpportunityFactory(name="elsewhere", pipeline=other.pipeline, stage=other)

    assert names(api.get(url("opportunities/"), {"account": account.pk})) == ["target"]
    assert names(api.get(url("opportunities/"), {"stage": stages["Proposal"].pk})) == ["target"]
    assert names(api.get(url("opportunities/"), {"pipeline": other.pipeline.pk})) == ["elsewhere"]
    assert names(api.get(url("opportunities/"), {"priority": "urgent"})) == ["target"]
    assert names(api.get(url("opportunities/"), {"status": "lost"})) == ["lost"]
    assert names(api.get(url("opportunities/"), {"owner": owner.pk})) == ["target"]
    assert names(api.get(url("opportunities/"), {"tag": tag.pk})) == ["target"]
    assert names(api.get(url("opportunities/"), {"opportunity_type": "upsell"})) == ["target"]
    assert names(api.get(url("opportunities/"), {"close_date_after": "2026-06-01"})) == ["target"]
    assert names(api.get(url("opportunities/"), {"close_date_before": "2026-01-01"})) == ["lost", "plain"]
    assert names(
        api.get(url("opportunities/"), {"close_date_after": "2026-01-01", "close_date_before": "2026-06-30"})
    ) == ["target", "plain"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("param", "value"),
    [("close_date_after", "soon"), ("account", "acme"), ("status", "pending"), ("ordering", "secret")],
)
def test_opportunity_bad_filters_are_400(api, pipeline, param, value):
    response = api.get(url("opportunities/"), {param: value})
    assert response.status_code == 400
    assert response.json()


@pytest.mark.django_db
def test_opportunity_search_and_ordering(api, stages):
    OpportunityFactory(name="Alpha upgrade", amount=300, account=AccountFactory(name="Globex"))
    OpportunityFactory(name="Beta", amount=100, description="upgrade of the fleet")
    OpportunityFactory(name="Gamma", amount=200, close_date=datetime.date(2026, 1, 1))

    assert names(api.get(url("opportunities/"), {"search": "upgrade", "ordering": "name"})) == [
        "Alpha upgrade",
        "Beta",
    ]
    assert names(api.get(url("opportunities/"), {"search": "globex"})) == ["Alpha upgrade"]
    assert names(api.get(url("opportunities/"), {"ordering": "amount"})) == ["Beta", "Gamma", "Alpha upgrade"]
    assert names(api.get(url("opportunities/"), {"ordering": "-amount"})) == [
        "Alpha upgrade",
        "Gamma",
        "Beta",
    ]
    # Records without the value come last in both directions, on every database.
    assert names(api.get(url("opportunities/"), {"ordering": "account,name"})) == [
        "Alpha upgrade",
        "Beta",
        "Gamma",
    ]
    assert names(api.get(url("opportunities/"), {"ordering": "-account,-name"})) == [
        "Alpha upgrade",
        "Gamma",
        "Beta",
    ]
    assert names(api.get(url("opportunities/"), {"ordering": "close_date"}))[0] == "Gamma"
    assert names(api.get(url("opportunities/"), {"ordering": "-close_date"}))[0] == "Gamma"


# --- transitions ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_move_stage(api, stages):
    opportunity = OpportunityFactory()

    response = api.post(
        url(f"opportunities/{opportunity.pk}/move-stage/"), {"stage_id": stages["Qualified"].pk}
    )

    assert response.status_code == 200
    assert (response.json()["stage_name"], response.json()["probability"]) == ("Qualified", 30)
    opportunity.refresh_from_db()
    assert opportunity.stage == stages["Qualified"]


@pytest.mark.django_db
def test_move_stage_into_won_wins(api, stages):
    opportunity = OpportunityFactory()
    response = api.post(url(f"opportunities/{opportunity.pk}/move-stage/"), {"stage_id": stages["Won"].pk})
    assert (response.json()["status"], response.json()["probability"]) == ("won", 100)
    assert response.json()["closed_at"] is not None


@pytest.mark.django_db
def test_move_stage_to_a_stage_of_another_pipeline_is_400(api, stages):
    opportunity = OpportunityFactory()
    foreign = StageFactory(pipeline=PipelineFactory(name="Enterprise"))
    response = api.post(url(f"opportunities/{opportunity.pk}/move-stage/"), {"stage_id": foreign.pk})
    assert response.status_code == 400
    assert list(response.json()) == ["stage_id"]


@pytest.mark.django_db
def test_mark_won(api, stages):
    opportunity = OpportunityFactory(close_date=datetime.date(2026, 5, 1))

    response = api.post(url(f"opportunities/{opportunity.pk}/mark-won/"))

    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["probability"], body["stage_id"], body["close_date"]) == (
        "won",
        100,
        stages["Won"].pk,
        "2026-05-01",
    )
    assert body["closed_at"] is not None
    opportunity.refresh_from_db()
    assert (opportunity.status, opportunity.stage) == ("won", stages["Won"])


@pytest.mark.django_db
def test_mark_won_without_a_won_stage_is_409_with_a_clear_message(api):
    pipeline = PipelineFactory(name="Plain", is_default=True)
    StageFactory(pipeline=pipeline, name="Only")
    opportunity = OpportunityFactory()

    response = api.post(url(f"opportunities/{opportunity.pk}/mark-won/"))

    assert response.status_code == 409
    assert response.json() == {
        "detail": "The pipeline “Plain” has no won stage: add a stage marked won to it before winning its "
        "opportunities.",
        "code": "no_won_stage",
    }


@pytest.mark.django_db
def test_mark_lost(api, stages):
    opportunity = OpportunityFactory()
    reason = LostReasonFactory(name="Price")

    response = api.post(
        url(f"opportunities/{opportunity.pk}/mark-lost/"),
        {"lost_reason_id": reason.pk, "lost_note": "Too dear"},
    )

    assert response.status_code == 200
    body = response.json()
    assert (
        body["status"],
        body["stage_name"],
        body["lost_reason_name"],
        body["lost_note"],
        body["probability"],
    ) == (
        "lost",
        "Lost",
        "Price",
        "Too dear",
        0,
    )
    assert body["closed_at"] is not None


@pytest.mark.django_db
@pytest.mark.parametrize("first", ["mark-won", "mark-lost"])
@pytest.mark.parametrize("then", ["mark-won", "mark-lost", "move-stage"])
def test_closed_opportunity_actions_are_409(api, stages, first, then):
    opportunity = OpportunityFactory()
    assert api.post(url(f"opportunities/{opportunity.pk}/{first}/")).status_code == 200

    response = api.post(url(f"opportunities/{opportunity.pk}/{then}/"), {"stage_id": stages["New"].pk})

    assert response.status_code == 409
    assert response.json()["code"] == "closed"


@pytest.mark.django_db
def test_mark_lost_with_an_inactive_reason_is_400(api, stages):
    opportunity = OpportunityFactory()
    response = api.post(
        url(f"opportunities/{opportunity.pk}/mark-lost/"),
        {"lost_reason_id": LostReasonFactory(is_active=False).pk},
    )
    assert response.status_code == 400
    assert list(response.json()) == ["lost_reason_id"]


@pytest.mark.django_db
def test_actions_on_a_missing_opportunity_are_404(api, stages):
    for action in ("mark-won", "mark-lost", "move-stage"):
        response = api.post(url(f"opportunities/999999/{action}/"), {"stage_id": stages["New"].pk})
        assert response.status_code == 404


# --- kanban ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_opportunity_kanban(api, stages, pipeline):
    OpportunityFactory(name="a", amount=Decimal("100.10"))
    OpportunityFactory(name="b", amount=Decimal("0.90"))
    services.opportunity_mark_won(
        opportunity=OpportunityFactory(name="won", amount=Decimal("5")), user=SYSTEM
    )

    response = api.get(url("opportunities/kanban/"), {"limit": 1})

    assert response.status_code == 200
    body = response.json()
    assert body["pipeline"]["id"] == pipeline.pk
    columns = {column["stage"]["name"]: column for column in body["columns"]}
    assert (columns["New"]["count"], columns["New"]["total"]) == (2, "101.00")
    assert [card["name"] for card in columns["New"]["results"]] == ["b"]
    assert set(columns["New"]["results"][0]) == OPPORTUNITY_FIELDS
    assert (columns["Won"]["count"], columns["Won"]["total"], columns["Won"]["stage"]["is_won"]) == (
        1,
        "5.00",
        True,
    )


@pytest.mark.django_db
def test_opportunity_kanban_applies_filters(api, stages):
    account = AccountFactory()
    OpportunityFactory(name="mine", account=account)
    OpportunityFactory(name="theirs")
    body = api.get(url("opportunities/kanban/"), {"account": account.pk}).json()
    assert [card["name"] for card in body["columns"][0]["results"]] == ["mine"]


# --- forecast -------------------------------------------------------------------------------------


@pytest.fixture
def book(stages):
    alice = UserFactory(username="alice")
    OpportunityFactory(amount=1000, close_date=datetime.date(2026, 1, 15), owner=alice)  # weighted 100
    OpportunityFactory(amount=2000, stage=stages["Qualified"], close_date=datetime.date(2026, 1, 31))  # 600
    OpportunityFactory(amount=500)  # no close date: weighted 50
    services.opportunity_mark_won(
        opportunity=OpportunityFactory(amount=4000, close_date=datetime.date(2026, 2, 20)), user=SYSTEM
    )
    services.opportunity_mark_lost(
        opportunity=OpportunityFactory(amount=9999, close_date=datetime.date(2026, 1, 2)), user=SYSTEM
    )
    return {"alice": alice}


@pytest.mark.django_db
def test_forecast_by_month(api, book):
    response = api.get(url("opportunities/forecast/"))

    assert response.status_code == 200
    assert response.json() == {
        "currency": "USD",
        "conversion": (
            "Amounts in USD; a deal in another currency is converted at the rate in force on its close "
            "date (the latest rate on or before it; today's for a deal without a close date)."
        ),
        "totals": {
            "count": 3,
            "amount": "3500.00",
            "weighted_amount": "750.00",
            "won_count": 1,
            "won_amount": "4000.00",
            "target_amount": None,
        },
        "groups": [
            {
                "key": "2026-01",
                "label": "January 2026",
                "count": 2,
                "amount": "3000.00",
                "weighted_amount": "700.00",
                "won_count": 0,
                "won_amount": "0.00",
                "target_amount": None,
            },
            {
                "key": "2026-02",
                "label": "February 2026",
                "count": 0,
                "amount": "0.00",
                "weighted_amount": "0.00",
                "won_count": 1,
                "won_amount": "4000.00",
                "target_amount": None,
            },
            {
                "key": None,
                "label": "No close date",
                "count": 1,
                "amount": "500.00",
                "weighted_amount": "50.00",
                "won_count": 0,
                "won_amount": "0.00",
                "target_amount": None,
            },
        ],
    }


@pytest.mark.django_db
def test_forecast_with_range_owner_pipeline_and_grouping(api, book, pipeline, stages):
    params = {
        "date_from": "2026-01-01",
        "date_to": "2026-01-31",
        "pipeline": pipeline.pk,
        "group_by": "stage",
    }
    body = api.get(url("opportunities/forecast/"), params).json()
    assert [(group["key"], group["label"], group["count"]) for group in body["groups"]] == [
        (stages["New"].pk, "New", 1),
        (stages["Qualified"].pk, "Qualified", 1),
    ]
    assert body["totals"]["won_count"] == 0

    body = api.get(url("opportunities/forecast/"), {"owner": book["alice"].pk, "group_by": "quarter"}).json()
    assert body["groups"] == [
        {
            "key": "2026-Q1",
            "label": "Q1 2026",
            "count": 1,
            "amount": "1000.00",
            "weighted_amount": "100.00",
            "won_count": 0,
            "won_amount": "0.00",
            "target_amount": None,
        }
    ]

    body = api.get(url("opportunities/forecast/"), {"group_by": "owner"}).json()
    assert [(group["label"], group["count"]) for group in body["groups"]] == [("alice", 1), ("Unassigned", 2)]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"group_by": "week"}, "group_by"),
        ({"date_from": "yesterday"}, "date_from"),
        ({"date_from": "2026-02-01", "date_to": "2026-01-01"}, "date_to"),
        ({"pipeline": "abc"}, "pipeline"),
        ({"owner": 999999}, "owner"),
    ],
)
def test_forecast_bad_parameters_are_400(api, pipeline, params, field):
    response = api.get(url("opportunities/forecast/"), params)
    assert response.status_code == 400
    assert list(response.json()) == [field]


# --- dashboard ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_dashboard(api, book, stages, pipeline):
    from crm.services import lead_create
    from sales.services import lead_convert

    for name in ("a", "b", "c"):
        lead_create(data={"name": name}, user=SYSTEM)
    lead_convert(lead=lead_create(data={"name": "d"}, user=SYSTEM), create_opportunity=False, user=SYSTEM)

    response = api.get(url("dashboard/"))

    assert response.status_code == 200
    body = response.json()
    assert body["total_leads"] == 4
    assert body["conversion_rate"] == 25.0
    assert body["open_opportunities"] == {"count": 3, "value": "3500.00"}
    assert body["won_opportunities"] == {"count": 1, "value": "4000.00"}
    assert [
        (row["stage_id"], row["stage_name"], row["count"], row["value"])
        for row in body["pipeline_distribution"]
    ] == [
        (stages["New"].pk, "New", 2, "1500.00"),
        (stages["Qualified"].pk, "Qualified", 1, "2000.00"),
        (stages["Proposal"].pk, "Proposal", 0, "0.00"),
        (stages["Won"].pk, "Won", 1, "4000.00"),
        (stages["Lost"].pk, "Lost", 1, "9999.00"),
    ]
    assert api.get(url("dashboard"), {"pipeline": pipeline.pk}).json() == body


@pytest.mark.django_db
def test_dashboard_bad_pipeline_is_400(api, pipeline):
    response = api.get(url("dashboard/"), {"pipeline": "x"})
    assert response.status_code == 400
    assert list(response.json()) == ["pipeline"]


@pytest.mark.django_db
def test_dashboard_needs_view_permission_on_leads_and_opportunities(
    no_permission_api, read_only_api, pipeline
):
    assert no_permission_api.get(url("dashboard/")).status_code == 403
    assert read_only_api.get(url("dashboard/")).status_code == 200
