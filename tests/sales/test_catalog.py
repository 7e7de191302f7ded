"""Products and price lists: API, admin, import and export, and who may change them."""

import io
from decimal import Decimal

import pytest

from sales.models import PriceList, Product
from tests.api.conftest import url
from tests.factories import ProductFactory

pytestmark = pytest.mark.django_db


def test_a_crm_admin_creates_a_product(api_as, people):
    response = api_as("crm_admin").post(
        url("products/"),
        {"sku": "WID-1", "name": "Widget", "unit_price": "12.50", "tax_rate": "20", "category": "Hardware"},
        format="json",
    )

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["currency"] == "USD"  # settings.CRM_CURRENCY
    assert (body["sku"], body["unit_price"], body["tax_rate"], body["is_active"]) == (
        "WID-1",
        "12.50",
        "20.00",
        True,
    )
    assert Product.objects.get(sku="WID-1").name == "Widget"


@pytest.mark.parametrize(
    "field,value",
    [("unit_price", "-1.00"), ("tax_rate", "120"), ("currency", "euro"), ("sku", "wid-1")],
)
def test_bad_product_input_is_a_400_on_the_field(api_as, people, field, value):
    ProductFactory(sku="WID-1")
    body = {"sku": "NEW-1", "name": "New", "unit_price": "1.00", field: value}

    response = api_as("crm_admin").post(url("products/"), body, format="json")

    assert response.status_code == 400
    assert field in response.json()
    assert Product.objects.count() == 1


def test_a_rep_reads_products_but_does_not_change_them(api_as, people):
    product = ProductFactory(sku="WID-1")
    rep = api_as("owner")

    assert rep.get(url("products/")).json()["count"] == 1
    assert rep.patch(url(f"products/{product.pk}/"), {"name": "Mine"}, format="json").status_code == 403
    assert rep.post(url("products/"), {"sku": "X", "name": "X"}, format="json").status_code == 403


def test_a_price_list_carries_a_price_per_product(api_as, people):
    widget, gadget = ProductFactory(sku="WID-1"), ProductFactory(sku="GAD-1")
    client = api_as("crm_admin")

    created = client.post(
        url("price-lists/"),
        {
            "name": "Europe",
            "currency": "EUR",
            "items": [
                {"product_id": widget.pk, "unit_price": "9.90"},
                {"product_id": gadget.pk, "unit_price": "19.00"},
            ],
        },
        format="json",
    )
    assert created.status_code == 201, created.json()
    price_list = PriceList.objects.get(name="Europe")
    assert {(i.product.sku, i.unit_price) for i in price_list.items.all()} == {
        ("WID-1", Decimal("9.90")),
        ("GAD-1", Decimal("19.00")),
    }

    changed = client.patch(
        url(f"price-lists/{price_list.pk}/"),
        {"items": [{"product_id": widget.pk, "unit_price": "8.00"}]},
        format="json",
    )
    assert changed.status_code == 200, changed.json()
    assert changed.json()["items"] == [
        {"product_id": widget.pk, "product_sku": "WID-1", "product_name": widget.name, "unit_price": "8.00"}
    ]


def test_a_negative_list_price_is_refused_and_nothing_is_written(api_as, people):
    widget = ProductFactory(sku="WID-1")

    response = api_as("crm_admin").post(
        url("price-lists/"),
        {"name": "Bad", "currency": "EUR", "items": [{"product_id": widget.pk, "unit_price": "-2"}]},
        format="json",
    )

    assert response.status_code == 400
    assert "items" in response.json()
    assert not PriceList.objects.exists()


def test_products_import_by_sku_and_export_back(api_as, people):
    ProductFactory(sku="WID-1", name="Old name", unit_price=5)
    client = api_as("crm_admin")
    data = (
        "sku,name,unit_price,currency,tax_rate,category\n"
        "wid-1,Widget,7.25,USD,20,Hardware\n"
        "GAD-1,Gadget,3,EUR,5.5,\n"
    )
    upload = io.BytesIO(data.encode())
    upload.name = "products.csv"

    response = client.post(url("products/import/"), {"file": upload}, format="multipart")

    assert response.status_code == 200, response.json()
    assert (response.json()["new"], response.json()["updated"]) == (1, 1)
    widget = Product.objects.get(sku__iexact="WID-1")  # matched ignoring case, its SKU as the file writes it
    assert (widget.sku, widget.name, widget.unit_price) == ("wid-1", "Widget", Decimal("7.25"))
    assert Product.objects.get(sku="GAD-1").currency == "EUR"
    exported = client.get(url("products/export/"), {"format": "csv"})
    assert exported.status_code == 200
    text = exported.content.decode().lstrip("\ufeff")
    assert text.splitlines()[0].startswith("id,sku,name,description,category,unit_price,currency,tax_rate")
    assert "GAD-1,Gadget" in text


def test_a_product_import_with_a_bad_row_writes_nothing(api_as, people):
    upload = io.BytesIO(b"sku,name,unit_price,tax_rate\nA-1,Fine,1,20\nB-1,Bad,-4,20\nC-1,Worse,1,101\n")
    upload.name = "products.csv"

    response = api_as("crm_admin").post(url("products/import/"), {"file": upload}, format="multipart")

    assert response.status_code == 400
    assert {(e["row"], e["column"]) for e in response.json()["row_errors"]} == {
        (3, "unit_price"),
        (4, "tax_rate"),
    }
    assert not Product.objects.exists()


def test_the_admin_edits_a_price_list_with_its_prices(admin_as, people):
    widget = ProductFactory(sku="WID-1")
    client = admin_as("crm_admin")

    response = client.post(
        "/admin/sales/pricelist/add/",
        {
            "name": "Retail",
            "currency": "USD",
            "description": "",
            "is_active": "on",
            "items-TOTAL_FORMS": "1",
            "items-INITIAL_FORMS": "0",
            "items-0-product": widget.pk,
            "items-0-unit_price": "11.00",
        },
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    assert PriceList.objects.get(name="Retail").items.get().unit_price == Decimal("11.00")
    assert client.get("/admin/sales/product/").status_code == 200
    assert client.get("/admin/sales/product/export/?format=csv").status_code == 200
