"""Issue 18: price-list prices import and export, matched on two columns (the list's name and the
product's SKU), through the API, the admin and the command line."""

import io
from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.urls import reverse

from crm.actors import SYSTEM
from crm.importing import import_file
from sales.models import PriceList, PriceListItem, Product
from tests.api.conftest import url
from tests.crm.importing_helpers import csv_bytes, read_csv, read_xlsx, xlsx_bytes
from tests.factories import ProductFactory

pytestmark = pytest.mark.django_db

IMPORT, EXPORT = url("price-list-items/import/"), url("price-list-items/export/")


@pytest.fixture
def catalogue():
    """Two lists in two currencies and two products, the retail list pricing the widget."""
    retail = PriceList.objects.create(name="Retail", currency="EUR")
    partners = PriceList.objects.create(name="Partners", currency="USD")
    widget = ProductFactory(sku="WID-1", name="Widget")
    gadget = ProductFactory(sku="GAD-1", name="Gadget")
    PriceListItem.objects.create(price_list=retail, product=widget, unit_price=Decimal("10.00"))
    return SimpleNamespace(retail=retail, partners=partners, widget=widget, gadget=gadget)


def post(client, content: bytes, name="prices.csv", **params):
    upload = io.BytesIO(content)
    upload.name = name
    return client.post(IMPORT, {"file": upload, **params}, format="multipart")


def prices() -> dict:
    return {
        (item.price_list.name, item.product.sku): item.unit_price
        for item in PriceListItem.objects.select_related("price_list", "product")
    }


def test_an_import_updates_prices_by_list_and_sku_and_adds_the_others(api_as, people, catalogue):
    before = PriceListItem.objects.get()
    content = csv_bytes(
        [
            ["Price List", "product", "unit_price"],
            ["retail", "wid-1", "12.50"],  # the stored price: list and SKU in any case
            ["Retail", "GAD-1", "4"],
            ["Partners", "WID-1", "9.99"],  # the same product in another list is another price
        ]
    )

    response = post(api_as("crm_admin"), content)

    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["new"], body["updated"], body["unchanged"], body["row_errors"]) == (2, 1, 0, [])
    assert prices() == {
        ("Retail", "WID-1"): Decimal("12.50"),
        ("Retail", "GAD-1"): Decimal("4.00"),
        ("Partners", "WID-1"): Decimal("9.99"),
    }
    assert (
        PriceListItem.objects.get(price_list=catalogue.retail, product=catalogue.widget).pk == before.pk
    )  # updated in place


def test_an_unchanged_price_and_an_empty_cell_change_nothing(api_as, people, catalogue):
    content = csv_bytes([["price_list", "product", "unit_price"], ["Retail", "WID-1", "10"]])

    first = post(api_as("crm_admin"), content).json()
    empty = post(
        api_as("crm_admin"), csv_bytes([["price_list", "product", "unit_price"], ["Retail", "WID-1", ""]])
    )

    assert (first["new"], first["updated"], first["unchanged"]) == (0, 0, 1)
    assert empty.status_code == 200 and empty.json()["unchanged"] == 1
    assert prices() == {("Retail", "WID-1"): Decimal("10.00")}


def test_every_bad_row_is_reported_and_nothing_is_written(api_as, people, catalogue):
    content = csv_bytes(
        [
            ["price_list", "product", "unit_price"],
            ["Retail", "WID-1", "11"],  # a good row: not written either
            ["Retail", "NOPE-9", "5"],  # unknown SKU
            ["Wholesale", "GAD-1", "5"],  # unknown price list
            ["Partners", "GAD-1", "-1"],  # negative price
            ["partners", "wid-1", "3"],
            ["Partners", "WID-1", "4"],  # the list and SKU of row 6 again
            ["Partners", "GAD-1", ""],  # a new price without a price
            ["", "GAD-1", "2"],  # no list
        ]
    )

    response = post(api_as("crm_admin"), content)

    assert response.status_code == 400
    errors = {(e["row"], e["column"]): (e["value"], e["message"]) for e in response.json()["row_errors"]}
    assert errors == {
        (3, "product"): ("NOPE-9", "No product has the SKU “NOPE-9”."),
        (4, "price_list"): ("Wholesale", "No price list is named “Wholesale”."),
        (5, "unit_price"): ("-1", "Cannot be negative."),
        (7, "price_list and product"): (
            "Partners / WID-1",
            "Row 6 has the same price_list and product: a file may name each record once.",
        ),
        (8, "unit_price"): ("", "A new price needs a unit price."),
        (9, "price_list"): ("", "This column is required."),
    }
    assert prices() == {("Retail", "WID-1"): Decimal("10.00")}


def test_a_dry_run_counts_and_writes_nothing(api_as, people, catalogue):
    content = csv_bytes([["price_list", "product", "unit_price"], ["Partners", "GAD-1", "7"]])

    response = post(api_as("crm_admin"), content, dry_run="true")

    assert response.status_code == 200
    assert (response.json()["new"], response.json()["committed"]) == (1, False)
    assert PriceListItem.objects.count() == 1


def test_a_missing_key_column_is_a_file_error(api_as, people, catalogue):
    response = post(api_as("crm_admin"), csv_bytes([["product", "unit_price"], ["WID-1", "3"]]))

    assert response.status_code == 400
    assert response.json()["file_errors"] == ["Required column missing: price_list."]


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_an_export_imports_back_unchanged(api_as, people, catalogue, fmt):
    PriceListItem.objects.create(
        price_list=catalogue.partners, product=catalogue.gadget, unit_price=Decimal("1")
    )
    client = api_as("crm_admin")

    exported = client.get(EXPORT, {"format": fmt, "price_list": catalogue.partners.pk})

    assert exported.status_code == 200
    if fmt == "csv":
        rows = read_csv(exported.content)
        assert [(r["price_list"], r["product"], r["unit_price"]) for r in rows] == [
            ("Partners", "GAD-1", "1.00")
        ]
        assert list(rows[0]) == ["id", "price_list", "product", "unit_price", "created_at", "updated_at"]
    else:
        header, rows = read_xlsx(exported.content)
        assert header == ["id", "price_list", "product", "unit_price", "created_at", "updated_at"]
        assert [(r[1].value, r[2].value, r[3].value) for r in rows] == [("Partners", "GAD-1", 1)]
    again = post(client, exported.content, name=f"prices.{fmt}")
    assert again.status_code == 200, again.json()
    assert (again.json()["unchanged"], again.json()["new"], again.json()["updated"]) == (1, 0, 0)


def test_an_xlsx_import_reads_numbers_and_names(api_as, people, catalogue):
    content = xlsx_bytes([["price_list", "product", "unit_price"], ["Partners", "GAD-1", 2.5]])

    response = post(api_as("crm_admin"), content, name="prices.xlsx")

    assert response.status_code == 200, response.json()
    assert prices()[("Partners", "GAD-1")] == Decimal("2.50")


def test_a_rep_reads_prices_but_cannot_import_them(api_as, people, catalogue):
    client = api_as("owner")

    listed = client.get(url("price-list-items/"), {"search": "wid"})
    refused = post(client, csv_bytes([["price_list", "product", "unit_price"], ["Retail", "WID-1", "1"]]))

    assert listed.status_code == 200
    assert [
        (r["price_list_name"], r["product_sku"], r["unit_price"], r["currency"])
        for r in listed.json()["results"]
    ] == [("Retail", "WID-1", "10.00", "EUR")]
    assert refused.status_code == 403
    assert prices() == {("Retail", "WID-1"): Decimal("10.00")}


def test_the_prices_list_costs_a_fixed_number_of_queries(
    api_as, people, catalogue, django_assert_max_num_queries
):
    client = api_as("crm_admin")
    client.get(url("price-list-items/"))  # warm-up
    with django_assert_max_num_queries(20) as few:
        assert client.get(url("price-list-items/")).json()["count"] == 1
    for n in range(12):
        PriceListItem.objects.create(price_list=catalogue.partners, product=ProductFactory(), unit_price=n)
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert client.get(url("price-list-items/")).json()["count"] == 13


@pytest.fixture
def upload_dir_of_the_test(settings, tmp_path):
    settings.CRM_IMPORT_TMP_DIR = str(tmp_path / "uploads")


def test_the_admin_previews_then_imports_and_exports_prices(
    admin_as, people, catalogue, upload_dir_of_the_test, django_assert_max_num_queries
):
    client = admin_as("crm_admin")
    content = csv_bytes(
        [["price_list", "product", "unit_price"], ["Retail", "WID-1", "15"], ["Partners", "GAD-1", "3"]]
    )

    page = client.get(reverse("admin:sales_pricelistitem_import")).content.decode()
    preview = client.post(
        reverse("admin:sales_pricelistitem_import"), {"file": SimpleUploadedFile("prices.csv", content)}
    )

    assert "found by <strong>price_list and product</strong>" in page
    result = preview.context["result"]
    assert [(row.row, row.action, row.label) for row in result.preview] == [
        (2, "updated", "Retail / WID-1"),
        (3, "new", "Partners / GAD-1"),
    ]
    assert PriceListItem.objects.count() == 1
    confirm = client.post(
        reverse("admin:sales_pricelistitem_import_confirm"), {"token": preview.context["token"]}, follow=True
    )
    assert "1 created, 1 updated, 0 unchanged" in confirm.content.decode()
    assert prices() == {("Retail", "WID-1"): Decimal("15.00"), ("Partners", "GAD-1"): Decimal("3.00")}

    changelist = reverse("admin:sales_pricelistitem_changelist")
    client.get(changelist)  # warm-up
    with django_assert_max_num_queries(60) as few:
        assert client.get(changelist).status_code == 200
    for n in range(10):
        PriceListItem.objects.create(price_list=catalogue.partners, product=ProductFactory(), unit_price=n)
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert client.get(changelist).status_code == 200
    exported = client.get(reverse("admin:sales_pricelistitem_export") + "?format=xlsx&q=GAD-1")
    _, rows = read_xlsx(exported.content)
    assert [(r[1].value, r[2].value) for r in rows] == [("Partners", "GAD-1")]


def test_the_command_line_imports_prices(catalogue, tmp_path, capsys):
    path = tmp_path / "prices.csv"
    path.write_bytes(csv_bytes([["price_list", "product", "unit_price"], ["Partners", "WID-1", "8"]]))

    call_command("crm_import", "price-list-items", str(path))

    assert prices()[("Partners", "WID-1")] == Decimal("8.00")


def test_a_file_of_prices_spanning_many_key_queries_matches_each_stored_price(catalogue):
    """More keys than one query carries (about 500 on SQLite, 2,500 on PostgreSQL): each stored price
    is matched once, whichever query finds it, and the others are created."""
    products = Product.objects.bulk_create(
        [Product(sku=f"BULK-{n:05d}", name=f"Bulk {n}") for n in range(1300)]
    )
    PriceListItem.objects.bulk_create(
        [PriceListItem(price_list=catalogue.retail, product=p, unit_price=1) for p in products[::2]]
    )
    rows = [["price_list", "product", "unit_price"]]
    rows += [[name, p.sku, "2"] for p in products for name in ("Retail", "Partners")]

    result = import_file(kind="price-list-items", data=csv_bytes(rows), filename="prices.csv", user=SYSTEM)

    assert result.ok, result.errors[:3]
    assert (result.new, result.updated) == (1950, 650)
    assert PriceListItem.objects.filter(unit_price=2).count() == 2600
