"""Issue 14 findings 9 and 10: the admin's forms, inlines and deletes write through the services."""

import pytest
from django.urls import reverse

from crm import services
from crm.actors import SYSTEM
from crm.models import Account, Contact, WinModel
from sales import services as sales_services
from tests.admin.form_data import change_form_data
from tests.factories import (
    AccountFactory,
    ContactFactory,
    LeadFactory,
    LostReasonFactory,
    OpportunityFactory,
    PipelineFactory,
    TagFactory,
)


def inline_formset(response, model):
    return next(i.formset for i in response.context["inline_admin_formsets"] if i.formset.model is model)


@pytest.mark.django_db
def test_account_contact_inline_refuses_a_second_primary_contact_on_the_row(admin_client):
    """Issue 14 finding 9: a second primary contact added on the account's page was a 500 (IntegrityError)."""
    account = AccountFactory(name="Acme")
    ContactFactory(account=account, first_name="First", is_primary=True)
    url = reverse("admin:crm_account_change", args=[account.pk])
    data = change_form_data(admin_client.get(url))
    data.update(
        {
            "contacts-TOTAL_FORMS": "2",
            "contacts-1-first_name": "Second",
            "contacts-1-is_primary": "on",
            "contacts-1-is_active": "on",
            "contacts-1-account": str(account.pk),
        }
    )

    response = admin_client.post(url, data)

    assert response.status_code == 200
    rows = inline_formset(response, Contact).forms
    assert rows[1].errors["is_primary"] == ["This account already has a primary contact."]
    assert list(account.contacts.values_list("first_name", flat=True)) == ["First"]


@pytest.mark.django_db
def test_account_contact_inline_writes_through_the_contact_services(admin_client, monkeypatch):
    """Issue 14 finding 9: contacts added or changed on an account's page are written by contact_create
    and contact_update (the audit trail names how their tags changed, as for any service write)."""
    calls = []
    for name in ("contact_create", "contact_update"):
        real = getattr(services, name)
        monkeypatch.setattr(
            services, name, lambda *a, _real=real, _name=name, **kw: calls.append(_name) or _real(**kw)
        )
    account = AccountFactory(name="Acme")
    first = ContactFactory(account=account, first_name="First")
    url = reverse("admin:crm_account_change", args=[account.pk])
    data = change_form_data(admin_client.get(url))
    data.update(
        {
            "contacts-0-job_title": "CEO",
            "contacts-TOTAL_FORMS": "2",
            "contacts-1-first_name": "Second",
            "contacts-1-is_active": "on",
            "contacts-1-account": str(account.pk),
        }
    )

    response = admin_client.post(url, data)

    assert response.status_code == 302
    assert sorted(calls) == ["contact_create", "contact_update"]
    first.refresh_from_db()
    assert first.job_title == "CEO"
    assert account.contacts.get(first_name="Second").owner is not None


@pytest.mark.django_db
def test_stage_admin_cannot_move_a_stage_to_another_pipeline(admin_client, stages):
    """Issue 14 finding 10: stage_update forbids moving a stage to another pipeline; the admin did it."""
    other = PipelineFactory(name="Other")
    stage = stages["Qualified"]
    lead = LeadFactory(stage=stage)
    url = reverse("admin:crm_stage_change", args=[stage.pk])
    data = change_form_data(admin_client.get(url))
    data["pipeline"] = str(other.pk)

    response = admin_client.post(url, data)

    assert response.status_code == 302
    stage.refresh_from_db()
    lead.refresh_from_db()
    assert stage.pipeline_id == lead.pipeline_id != other.pk


def _spy(monkeypatch, module, name, calls):
    real = getattr(module, name)
    monkeypatch.setattr(module, name, lambda *a, **kw: calls.append(name) or real(*a, **kw))


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("model_name", "make", "post", "create", "update"),
    [
        ("tag", TagFactory, {"name": "VIP", "color": "#123456"}, "tag_create", "tag_update"),
        (
            "lostreason",
            LostReasonFactory,
            {"name": "Price", "is_active": "on"},
            "lost_reason_create",
            "lost_reason_update",
        ),
        ("stage", None, None, "stage_create", "stage_update"),
        ("account", AccountFactory, None, "account_create", "account_update"),
        ("contact", ContactFactory, None, "contact_create", "contact_update"),
    ],
)
def test_admin_add_and_change_go_through_the_services(
    admin_client, monkeypatch, stages, model_name, make, post, create, update
):
    """Issue 14 finding 10: the account, contact, tag, lost reason and stage admins saved around their
    services."""
    calls = []
    _spy(monkeypatch, services, create, calls)
    _spy(monkeypatch, services, update, calls)
    record = make() if make else stages["New"]
    change_url = reverse(f"admin:crm_{model_name}_change", args=[record.pk])
    data = change_form_data(admin_client.get(change_url))
    name_field = "first_name" if model_name == "contact" else "name"
    data[name_field] = "Renamed"

    assert admin_client.post(change_url, data).status_code == 302

    add_data = dict(data)
    add_data.pop("loaded_version", None)
    add_data[name_field] = "Brand new"
    if model_name == "stage":
        add_data["pipeline"] = str(record.pipeline_id)
    if post:
        add_data.update(post)
    response = admin_client.post(reverse(f"admin:crm_{model_name}_add"), add_data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert calls == [update, create]
    record.refresh_from_db()
    assert getattr(record, name_field) == "Renamed"


@pytest.mark.django_db
def test_account_admin_change_of_industry_moves_the_win_counts(admin_client, stages):
    """Issue 14 finding 10: account_update keeps the deals' win-probability counts (which count the
    account's industry); the admin's plain save left them on the old industry."""
    account = AccountFactory(industry="retail")
    deal = OpportunityFactory(account=account, stage=stages["New"])
    sales_services.opportunity_mark_won(opportunity=deal, user=SYSTEM)
    model = WinModel.objects.get(kind="opportunity")
    assert model.counts["industry"] == {"retail": [1, 0]}
    url = reverse("admin:crm_account_change", args=[account.pk])
    data = change_form_data(admin_client.get(url))
    data["industry"] = "finance"

    assert admin_client.post(url, data).status_code == 302

    model.refresh_from_db()
    assert model.counts["industry"] == {"finance": [1, 0]}


def _lost_lead(stages):
    lead = LeadFactory(stage=stages["New"])
    return services.lead_mark_lost(lead=lead, user=SYSTEM)


def _won_deal(stages):
    deal = OpportunityFactory(stage=stages["New"])
    return sales_services.opportunity_mark_won(opportunity=deal, user=SYSTEM)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("make", "kind", "side"), [(_lost_lead, "lead", "lost"), (_won_deal, "opportunity", "won")]
)
def test_admin_delete_takes_a_closed_record_out_of_the_win_counts(admin_client, stages, make, kind, side):
    """Issue 14 finding 10: deleting a closed lead or deal in the admin skipped record_delete, so the
    win-probability counts still counted it."""
    record = make(stages)
    assert getattr(WinModel.objects.get(kind=kind), side) == 1
    opts = record._meta

    response = admin_client.post(
        reverse(f"admin:{opts.app_label}_{opts.model_name}_delete", args=[record.pk]), {"post": "yes"}
    )

    assert response.status_code == 302
    assert not type(record).objects.filter(pk=record.pk).exists()
    assert getattr(WinModel.objects.get(kind=kind), side) == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("make", "kind", "side"), [(_lost_lead, "lead", "lost"), (_won_deal, "opportunity", "won")]
)
def test_admin_bulk_delete_takes_closed_records_out_of_the_win_counts(admin_client, stages, make, kind, side):
    """Issue 14 finding 10: "delete selected" skipped record_delete too."""
    records = [make(stages), make(stages)]
    assert getattr(WinModel.objects.get(kind=kind), side) == 2
    opts = records[0]._meta

    response = admin_client.post(
        reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"),
        {"action": "delete_selected", "_selected_action": [r.pk for r in records], "post": "yes"},
    )

    assert response.status_code == 302
    assert not type(records[0]).objects.exists()
    assert getattr(WinModel.objects.get(kind=kind), side) == 0


@pytest.mark.django_db
@pytest.mark.parametrize("bulk", [False, True])
def test_admin_account_deletes_go_through_record_delete(admin_client, monkeypatch, bulk):
    """Issue 14 finding 10: account deletes (single and "delete selected") go through record_delete."""
    calls = []
    _spy(monkeypatch, services, "record_delete", calls)
    account = AccountFactory()
    if bulk:
        data = {"action": "delete_selected", "_selected_action": [account.pk], "post": "yes"}
        response = admin_client.post(reverse("admin:crm_account_changelist"), data)
    else:
        response = admin_client.post(reverse("admin:crm_account_delete", args=[account.pk]), {"post": "yes"})

    assert response.status_code == 302
    assert calls == ["record_delete"]
    assert not Account.objects.exists()


@pytest.mark.django_db
def test_account_opportunity_inline_writes_through_the_opportunity_service(admin_client, stages, monkeypatch):
    """Issue 14, what to build 1: a deal changed on its account's page is updated by opportunity_update
    (which keeps its stage history and win counts), not saved around it."""
    calls = []
    _spy(monkeypatch, sales_services, "opportunity_update", calls)
    account = AccountFactory(name="Acme")
    deal = OpportunityFactory(account=account, stage=stages["New"], amount=1000)
    url = reverse("admin:crm_account_change", args=[account.pk])
    data = change_form_data(admin_client.get(url))
    prefix = next(
        i.formset.prefix
        for i in admin_client.get(url).context["inline_admin_formsets"]
        if i.formset.model is type(deal)
    )
    data[f"{prefix}-0-amount"] = "2500.00"

    response = admin_client.post(url, data)

    assert response.status_code == 302
    assert calls == ["opportunity_update"]
    deal.refresh_from_db()
    assert deal.amount == 2500
