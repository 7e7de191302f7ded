"""One visibility rule for every read, one change rule for every write (issue 14, item 2): merges,
conversions and relation fields check the acting user's right to see and change every record they
touch, at every door (API, admin, services); aggregates, messages and exports say nothing about
records the viewer cannot see."""

import csv
import io

import pytest
from django.contrib.messages import get_messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse

from activities import services as activity_services
from crm.merging import record_merge
from crm.models import Account, Contact, Lead
from sales import services as sales_services
from sales.models import Opportunity
from tests.api.conftest import url
from tests.factories import AccountFactory, ActivityFactory, ContactFactory, LeadFactory
from tests.security.test_access_api import import_csv

pytestmark = pytest.mark.django_db

SHARED = {"contacts": "contact", "accounts": "account"}


def admin_url(label, name, *args):
    app, model = label.split(".")
    return reverse(f"admin:{app}_{model}_{name}", args=args)


def messages_of(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


# --- finding 2: a merge needs the right to change every record merged ----------------------------


@pytest.mark.parametrize("resource", SHARED)
def test_api_merge_refuses_another_teams_record_for_a_manager(people, api_as, resource):
    """Issue 14 finding 2: a Sales Manager may not merge (and delete) another team's contact/account."""
    kind = SHARED[resource]
    own = getattr(people.records["owner"], kind)
    foreign = getattr(people.records["outsider"], kind)

    response = api_as("manager").post(
        url(f"{resource}/merge/"), {"ids": [own.pk, foreign.pk], "survivor_id": own.pk}, format="json"
    )

    assert response.status_code == 403, response.content
    assert type(own).objects.filter(pk__in=[own.pk, foreign.pk]).count() == 2


@pytest.mark.parametrize("resource", SHARED)
def test_api_merge_refuses_another_teams_survivor_too(people, api_as, resource):
    """Issue 14 finding 2: the survivor is changed by a merge, so it must be changeable as well."""
    kind = SHARED[resource]
    own = getattr(people.records["owner"], kind)
    foreign = getattr(people.records["outsider"], kind)

    response = api_as("manager").post(
        url(f"{resource}/merge/"), {"ids": [own.pk, foreign.pk], "survivor_id": foreign.pk}, format="json"
    )

    assert response.status_code == 403, response.content
    assert type(own).objects.filter(pk__in=[own.pk, foreign.pk]).count() == 2


@pytest.mark.parametrize("label", ["crm.contact", "crm.account"])
def test_admin_merge_refuses_another_teams_record_for_a_manager(people, admin_as, label):
    """Issue 14 finding 2 (admin action): a message, and nothing merged or deleted."""
    kind = label.split(".")[1]
    own = getattr(people.records["owner"], kind)
    foreign = getattr(people.records["outsider"], kind)
    selection = {"action": "merge_selected", "_selected_action": [own.pk, foreign.pk]}

    response = admin_as("manager").post(
        admin_url(label, "changelist"), {**selection, "apply": "1", "survivor": own.pk}, follow=True
    )

    assert response.status_code == 200
    assert any("owner's team" in m for m in messages_of(response)), messages_of(response)
    assert type(own).objects.filter(pk__in=[own.pk, foreign.pk]).count() == 2


def test_a_manager_still_merges_their_teams_contacts(people, api_as):
    """Issue 14 finding 2: the team's own records merge as before."""
    mine = people.records["owner"].contact
    theirs = people.records["teammate"].contact

    response = api_as("manager").post(
        url("contacts/merge/"), {"ids": [mine.pk, theirs.pk], "survivor_id": mine.pk}, format="json"
    )

    assert response.status_code == 200, response.content
    assert not Contact.objects.filter(pk=theirs.pk).exists()


def test_record_merge_service_refuses_a_record_the_user_may_not_change(people):
    """Issue 14 finding 2 (the service every door calls)."""
    own, foreign = people.records["owner"].account, people.records["outsider"].account
    with pytest.raises(PermissionDenied):
        record_merge(records=[own, foreign], survivor=own, user=people.users["manager"])
    assert Account.objects.filter(pk__in=[own.pk, foreign.pk]).count() == 2


# --- finding 4: convert links only contacts and accounts the user may change ----------------------


@pytest.fixture
def foreign_contact(people):
    """Another team's contact without an account: a conversion linking it would set its account."""
    return ContactFactory(first_name="Theirs", owner=people.users["outsider"], account=None)


def test_api_convert_refuses_another_teams_contact(people, api_as, foreign_contact):
    """Issue 14 finding 4: contact_id of another team's contact is refused, the contact unchanged."""
    lead = people.records["owner"].lead
    account = people.records["owner"].account
    client = api_as("owner")
    # The same user may not change that contact directly either.
    patch = client.patch(url(f"contacts/{foreign_contact.pk}/"), {"account_id": account.pk}, format="json")
    assert patch.status_code == 403

    response = client.post(
        url(f"leads/{lead.pk}/convert/"),
        {"contact_id": foreign_contact.pk, "account_id": account.pk},
        format="json",
    )

    assert response.status_code == 400, response.content
    assert "contact_id" in response.json()
    foreign_contact.refresh_from_db()
    assert foreign_contact.account_id is None
    lead.refresh_from_db()
    assert lead.status == "open"
    assert not Opportunity.objects.filter(lead=lead).exists()


def test_api_convert_refuses_another_teams_account(people, api_as):
    """Issue 14 finding 4: account_id of an account the user's team may not change is refused."""
    lead = people.records["owner"].lead
    foreign = people.records["outsider"].account

    response = api_as("owner").post(
        url(f"leads/{lead.pk}/convert/"), {"account_id": foreign.pk, "create_contact": False}, format="json"
    )

    assert response.status_code == 400, response.content
    assert "account_id" in response.json()
    lead.refresh_from_db()
    assert lead.status == "open"
    assert not Opportunity.objects.filter(account=foreign).exclude(owner=people.users["outsider"]).exists()


def test_api_convert_refuses_to_change_another_teams_contact_found_by_email(people, api_as, foreign_contact):
    """Issue 14 finding 4: the contact reused for the lead's email would get the account: refused too."""
    lead = people.records["owner"].lead
    Lead.objects.filter(pk=lead.pk).update(email=foreign_contact.email, company_name="")
    account = people.records["owner"].account

    response = api_as("owner").post(
        url(f"leads/{lead.pk}/convert/"), {"account_id": account.pk}, format="json"
    )

    assert response.status_code == 400, response.content
    assert "create_contact" in response.json()
    foreign_contact.refresh_from_db()
    assert foreign_contact.account_id is None


def test_api_convert_links_the_teams_own_contact(people, api_as):
    """Issue 14 finding 4: a contact of the user's team is linked (and joins the account) as before."""
    lead = people.records["owner"].lead
    account = people.records["owner"].account
    contact = ContactFactory(owner=people.users["teammate"], account=None)

    response = api_as("owner").post(
        url(f"leads/{lead.pk}/convert/"), {"contact_id": contact.pk, "account_id": account.pk}, format="json"
    )

    assert response.status_code == 200, response.content
    contact.refresh_from_db()
    assert contact.account_id == account.pk


def test_admin_convert_refuses_another_teams_contact(people, admin_as, foreign_contact):
    """Issue 14 finding 4 (admin convert page): a form error on the contact, nothing changed."""
    lead = people.records["owner"].lead
    account = people.records["owner"].account

    response = admin_as("owner").post(
        reverse("admin:crm_lead_convert", args=[lead.pk]),
        {
            "account_action": "existing",
            "account": account.pk,
            "contact_action": "existing",
            "contact": foreign_contact.pk,
            "create_opportunity": "on",
            "opportunity_name": "Deal",
        },
    )

    assert response.status_code == 200
    assert "contact" in response.context["form"].errors
    foreign_contact.refresh_from_db()
    assert foreign_contact.account_id is None
    lead.refresh_from_db()
    assert lead.status == "open"


# --- finding 5: an opportunity links only a lead its user sees ------------------------------------


def opportunity_form(**overrides):
    data = {
        "name": "Sneaky",
        "amount": "100",
        "opportunity_type": "new_business",
        "priority": "medium",
        "activities-TOTAL_FORMS": "0",
        "activities-INITIAL_FORMS": "0",
        "consents-TOTAL_FORMS": "0",
        "consents-INITIAL_FORMS": "0",
        "channel_preferences-TOTAL_FORMS": "0",
        "channel_preferences-INITIAL_FORMS": "0",
    }
    data.update(overrides)
    return data


def test_admin_opportunity_form_refuses_a_lead_the_user_cannot_see(people, admin_as):
    """Issue 14 finding 5: a crafted lead id is a form error; the lead stays unlinked and convertible."""
    hidden = people.records["owner"].lead
    client = admin_as("outsider")

    response = client.post(
        admin_url("sales.opportunity", "add"),
        opportunity_form(lead=hidden.pk, owner=people.users["outsider"].pk),
    )

    assert response.status_code == 200
    assert "lead" in response.context["adminform"].form.errors
    assert not Opportunity.objects.filter(lead=hidden).exists()


def test_admin_opportunity_lead_autocomplete_offers_visible_leads_only(people, admin_as):
    """Issue 14 finding 5: the lead field's autocomplete lists only leads the user sees."""
    response = admin_as("outsider").get(
        reverse("admin:autocomplete"),
        {"app_label": "sales", "model_name": "opportunity", "field_name": "lead", "term": ""},
    )
    assert response.status_code == 200
    ids = {int(row["id"]) for row in response.json()["results"]}
    assert people.records["owner"].lead.pk not in ids
    assert people.records["outsider"].lead.pk in ids


def test_opportunity_services_refuse_a_lead_the_user_cannot_see(people):
    """Issue 14 finding 5 (the services every door calls): create and update alike."""
    hidden = people.records["owner"].lead
    outsider = people.users["outsider"]
    with pytest.raises(ValidationError) as create_error:
        sales_services.opportunity_create(user=outsider, data={"name": "x", "amount": 1, "lead": hidden})
    assert "lead" in create_error.value.message_dict
    deal = people.records["outsider"].opportunity
    with pytest.raises(ValidationError) as update_error:
        sales_services.opportunity_update(opportunity=deal, user=outsider, data={"lead": hidden})
    assert "lead" in update_error.value.message_dict
    assert not Opportunity.objects.filter(lead=hidden).exists()


def test_api_opportunity_lead_id_cannot_link_a_hidden_lead(people, api_as):
    """Issue 14 finding 5 (API): ``lead_id`` is read-only, so a hidden lead is never linked."""
    hidden = people.records["owner"].lead
    deal = people.records["outsider"].opportunity

    response = api_as("outsider").patch(
        url(f"opportunities/{deal.pk}/"), {"lead_id": hidden.pk}, format="json"
    )

    assert response.status_code == 200, response.content  # lead_id is read-only: ignored
    assert not Opportunity.objects.filter(lead=hidden).exists()


def test_activity_services_refuse_links_the_user_cannot_see(people):
    """Issue 14 item 2: an activity links only a lead or deal its author sees, whatever the door."""
    outsider = people.users["outsider"]
    for field, record in (
        ("lead", people.records["owner"].lead),
        ("opportunity", people.records["owner"].opportunity),
    ):
        with pytest.raises(ValidationError) as error:
            activity_services.activity_create(
                user=outsider, data={"subject": "Peek", "activity_type": "call", field: record}
            )
        assert field in error.value.message_dict
        activity = people.records["outsider"].activity
        with pytest.raises(ValidationError):
            activity_services.activity_update(activity=activity, user=outsider, data={field: record})


# --- finding 6: aggregates, messages and exports say nothing about what the viewer cannot see ------


@pytest.mark.parametrize(
    "persona,count,open_value",
    [("owner", 1, "1000.00"), ("outsider", 0, "0.00"), ("crm_admin", 1, "1000.00")],
)
def test_api_account_aggregates_count_only_visible_deals(people, api_as, persona, count, open_value):
    """Issue 14 finding 6: an account's opportunity count and values sum only deals the reader sees."""
    account = people.records["owner"].account

    row = api_as(persona).get(url(f"accounts/{account.pk}/")).json()

    assert row["opportunity_count"] == count
    assert row["open_value"] == open_value


def test_admin_account_list_counts_only_visible_deals(people, admin_as):
    """Issue 14 finding 6 (admin changelist): the outsider's list shows 0 deals on the owner's account."""
    account = people.records["owner"].account
    client = admin_as("outsider")

    response = client.get(admin_url("crm.account", "changelist"), {"q": account.name})

    rows = list(response.context["cl"].result_list)
    assert [r.pk for r in rows] == [account.pk]
    assert (rows[0].opportunity_count, rows[0].open_value) == (0, 0)


def test_an_import_error_does_not_name_another_teams_record_id(people, api_as):
    """Issue 14 finding 6: "another team's record" without the record's id."""
    contact = people.records["owner"].contact
    response = import_csv(api_as("outsider"), "contacts", [["first_name", "email"], ["X", contact.email]])

    assert response.status_code == 400, response.content
    body = str(response.json())
    assert "another team's record" in body
    assert f"id {contact.pk}" not in body and "(id" not in body


def test_an_import_error_lists_no_ids_of_leads_the_importer_cannot_see(people, api_as):
    """Issue 14 finding 6: duplicates the importer cannot see are not listed by id."""
    hidden = people.records["owner"].lead
    twin = LeadFactory(
        name="Twin", email=hidden.email, stage=people.stages["New"], owner=people.users["owner"]
    )

    response = import_csv(api_as("outsider"), "leads", [["name", "email"], ["X", hidden.email]])

    assert response.status_code == 400, response.content
    messages = [error["message"] for error in response.json()["row_errors"]]
    assert messages and "another team" in messages[0]
    assert all("(id" not in m and str(twin.pk) not in m and str(hidden.pk) not in m for m in messages)


@pytest.fixture
def peeking_activity(people):
    """The outsider's own activity linked to the owner's lead and deal, which the outsider cannot see."""
    owner = people.records["owner"]
    return ActivityFactory(
        subject="Peeking call",
        owner=people.users["outsider"],
        lead=owner.lead,
        opportunity=owner.opportunity,
        contact=None,
        account=None,
    )


def test_admin_activity_list_does_not_name_leads_and_deals_the_viewer_cannot_see(
    people, admin_as, peeking_activity
):
    """Issue 14 finding 6: the activity changelist shows "a record you cannot see" instead."""
    owner = people.records["owner"]
    html = admin_as("outsider").get(admin_url("activities.activity", "changelist")).content.decode()

    assert "Peeking call" in html
    assert owner.opportunity.name not in html and owner.lead.name not in html
    assert "a record you cannot see" in html
    # The owner sees the names.
    html = admin_as("owner").get(admin_url("activities.activity", "changelist")).content.decode()
    assert "Peeking call" not in html  # the outsider's activity is invisible to the owner


def test_admin_activity_export_does_not_name_leads_and_deals_the_viewer_cannot_see(
    people, admin_as, peeking_activity
):
    """Issue 14 finding 6: the activity export leaves those cells empty."""
    owner = people.records["owner"]
    response = admin_as("outsider").get(admin_url("activities.activity", "export"), {"format": "csv"})

    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    row = next(r for r in rows if r["subject"] == "Peeking call")
    assert row["lead"] == "" and row["opportunity"] == ""
    assert (
        owner.lead.email not in response.content.decode()
        and owner.opportunity.name not in response.content.decode()
    )
    # A CRM Admin's export names them.
    response = admin_as("crm_admin").get(admin_url("activities.activity", "export"), {"format": "csv"})
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    row = next(r for r in rows if r["subject"] == "Peeking call")
    assert (row["lead"], row["opportunity"]) == (owner.lead.email, owner.opportunity.name)


# --- finding 19 (first half): merging a parent account with its child ----------------------------


def test_api_merges_a_parent_account_with_its_child_keeping_the_parent(people, api_as):
    """Issue 14 finding 19: the parent survives; the child's children move to it; no self-parent."""
    parent = AccountFactory(name="Parent Co")
    child = AccountFactory(name="Child Co", parent=parent)
    grandchild = AccountFactory(name="Grandchild Co", parent=child)

    response = api_as("crm_admin").post(
        url("accounts/merge/"), {"ids": [parent.pk, child.pk], "survivor_id": parent.pk}, format="json"
    )

    assert response.status_code == 200, response.content
    parent.refresh_from_db()
    assert parent.parent_id is None
    assert not Account.objects.filter(pk=child.pk).exists()
    assert Account.objects.get(pk=grandchild.pk).parent_id == parent.pk


def test_merging_accounts_never_creates_a_cycle(people):
    """Issue 14 finding 19: a survivor never gets one of its own descendants as its parent."""
    top = AccountFactory(name="Top")
    middle = AccountFactory(name="Middle", parent=top)
    other = AccountFactory(name="Other", parent=middle)  # the survivor's grandchild

    record_merge(records=[top, other], survivor=top, user=people.users["crm_admin"])

    top.refresh_from_db()
    assert top.parent_id is None
    assert Account.objects.get(pk=middle.pk).parent_id == top.pk


def test_merging_an_account_whose_parent_descends_from_a_merged_one_breaks_no_hierarchy(people):
    """Issue 14 finding 19: S's parent P is a child of O; O merges into S: P moves under S, S loses P."""
    other = AccountFactory(name="Other")
    middle = AccountFactory(name="Middle", parent=other)
    survivor = AccountFactory(name="Survivor", parent=middle)

    record_merge(records=[survivor, other], survivor=survivor, user=people.users["crm_admin"])

    survivor.refresh_from_db()
    middle.refresh_from_db()
    assert middle.parent_id == survivor.pk
    assert survivor.parent_id is None


def test_admin_merges_a_parent_account_with_its_child(people, admin_as):
    """Issue 14 finding 19 (admin action)."""
    parent = AccountFactory(name="Parent Co")
    child = AccountFactory(name="Child Co", parent=parent)
    selection = {"action": "merge_selected", "_selected_action": [parent.pk, child.pk]}

    response = admin_as("crm_admin").post(
        admin_url("crm.account", "changelist"),
        {**selection, "apply": "1", "survivor": parent.pk},
        follow=True,
    )

    assert response.status_code == 200
    assert any(m.startswith("Merged 1 accounts") for m in messages_of(response)), messages_of(response)
    assert not Account.objects.filter(pk=child.pk).exists()


@pytest.mark.parametrize("label", ["sales.opportunity", "activities.activity"])
def test_admin_change_page_does_not_name_a_linked_lead_the_user_cannot_see(people, admin_as, label):
    """Issue 14 findings 5 and 6: a record linked to a lead its reader cannot see says so, read-only
    (the form neither names it nor drops the link when saved)."""
    hidden = people.records["owner"].lead
    kind = label.split(".")[1]
    record = getattr(people.records["outsider"], kind)
    type(record).objects.filter(pk=record.pk).update(lead=hidden)

    html = admin_as("outsider").get(admin_url(label, "change", record.pk)).content.decode()

    assert "a record you cannot see" in html
    assert hidden.name not in html and hidden.email not in html
    assert 'name="lead"' not in html


@pytest.mark.parametrize("kind", ["account", "contact", "lead", "opportunity", "activity"])
def test_update_services_refuse_a_record_the_user_may_not_change(people, kind):
    """Issue 14 item 2: the one change rule is in the services, whichever door calls them."""
    from crm import services as crm_services

    update = {
        "account": lambda record, user: crm_services.account_update(
            account=record, user=user, data={"phone": "1"}
        ),
        "contact": lambda record, user: crm_services.contact_update(
            contact=record, user=user, data={"phone": "1"}
        ),
        "lead": lambda record, user: crm_services.lead_update(lead=record, user=user, data={"phone": "1"}),
        "opportunity": lambda record, user: sales_services.opportunity_update(
            opportunity=record, user=user, data={"description": "1"}
        ),
        "activity": lambda record, user: activity_services.activity_update(
            activity=record, user=user, data={"description": "1"}
        ),
    }[kind]
    record = getattr(people.records["owner"], kind)
    with pytest.raises(PermissionDenied):
        update(record, people.users["outsider"])
    update(record, people.users["teammate"] if kind in ("account", "contact") else people.users["manager"])
