"""The product, price-list and quote lists, a deal's lines and the quote changelist cost the same number
of queries for 2 records as for 12."""

import pytest

from crm.actors import SYSTEM
from sales import services_catalog, services_quotes
from tests.api.conftest import url
from tests.factories import OpportunityFactory, ProductFactory

pytestmark = pytest.mark.django_db


def add(n: int, stages, owner):
    """n products, price lists, quotes (of deals with two lines each) and lines on one deal."""
    deal = OpportunityFactory(stage=stages["New"], owner=owner, name="Many lines")
    for _ in range(n):
        product = ProductFactory()
        services_catalog.price_list_create(
            user=SYSTEM, data={"name": f"List {product.sku}"}, items=[{"product": product, "unit_price": 5}]
        )
        other = OpportunityFactory(stage=stages["New"], owner=owner)
        for rate in (5, 20):
            services_quotes.opportunity_line_create(
                opportunity=other, user=SYSTEM, data={"product": product, "tax_rate": rate}
            )
        services_quotes.quote_create(opportunity=other, user=SYSTEM)
        services_quotes.opportunity_line_create(opportunity=deal, user=SYSTEM, data={"product": product})
    return deal


@pytest.mark.parametrize("path", ["products/", "price-lists/", "quotes/", "lines"])
def test_api_lists_cost_a_fixed_number_of_queries(
    api_as, people, stages, django_assert_max_num_queries, path
):
    owner = people.users["owner"]
    client = api_as("owner")

    def get(deal):
        target = url(f"opportunities/{deal.pk}/lines/") if path == "lines" else url(path)
        return client.get(target, {"page_size": 50} if path != "lines" else {})

    deal = add(2, stages, owner)
    get(deal)  # warm up (permissions, content types)
    with django_assert_max_num_queries(50) as few:
        assert get(deal).status_code == 200
    deal = add(10, stages, owner)
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = get(deal)
    assert response.status_code == 200


def test_the_quote_changelist_costs_a_fixed_number_of_queries(
    admin_as, people, stages, django_assert_max_num_queries
):
    client = admin_as("owner")
    add(2, stages, people.users["owner"])
    client.get("/admin/sales/quote/")
    with django_assert_max_num_queries(80) as few:
        assert client.get("/admin/sales/quote/").status_code == 200
    add(10, stages, people.users["owner"])
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert client.get("/admin/sales/quote/").status_code == 200
