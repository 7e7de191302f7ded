"""/accounts/ and /contacts/: CRUD, read aggregates, filters, search, ordering, protected deletes."""

from decimal import Decimal

import pytest

from crm.actors import SYSTEM
from crm.models import Account, Contact
from sales import services
from tests.api.conftest import url
from tests.factories import AccountFactory, ContactFactory, OpportunityFactory, TagFactory, UserFactory


def names(response, key="name") -> list[str]:
    assert response.status_code == 200, response.json()
    return [row[key] for row in response.json()["results"]]


# --- accounts -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_create_account(api, crm_admin):
    parent = AccountFactory(name="Holding")
    tag = TagFactory()

    response = api.post(
        url("accounts/"),
        {
            "name": "Acme",
            "website": "https://acme.test",
            "account_type": "customer",
            "industry": "technology",
            "rating": "hot",
            "employees": 50,
            "annual_revenue": "1000000",
            "billing_city": "Lyon",
            "parent_id": parent.pk,
            "tags": [tag.pk],
        },
    )

    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["name"], body["parent_id"], body["parent_name"], body["owner_id"]) == (
        "Acme",
        parent.pk,
        "Holding",
        crm_admin.pk,
    )
    assert (body["annual_revenue"], body["contact_count"], body["open_value"], body["won_value"]) == (
        "1000000.00",
        0,
        "0.00",
        "0.00",
    )
    account = Account.objects.get(name="Acme")
    assert (account.parent, account.industry, list(account.tags.all())) == (parent, "technology", [tag])


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "name"),
        ({"name": "x", "industry": "mining"}, "industry"),
        ({"name": "x", "account_type": "friend"}, "account_type"),
        ({"name": "x", "employees": -3}, "employees"),
        ({"name": "x", "annual_revenue": "-1"}, "annual_revenue"),
        ({"name": "x", "website": "not a url"}, "website"),
        ({"name": "x", "parent_id": 999999}, "parent_id"),
    ],
)
def test_create_account_bad_input(api, db, payload, field):
    response = api.post(url("accounts/"), payload)
    assert response.status_code == 400
    assert field in response.json()
    assert not Account.objects.exists()


@pytest.mark.django_db
def test_account_cannot_be_its_own_ancestor(api):
    parent = AccountFactory(name="Parent")
    child = AccountFactory(name="Child", parent=parent)

    response = api.patch(url(f"accounts/{parent.pk}/"), {"parent_id": child.pk})

    assert response.status_code == 400
    assert response.json() == {"parent_id": ["This parent would make the account hierarchy circular."]}


@pytest.mark.django_db
def test_account_read_aggregates(api, stages):
    account = AccountFactory()
    ContactFactory.create_batch(2, account=account)
    OpportunityFactory(account=account, amount=Decimal("100.50"))
    OpportunityFactory(account=account, amount=Decimal("200"))
    services.opportunity_mark_won(
        opportunity=OpportunityFactory(account=account, amount=Decimal("1000")), user=SYSTEM
    )

    body = api.get(url(f"accounts/{account.pk}/")).json()

    assert (body["contact_count"], body["opportunity_count"], body["open_value"], body["won_value"]) == (
        2,
        3,
        "300.50",
        "1000.00",
    )
    assert api.get(url("accounts/"), {"ordering": "-open_value"}).json()["results"][0]["id"] == account.pk


@pytest.mark.django_db
def test_update_and_delete_account(api):
    account = AccountFactory(name="Old")
    assert api.put(url(f"accounts/{account.pk}/"), {"name": "New"}).json()["name"] == "New"
    assert api.delete(url(f"accounts/{account.pk}/")).status_code == 204
    assert not Account.objects.exists()


@pytest.mark.django_db
def test_deleting_an_account_in_use_is_409_naming_the_users(api, stages):
    account = AccountFactory(name="Acme")
    ContactFactory(account=account)
    OpportunityFactory.create_batch(2, account=account)

    response = api.delete(url(f"accounts/{account.pk}/"))

    assert response.status_code == 409
    assert response.json() == {
        "detail": "Account “Acme” cannot be deleted: it is still used by 1 contact, 2 opportunities. Move or "
        "delete those first.",
        "code": "protected",
    }
    assert Account.objects.exists()


@pytest.mark.django_db
def test_account_filters_search_ordering(api):
    owner = UserFactory()
    tag = TagFactory()
    AccountFactory(name="Beta", account_type="customer", industry="finance", rating="hot", owner=owner)
    alpha = AccountFactory(
        name="Alpha", account_type="partner", industry="retail", rating="cold", billing_city="Oslo"
    )
    alpha.tags.add(tag)

    assert names(api.get(url("accounts/"), {"account_type": "customer"})) == ["Beta"]
    assert names(api.get(url("accounts/"), {"industry": "retail"})) == ["Alpha"]
    assert names(api.get(url("accounts/"), {"rating": "hot"})) == ["Beta"]
    assert names(api.get(url("accounts/"), {"owner": owner.pk})) == ["Beta"]
    assert names(api.get(url("accounts/"), {"tag": tag.pk})) == ["Alpha"]
    assert names(api.get(url("accounts/"), {"search": "oslo"})) == ["Alpha"]
    assert names(api.get(url("accounts/"))) == ["Alpha", "Beta"]
    assert names(api.get(url("accounts/"), {"ordering": "-name"})) == ["Beta", "Alpha"]
    assert api.get(url("accounts/"), {"industry": "mining"}).status_code == 400


# --- contacts -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_create_contact(api, crm_admin):
    account = AccountFactory(name="Acme")

    response = api.post(
        url("contacts/"),
        {
            "first_name": "Ann",
            "last_name": "Lee",
            "email": "ann@acme.test",
            "account_id": account.pk,
            "is_primary": True,
        },
    )

    assert response.status_code == 201, response.json()
    body = response.json()
    assert (
        body["full_name"],
        body["account_id"],
        body["account_name"],
        body["is_primary"],
        body["owner_id"],
    ) == (
        "Ann Lee",
        account.pk,
        "Acme",
        True,
        crm_admin.pk,
    )
    assert Contact.objects.get().account == account


@pytest.mark.django_db
def test_a_second_primary_contact_is_a_field_error(api):
    account = AccountFactory()
    ContactFactory(account=account, is_primary=True)

    response = api.post(url("contacts/"), {"first_name": "Bo", "account_id": account.pk, "is_primary": True})

    assert response.status_code == 400
    assert response.json() == {"is_primary": ["This account already has a primary contact."]}


@pytest.mark.django_db
def test_primary_contact_needs_an_account(api, db):
    response = api.post(url("contacts/"), {"first_name": "Bo", "is_primary": True})
    assert response.status_code == 400
    assert list(response.json()) == ["is_primary"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "first_name"),
        ({"first_name": "x", "email": "@@"}, "email"),
        ({"first_name": "x", "account_id": 0}, "account_id"),
    ],
)
def test_create_contact_bad_input(api, db, payload, field):
    response = api.post(url("contacts/"), payload)
    assert response.status_code == 400
    assert field in response.json()


@pytest.mark.django_db
def test_update_and_delete_contact(api):
    contact = ContactFactory(first_name="Ann")
    assert api.patch(url(f"contacts/{contact.pk}/"), {"do_not_call": True}).json()["do_not_call"] is True
    assert api.delete(url(f"contacts/{contact.pk}/")).status_code == 204
    assert not Contact.objects.exists()


@pytest.mark.django_db
def test_contact_filters_search_ordering(api):
    account = AccountFactory()
    ContactFactory(first_name="Ann", last_name="Lee", email="ann@acme.test", account=account)
    ContactFactory(first_name="Bob", last_name="Kay", phone="+44 20 7946 0000", is_active=False)
    ContactFactory(first_name="Cy", last_name="Ng", mobile="0700 123")

    assert names(api.get(url("contacts/"), {"account": account.pk}), "full_name") == ["Ann Lee"]
    assert names(api.get(url("contacts/"), {"is_active": "false"}), "full_name") == ["Bob Kay"]
    assert names(api.get(url("contacts/"), {"search": "ann lee"}), "full_name") == ["Ann Lee"]
    assert names(api.get(url("contacts/"), {"search": "ACME.TEST"}), "full_name") == ["Ann Lee"]
    assert names(api.get(url("contacts/"), {"search": "7946"}), "full_name") == ["Bob Kay"]
    assert names(api.get(url("contacts/"), {"search": "0700"}), "full_name") == ["Cy Ng"]
    assert names(api.get(url("contacts/")), "full_name") == ["Bob Kay", "Ann Lee", "Cy Ng"]
    assert names(api.get(url("contacts/"), {"ordering": "first_name"}), "full_name") == [
        "Ann Lee",
        "Bob Kay",
        "Cy Ng",
    ]
    assert api.get(url("contacts/"), {"is_active": "maybe"}).status_code == 400
