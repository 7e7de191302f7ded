"""Merging contacts, accounts and leads: every related record moves, nothing dangles, bad merges refused."""

import pytest
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from activities.models import Activity
from crm import services
from crm.actors import SYSTEM
from crm.merging import record_merge
from crm.models import Account, Contact, Lead, LeadStageChange
from sales import services as sales_services
from sales.models import Opportunity
from tests.factories import (
    AccountFactory,
    ActivityFactory,
    ContactFactory,
    LeadFactory,
    OpportunityFactory,
    TagFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


def test_merging_contacts_moves_everything_to_the_oldest_and_fills_its_empty_fields(stages):
    vip, hot = TagFactory(name="VIP"), TagFactory(name="Hot")
    account = AccountFactory()
    oldest = ContactFactory(first_name="Ann", last_name="Lee", email="ann@acme.test", phone="")
    twin = ContactFactory(first_name="Annie", last_name="", email="", phone="555 1234", job_title="CTO")
    twin.account = account
    twin.save()
    oldest.tags.set([vip])
    twin.tags.set([hot])
    deal = OpportunityFactory(contact=twin, account=account)
    call = ActivityFactory(contact=twin)
    converted = LeadFactory(converted_contact=twin)

    plan = record_merge(records=[twin, oldest], user=SYSTEM)

    assert plan.survivor.pk == oldest.pk
    survivor = Contact.objects.get()
    assert (survivor.first_name, survivor.last_name, survivor.email) == ("Ann", "Lee", "ann@acme.test")
    assert (survivor.phone, survivor.job_title, survivor.account) == ("555 1234", "CTO", account)
    assert set(survivor.tags.all()) == {vip, hot}
    assert Opportunity.objects.get(pk=deal.pk).contact == survivor
    assert Activity.objects.get(pk=call.pk).contact == survivor
    assert Lead.objects.get(pk=converted.pk).converted_contact == survivor
    assert plan.moved == {
        "opportunities (contact)": 1,
        "activities (contact)": 1,
        "leads (converted_contact)": 1,
    }
    assert sorted(plan.filled) == ["account", "job_title", "phone"]
    connection.check_constraints()  # no row points at a deleted contact


def test_merging_accounts_moves_contacts_deals_children_and_keeps_one_primary(stages):
    keep, gone = AccountFactory(name="Acme"), AccountFactory(name="ACME Inc", website="https://acme.test")
    child = AccountFactory(name="Acme Labs", parent=gone)
    first = ContactFactory(account=keep, is_primary=True)
    second = ContactFactory(account=gone, is_primary=True)
    deal = OpportunityFactory(account=gone)
    note = ActivityFactory(account=gone)
    converted = LeadFactory(converted_account=gone)

    plan = record_merge(records=[keep, gone], survivor=keep, user=SYSTEM)

    assert not Account.objects.filter(pk=gone.pk).exists()
    keep.refresh_from_db()
    assert keep.website == "https://acme.test"
    assert Account.objects.get(pk=child.pk).parent == keep
    assert set(keep.contacts.all()) == {first, second}
    assert Contact.objects.get(pk=first.pk).is_primary and not Contact.objects.get(pk=second.pk).is_primary
    assert Opportunity.objects.get(pk=deal.pk).account == keep
    assert Activity.objects.get(pk=note.pk).account == keep
    assert Lead.objects.get(pk=converted.pk).converted_account == keep
    assert [o.pk for o in plan.others] == [gone.pk]
    connection.check_constraints()


def test_merging_an_account_with_its_parent_leaves_no_self_parent(db):
    parent = AccountFactory(name="Parent")
    child = AccountFactory(name="Child", parent=parent)
    record_merge(records=[parent, child], survivor=child, user=SYSTEM)
    child.refresh_from_db()
    assert child.parent is None


def test_merging_leads_moves_activities_history_and_the_converted_deal(stages):
    keep = services.lead_create(data={"name": "Keep", "email": "a@acme.test"}, user=SYSTEM)
    gone = services.lead_create(
        data={"name": "Gone", "company_name": "Acme", "expected_revenue": 100}, user=SYSTEM
    )
    gone = services.lead_move_stage(lead=gone, stage=stages["Qualified"], user=SYSTEM)
    call = ActivityFactory(lead=gone)
    deal = sales_services.opportunity_create(
        data={"name": "From gone", "amount": 1, "lead": gone}, user=SYSTEM
    )

    plan = record_merge(records=[keep, gone], user=SYSTEM)

    keep.refresh_from_db()
    assert (keep.company_name, keep.expected_revenue) == ("Acme", 100)
    assert Activity.objects.get(pk=call.pk).lead == keep
    # The survivor's last activity (what scoring reads) is the newest of the merged leads'.
    assert keep.last_activity_at == Activity.objects.get(pk=call.pk).created_at
    assert Opportunity.objects.get(pk=deal.pk).lead == keep
    assert LeadStageChange.objects.filter(record=keep).count() == 3
    assert not LeadStageChange.objects.exclude(record=keep).exists()
    assert [o.pk for o in plan.others] == [gone.pk]
    connection.check_constraints()


def test_the_records_a_merge_moves_get_a_version_in_the_audit_trail(stages):
    boss = UserFactory(username="boss")
    keep, gone = AccountFactory(name="Keep"), AccountFactory(name="Gone")
    ann = ContactFactory(first_name="Ann", account=gone)
    deal = OpportunityFactory(name="Deal", account=gone, contact=ann)
    untouched = ContactFactory(first_name="Bob", account=keep)
    before = {ann.pk: ann.history.count(), deal.pk: deal.history.count()}

    with CaptureQueriesContext(connection) as ctx:
        record_merge(records=[keep, gone], survivor=keep, user=boss)

    for record in (Contact.objects.get(pk=ann.pk), Opportunity.objects.get(pk=deal.pk)):
        versions = record.history.order_by("-history_date", "-history_id")
        assert versions.count() == before[record.pk] + 1
        latest = versions.first()
        assert (latest.history_type, latest.account_id, latest.history_user) == ("~", keep.pk, boss)
        assert latest.history_change_reason == f"Merged accounts {gone.pk} into {keep.pk}"
        # The version is the record as it is now, and its ETag changed with it.
        assert latest.updated_at == record.updated_at
    assert untouched.history.count() == 1
    # The moved records are found by their keys, not by the merge's stamp, which no index answers
    # (it read every contact and every deal of the database).
    inserts = [
        q["sql"] for q in ctx.captured_queries if q["sql"].startswith("INSERT") and ") SELECT " in q["sql"]
    ]
    assert {sql.split('"')[1] for sql in inserts} == {"crm_historicalcontact", "sales_historicalopportunity"}
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_seqscan = off")  # ask what the planner can use
            for sql in inserts:
                cursor.execute(f"EXPLAIN {sql}")
                plan = "\n".join(row[0] for row in cursor.fetchall())
                assert "Seq Scan" not in plan, plan


def test_a_converted_lead_can_only_survive(stages):
    keep = LeadFactory(name="Keep")
    converted = LeadFactory(name="Converted", status="converted", converted_at="2026-01-01T00:00:00Z")
    with pytest.raises(ValidationError) as refused:
        record_merge(records=[keep, converted], survivor=keep, user=SYSTEM)
    assert "converted lead can only be the survivor" in refused.value.message_dict["survivor"][0]
    record_merge(records=[keep, converted], survivor=converted, user=SYSTEM)
    assert list(Lead.objects.values_list("name", flat=True)) == ["Converted"]


def test_two_leads_with_a_converted_deal_each_cannot_merge(stages):
    first, second = LeadFactory(), LeadFactory()
    OpportunityFactory(lead=first)
    OpportunityFactory(lead=second)
    with pytest.raises(ValidationError):
        record_merge(records=[first, second], user=SYSTEM)
    assert Lead.objects.count() == 2


@pytest.mark.parametrize("count", [1, 6])
def test_fewer_than_two_or_more_than_five_are_refused(db, count):
    accounts = [AccountFactory() for _ in range(count)]
    with pytest.raises(ValidationError, match="between 2 and 5"):
        record_merge(records=accounts, user=SYSTEM)
    assert Account.objects.count() == count


def test_records_of_different_kinds_are_refused(stages):
    with pytest.raises(ValidationError, match="one kind"):
        record_merge(records=[ContactFactory(), AccountFactory()], user=SYSTEM)


# --- API ------------------------------------------------------------------------------------------


def test_api_merge_contacts(admin_client, db):
    keep, gone = ContactFactory(email="", phone="1"), ContactFactory(email="x@acme.test")
    call = ActivityFactory(contact=gone)
    response = admin_client.post(
        "/api/v1/crm/contacts/merge/",
        {"ids": [keep.pk, gone.pk], "survivor_id": gone.pk},
        content_type="application/json",
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["survivor"]["id"], body["merged_ids"], body["filled_fields"]) == (
        gone.pk,
        [keep.pk],
        ["phone"],
    )
    assert body["moved"] == {}
    assert Activity.objects.get(pk=call.pk).contact_id == gone.pk
    assert list(Contact.objects.values_list("pk", flat=True)) == [gone.pk]


def test_api_merge_errors(admin_client, stages):
    a, b = LeadFactory(), LeadFactory()
    post = lambda body: admin_client.post("/api/v1/crm/leads/merge/", body, content_type="application/json")  # noqa: E731
    too_few = post({"ids": [a.pk]})
    unknown = post({"ids": [a.pk, 999999]})
    outsider = post({"ids": [a.pk, b.pk], "survivor_id": 999999})
    account = AccountFactory()
    other_kind = post({"ids": [a.pk, account.pk]})
    assert too_few.status_code == 400 and "between 2 and 5" in str(too_few.json())
    assert unknown.status_code == 400 and "999999" in unknown.json()["ids"][0]
    assert outsider.status_code == 400 and "survivor_id" in outsider.json()
    assert other_kind.status_code == 400
    # Past a 64-bit id (SQLite can't even compare with one) and below 1: bad input, not a 500.
    huge = post({"ids": [a.pk, 2**70], "survivor_id": -(2**70)})
    assert huge.status_code == 400 and set(huge.json()) == {"ids", "survivor_id"}
    assert Lead.objects.count() == 2


def test_api_merge_needs_delete_permission(client, db):
    user = UserFactory()
    user.user_permissions.add(*Permission.objects.filter(codename__in=["view_account", "change_account"]))
    client.force_login(user)
    a, b = AccountFactory(), AccountFactory()
    response = client.post(
        "/api/v1/crm/accounts/merge/", {"ids": [a.pk, b.pk]}, content_type="application/json"
    )
    assert response.status_code == 403
    assert Account.objects.count() == 2


# --- admin ----------------------------------------------------------------------------------------


def test_admin_merge_shows_a_confirmation_then_merges(admin_client, db):
    keep, gone = AccountFactory(name="Acme"), AccountFactory(name="ACME Inc", phone="555")
    contact = ContactFactory(account=gone)
    url = reverse("admin:crm_account_changelist")
    selection = {"action": "merge_selected", "_selected_action": [keep.pk, gone.pk]}

    page = admin_client.post(url, selection)
    assert page.templates[0].name == "admin/crm/merge_confirm.html"
    html = page.content.decode()
    assert "Result, keeping “Acme”" in html and "phone = 555" in html and "1 contacts (account)" in html
    assert Account.objects.count() == 2

    response = admin_client.post(url, {**selection, "apply": "1", "survivor": keep.pk}, follow=True)

    shown = [str(m) for m in get_messages(response.wsgi_request)]
    assert any(
        m.startswith("Merged 1 accounts into “Acme”: moved 1 contacts (account); filled phone.")
        for m in shown
    )
    assert response.redirect_chain[-1][0] == reverse("admin:crm_account_change", args=[keep.pk])
    assert Contact.objects.get(pk=contact.pk).account == keep
    assert list(Account.objects.all()) == [keep]


def test_admin_merge_refuses_a_single_record(admin_client, stages):
    lead = LeadFactory()
    response = admin_client.post(
        reverse("admin:crm_lead_changelist"),
        {"action": "merge_selected", "_selected_action": [lead.pk]},
        follow=True,
    )
    assert any("between 2 and 5" in str(m) for m in get_messages(response.wsgi_request))
    assert Lead.objects.count() == 1
