"""The account hierarchy: a tree of subsidiaries with each one's open and won value and the roll-up of
the group, counting only the deals the reader sees; one query whatever the size of the tree."""

import datetime
import json
from decimal import Decimal

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from sales.api.operations import HierarchySerializer
from sales.hierarchy import account_hierarchy
from tests.factories import AccountFactory, OpportunityFactory

D = Decimal


def won(account, amount, owner, stages):
    return OpportunityFactory(
        account=account,
        amount=D(amount),
        owner=owner,
        stage=stages["Won"],
        status="won",
        probability=100,
        closed_at=timezone.now(),
        close_date=datetime.date(2026, 3, 1),
    )


def open_deal(account, amount, owner, stages):
    return OpportunityFactory(account=account, amount=D(amount), owner=owner, stage=stages["New"])


@pytest.fixture
def group(people, stages):
    """Holding → (Europe → France), (Asia). Europe and France are the West team's; Asia's deal is East's."""
    users = people.users
    holding = AccountFactory(name="Holding", owner=users["owner"])
    europe = AccountFactory(name="Europe", parent=holding, owner=users["owner"])
    france = AccountFactory(name="France", parent=europe, owner=users["teammate"])
    asia = AccountFactory(name="Asia", parent=holding, owner=users["outsider"])
    open_deal(holding, "100", users["owner"], stages)
    won(europe, "200", users["owner"], stages)
    open_deal(france, "300", users["teammate"], stages)
    won(france, "50", users["teammate"], stages)
    won(asia, "400", users["outsider"], stages)  # another team's: the West does not count it
    return {"holding": holding, "europe": europe, "france": france, "asia": asia}


def by_name(tree):
    return {node["name"]: node for node in tree["nodes"]}


def test_three_level_roll_up_for_the_manager_leaves_out_another_teams_deals(group, people):
    tree = account_hierarchy(user=people.users["manager"], account=group["holding"])

    assert [(n["name"], n["depth"]) for n in tree["nodes"]] == [
        ("Holding", 0),
        ("Asia", 1),
        ("Europe", 1),
        ("France", 2),
    ]
    nodes = by_name(tree)
    assert (nodes["France"]["open_value"], nodes["France"]["won_value"]) == (D("300.00"), D("50.00"))
    assert nodes["Europe"]["rollup"] == {
        "open_count": 1,
        "open_value": D("300.00"),
        "won_count": 2,
        "won_value": D("250.00"),  # Europe 200 + France 50
        "accounts": 2,
    }
    assert (nodes["Asia"]["won_value"], nodes["Asia"]["rollup"]["won_value"]) == (D("0.00"), D("0.00"))
    assert tree["rollup"] == {
        "open_count": 2,
        "open_value": D("400.00"),  # Holding 100 + France 300
        "won_count": 2,
        "won_value": D("250.00"),  # Asia's 400 is East's: not counted
        "accounts": 4,
    }


def test_a_rep_counts_only_their_own_deals_and_a_crm_admin_everything(group, people):
    rep = account_hierarchy(user=people.users["owner"], account=group["holding"])
    assert (rep["rollup"]["open_value"], rep["rollup"]["won_value"]) == (D("100.00"), D("200.00"))
    everything = account_hierarchy(user=people.users["crm_admin"], account=group["holding"])
    assert (everything["rollup"]["open_value"], everything["rollup"]["won_value"]) == (
        D("400.00"),
        D("650.00"),
    )


def test_a_subtree_starts_at_its_account(group, people):
    tree = account_hierarchy(user=people.users["crm_admin"], account=group["europe"])
    assert [n["name"] for n in tree["nodes"]] == ["Europe", "France"]
    assert tree["parent_id"] == group["holding"].pk
    assert tree["rollup"]["accounts"] == 2


def test_the_api_answers_the_tree(group, people):
    client = APIClient()
    client.force_authenticate(people.users["manager"])
    response = client.get(f"/api/v1/crm/accounts/{group['holding'].pk}/hierarchy/")
    assert response.status_code == 200
    body = response.json()
    assert body["rollup"] == {
        "open_count": 2,
        "open_value": "400.00",
        "won_count": 2,
        "won_value": "250.00",
        "accounts": 4,
    }
    assert body["currency"] == "USD"
    # Built without a serializer per node, in the shape the schema documents.
    documented = HierarchySerializer(
        account_hierarchy(user=people.users["manager"], account=group["holding"])
    )
    assert body == json.loads(json.dumps(documented.data))
    assert client.get("/api/v1/crm/accounts/999999/hierarchy/").status_code == 404


def test_the_admin_page_is_linked_from_the_account(group, admin_as):
    client = admin_as("manager")
    account_page = client.get(f"/admin/crm/account/{group['holding'].pk}/change/").content.decode()
    link = f"/admin/sales/opportunity/account-hierarchy/{group['holding'].pk}/"
    assert link in account_page
    page = client.get(link)
    assert page.status_code == 200
    html = page.content.decode()
    assert "France" in html and "$400" in html
    assert client.get("/admin/sales/opportunity/account-hierarchy/abc/").status_code == 404


@pytest.mark.parametrize("size", [5, 60])
def test_one_query_whatever_the_size_of_the_tree(people, stages, size, django_assert_num_queries):
    root = AccountFactory(name="Root")
    parent = root
    for index in range(size):
        # Half deep, half wide.
        child = AccountFactory(name=f"Sub {index}", parent=parent if index % 2 else root)
        open_deal(child, "10", None, stages)
        parent = child
    user = people.users["crm_admin"]
    account_hierarchy(user=user, account=root)  # warm-up: the user's groups
    with django_assert_num_queries(1):
        tree = account_hierarchy(user=user, account=root)
    assert tree["rollup"]["accounts"] == size + 1
    assert tree["rollup"]["open_value"] == D(10 * size).quantize(D("0.01"))
