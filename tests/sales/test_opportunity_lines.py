"""A deal's line items: through the API and the admin inline; the deal's amount follows them."""

import re
from decimal import Decimal

import pytest

from sales.models import Opportunity, OpportunityLine
from tests.api.conftest import url
from tests.factories import ProductFactory

pytestmark = pytest.mark.django_db


def _deal(people, persona="owner"):
    return people.records[persona].opportunity


def test_lines_added_through_the_api_set_the_deals_amount(api_as, people):
    deal = _deal(people)
    product = ProductFactory(sku="WID-1", name="Widget", unit_price=Decimal("19.99"), tax_rate=20)
    client = api_as("owner")

    first = client.post(
        url(f"opportunities/{deal.pk}/lines/"), {"product_id": product.pk, "quantity": "3"}, format="json"
    )
    second = client.post(
        url(f"opportunities/{deal.pk}/lines/"),
        {
            "description": "Setup",
            "quantity": "2",
            "unit_price": "10.05",
            "discount_percent": "15",
            "tax_rate": "20",
        },
        format="json",
    )

    assert first.status_code == 201, first.json()
    assert first.json() | {"id": 0} == {
        "id": 0,
        "position": 1,
        "product_id": product.pk,
        "product_sku": "WID-1",
        "description": "Widget",
        "quantity": "3.00",
        "unit_price": "19.99",
        "discount_percent": "0.00",
        "tax_rate": "20.00",
        "net_amount": "59.97",
        "tax_amount": "11.99",
        "gross_amount": "71.96",
    }
    assert second.json()["net_amount"] == "17.09"
    deal.refresh_from_db()
    assert deal.amount == Decimal("77.06")
    listed = client.get(url(f"opportunities/{deal.pk}/lines/")).json()
    assert [line["description"] for line in listed] == ["Widget", "Setup"]
    assert client.get(url(f"opportunities/{deal.pk}/")).json()["amount"] == "77.06"


def test_changing_and_removing_lines_recomputes_the_amount(api_as, people):
    deal = _deal(people)
    client = api_as("owner")
    a = client.post(
        url(f"opportunities/{deal.pk}/lines/"), {"description": "A", "unit_price": "100"}, format="json"
    )
    client.post(
        url(f"opportunities/{deal.pk}/lines/"), {"description": "B", "unit_price": "50"}, format="json"
    )

    patched = client.patch(
        url(f"opportunities/{deal.pk}/lines/{a.json()['id']}/"), {"quantity": "2"}, format="json"
    )
    assert patched.status_code == 200
    deal.refresh_from_db()
    assert deal.amount == Decimal("250.00")

    assert client.delete(url(f"opportunities/{deal.pk}/lines/{a.json()['id']}/")).status_code == 204
    deal.refresh_from_db()
    assert deal.amount == Decimal("50.00")


def test_the_amount_of_a_deal_with_lines_is_not_typed_in(api_as, people):
    deal = _deal(people)
    client = api_as("owner")
    client.post(
        url(f"opportunities/{deal.pk}/lines/"), {"description": "A", "unit_price": "100"}, format="json"
    )

    refused = client.patch(url(f"opportunities/{deal.pk}/"), {"amount": "999.00"}, format="json")

    assert refused.status_code == 400
    assert "amount" in refused.json()
    assert Opportunity.objects.get(pk=deal.pk).amount == Decimal("100.00")
    # The same amount (a PUT of what was read) and other fields are fine.
    assert (
        client.patch(
            url(f"opportunities/{deal.pk}/"), {"amount": "100.00", "name": "Renamed"}, format="json"
        ).status_code
        == 200
    )


def test_a_deal_without_lines_keeps_a_manual_amount(api_as, people):
    deal = _deal(people)

    response = api_as("owner").patch(url(f"opportunities/{deal.pk}/"), {"amount": "1234.00"}, format="json")

    assert response.status_code == 200
    assert response.json()["amount"] == "1234.00"


@pytest.mark.parametrize(
    "field,value",
    [
        ("quantity", "-1"),
        ("quantity", "0"),
        ("unit_price", "-0.01"),
        ("discount_percent", "100.01"),
        ("tax_rate", "-5"),
    ],
)
def test_bad_line_input_is_a_400_on_the_field_and_writes_nothing(api_as, people, field, value):
    deal = _deal(people)
    body = {"description": "Line", "quantity": "1", "unit_price": "10", field: value}

    response = api_as("owner").post(url(f"opportunities/{deal.pk}/lines/"), body, format="json")

    assert response.status_code == 400
    assert field in response.json()
    assert not OpportunityLine.objects.exists()
    assert Opportunity.objects.get(pk=deal.pk).amount == deal.amount


def test_a_line_without_product_or_description_is_refused(api_as, people):
    response = api_as("owner").post(
        url(f"opportunities/{_deal(people).pk}/lines/"), {"unit_price": "1"}, format="json"
    )

    assert response.status_code == 400
    assert "description" in response.json()


def test_a_won_deals_lines_are_not_changed(api_as, people, stages):
    deal = _deal(people)
    Opportunity.objects.filter(pk=deal.pk).update(
        status="won", stage=stages["Won"], probability=100, closed_at="2026-01-01T00:00Z"
    )

    response = api_as("owner").post(
        url(f"opportunities/{deal.pk}/lines/"), {"description": "A", "unit_price": "1"}, format="json"
    )

    assert response.status_code == 409


def test_another_teams_deal_lines_are_not_found(api_as, people):
    deal = _deal(people, "outsider")

    assert api_as("owner").get(url(f"opportunities/{deal.pk}/lines/")).status_code == 404
    assert (
        api_as("owner")
        .post(url(f"opportunities/{deal.pk}/lines/"), {"description": "A", "unit_price": "1"}, format="json")
        .status_code
        == 404
    )


def _admin_form(deal, **lines):
    form = {
        "name": deal.name,
        "account": deal.account_id or "",
        "contact": "",
        "pipeline": deal.pipeline_id,
        "stage": deal.stage_id,
        "owner": deal.owner_id,
        "amount": str(deal.amount),
        "probability": deal.probability,
        "close_date": "",
        "opportunity_type": deal.opportunity_type,
        "priority": deal.priority,
        "description": "",
        "lead": "",
        "lines-TOTAL_FORMS": "0",
        "lines-INITIAL_FORMS": "0",
    }
    form.update(lines)
    return form


def _inline_forms(response_html: str) -> dict:
    """The management forms of the inlines on a change page (other apps add their own inlines)."""
    import re

    found = {}
    for prefix in re.findall(r'name="([\w-]+)-TOTAL_FORMS"', response_html):
        found[f"{prefix}-TOTAL_FORMS"] = "0"
        found[f"{prefix}-INITIAL_FORMS"] = "0"
    return found


def test_the_admin_edits_lines_inline_and_refuses_a_typed_amount(admin_as, people):
    deal = _deal(people)
    client = admin_as("owner")
    page = client.get(f"/admin/sales/opportunity/{deal.pk}/change/")
    assert page.status_code == 200
    form = _admin_form(deal, **_inline_forms(page.content.decode()))
    form.update(
        {
            "lines-TOTAL_FORMS": "1",
            "lines-0-description": "Consulting day",
            "lines-0-quantity": "3",
            "lines-0-unit_price": "800",
            "lines-0-discount_percent": "10",
            "lines-0-tax_rate": "20",
            "lines-0-position": "1",
        }
    )
    loaded = re.search(r'name="loaded_version" value="([^"]*)"', page.content.decode())
    form["loaded_version"] = loaded.group(1) if loaded else ""

    saved = client.post(f"/admin/sales/opportunity/{deal.pk}/change/", form)

    assert saved.status_code == 302, saved.content.decode()[:3000]
    deal.refresh_from_db()
    assert deal.amount == Decimal("2160.00")
    page = client.get(f"/admin/sales/opportunity/{deal.pk}/change/")
    form = _admin_form(deal, **_inline_forms(page.content.decode()))
    form["amount"] = "5.00"
    form["loaded_version"] = re.search(r'name="loaded_version" value="([^"]*)"', page.content.decode()).group(
        1
    )
    form["lines-INITIAL_FORMS"] = "1"
    form["lines-TOTAL_FORMS"] = "1"
    line = deal.lines.get()
    form.update(
        {
            "lines-0-id": line.pk,
            "lines-0-opportunity": deal.pk,
            "lines-0-description": line.description,
            "lines-0-quantity": "3",
            "lines-0-unit_price": "800.00",
            "lines-0-discount_percent": "10.00",
            "lines-0-tax_rate": "20.00",
            "lines-0-position": "1",
        }
    )

    refused = client.post(f"/admin/sales/opportunity/{deal.pk}/change/", form)

    assert refused.status_code == 200
    assert "amount is the total of its line items" in refused.content.decode()
    assert Opportunity.objects.get(pk=deal.pk).amount == Decimal("2160.00")
