"""Writes through the real admin views: defaults, validation messages, protected deletes."""

import pytest
from django.urls import reverse

from activities.models import Activity
from crm.models import Account, Contact, Lead, Pipeline, Stage
from sales.models import Opportunity
from tests.factories import AccountFactory, ContactFactory, LeadFactory, PipelineFactory, StageFactory


def lead_form(**overrides):
    data = {
        "name": "Inbound from the website",
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


@pytest.mark.django_db
def test_lead_added_without_pipeline_or_stage_gets_the_defaults(admin_client, admin_user, stages):
    response = admin_client.post(reverse("admin:crm_lead_add"), lead_form(owner=admin_user.pk))
    assert response.status_code == 302, response.context["adminform"].form.errors
    lead = Lead.objects.get()
    assert (lead.pipeline, lead.stage, lead.probability) == (stages["New"].pipeline, stages["New"], 10)
    assert lead.owner == admin_user


@pytest.mark.django_db
def test_opportunity_added_without_pipeline_or_stage_gets_the_defaults(admin_client, stages):
    data = {
        "name": "Renewal",
        "amount": "1200",
        "opportunity_type": "renewal",
        "priority": "high",
        "activities-TOTAL_FORMS": "0",
        "activities-INITIAL_FORMS": "0",
        "consents-TOTAL_FORMS": "0",
        "consents-INITIAL_FORMS": "0",
        "channel_preferences-TOTAL_FORMS": "0",
        "channel_preferences-INITIAL_FORMS": "0",
    }
    response = admin_client.post(reverse("admin:sales_opportunity_add"), data)
    assert response.status_code == 302
    opp = Opportunity.objects.get()
    assert (opp.stage, opp.probability) == (stages["New"], 10)


@pytest.mark.django_db
def test_admin_shows_the_stage_of_another_pipeline_as_a_form_error(admin_client, pipeline):
    foreign = StageFactory(pipeline=PipelineFactory(name="Enterprise"), name="Discovery")
    response = admin_client.post(
        reverse("admin:crm_lead_add"), lead_form(pipeline=pipeline.pk, stage=foreign.pk)
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "belongs to the pipeline “Enterprise”" in errors["stage"][0]
    assert not Lead.objects.exists()


@pytest.mark.django_db
def test_admin_probability_150_is_a_form_error(admin_client, pipeline):
    response = admin_client.post(reverse("admin:crm_lead_add"), lead_form(probability="150"))
    assert "probability" in response.context["adminform"].form.errors
    assert not Lead.objects.exists()


@pytest.mark.django_db
def test_second_primary_contact_is_a_form_error(admin_client):
    account = AccountFactory()
    ContactFactory(account=account, is_primary=True)
    data = {
        "first_name": "Second",
        "account": account.pk,
        "is_primary": "on",
        "is_active": "on",
        "activities-TOTAL_FORMS": "0",
        "activities-INITIAL_FORMS": "0",
        "consents-TOTAL_FORMS": "0",
        "consents-INITIAL_FORMS": "0",
        "channel_preferences-TOTAL_FORMS": "0",
        "channel_preferences-INITIAL_FORMS": "0",
    }
    response = admin_client.post(reverse("admin:crm_contact_add"), data)
    assert response.context["adminform"].form.errors["is_primary"] == [
        "This account already has a primary contact."
    ]
    assert Contact.objects.count() == 1


@pytest.mark.django_db
def test_admin_tag_name_differing_only_in_case_is_refused(admin_client):
    admin_client.post(reverse("admin:crm_tag_add"), {"name": "VIP", "color": "#123456"})
    response = admin_client.post(reverse("admin:crm_tag_add"), {"name": "vip", "color": "#123456"})
    assert "name" in response.context["adminform"].form.errors


@pytest.mark.django_db
def test_making_another_pipeline_default_in_the_admin_moves_the_flag(admin_client, pipeline):
    data = {
        "name": "Enterprise",
        "is_default": "on",
        "is_active": "on",
        "sequence": "1",
        "stages-TOTAL_FORMS": "1",
        "stages-INITIAL_FORMS": "0",
        "stages-0-name": "Discovery",
        "stages-0-sequence": "0",
        "stages-0-probability": "10",
        "stages-0-color": "#112233",
    }
    response = admin_client.post(reverse("admin:crm_pipeline_add"), data)
    assert response.status_code == 302
    assert Pipeline.objects.get(is_default=True).name == "Enterprise"
    assert Stage.objects.filter(pipeline__name="Enterprise", name="Discovery").exists()


@pytest.mark.django_db
def test_admin_lead_inline_logs_an_activity_owned_by_the_user(admin_client, admin_user, stages):
    lead = LeadFactory()
    data = lead_form(
        name=lead.name,
        pipeline=lead.pipeline_id,
        stage=lead.stage_id,
        probability=lead.probability,
        **{
            "activities-TOTAL_FORMS": "1",
            "activities-0-subject": "Called back",
            "activities-0-activity_type": "call",
            "activities-0-status": "completed",
            "activities-0-priority": "medium",
        },
    )
    response = admin_client.post(reverse("admin:crm_lead_change", args=[lead.pk]), data)
    assert response.status_code == 302
    activity = Activity.objects.get()
    assert (activity.lead, activity.owner) == (lead, admin_user)
    assert activity.completed_at is not None


def assert_delete_refused(admin_client, url, obj, text):
    response = admin_client.post(url, {"post": "yes"})
    assert response.status_code == 200
    body = response.content.decode()
    assert "would require deleting the following protected related objects" in body or text in body
    assert text in body
    assert type(obj).objects.filter(pk=obj.pk).exists()


@pytest.mark.django_db
def test_deleting_an_account_with_contacts_is_refused(admin_client):
    account = AccountFactory(name="Acme")
    ContactFactory(account=account, first_name="Sarah")
    url = reverse("admin:crm_account_delete", args=[account.pk])
    assert_delete_refused(admin_client, url, account, "Sarah")


@pytest.mark.django_db
def test_deleting_a_stage_in_use_is_refused(admin_client, stages):
    LeadFactory(name="Busy lead", stage=stages["New"])
    url = reverse("admin:crm_stage_delete", args=[stages["New"].pk])
    assert_delete_refused(admin_client, url, stages["New"], "Busy lead")


@pytest.mark.django_db
def test_deleting_a_pipeline_in_use_is_refused(admin_client, pipeline):
    other = PipelineFactory(name="Enterprise")
    stage = StageFactory(pipeline=other, name="Discovery")
    LeadFactory(name="Enterprise lead", pipeline=other, stage=stage)
    url = reverse("admin:crm_pipeline_delete", args=[other.pk])
    assert_delete_refused(admin_client, url, other, "Enterprise lead")


@pytest.mark.django_db
def test_deleting_the_default_pipeline_is_refused_in_the_admin(admin_client, pipeline):
    PipelineFactory(name="Enterprise")
    url = reverse("admin:crm_pipeline_delete", args=[pipeline.pk])
    assert_delete_refused(admin_client, url, pipeline, "make another pipeline the default")


@pytest.mark.django_db
def test_bulk_delete_of_accounts_in_use_is_refused(admin_client):
    account = AccountFactory(name="Acme")
    ContactFactory(account=account, first_name="Sarah")
    response = admin_client.post(
        reverse("admin:crm_account_changelist"),
        {"action": "delete_selected", "_selected_action": [account.pk], "post": "yes"},
    )
    assert "Sarah" in response.content.decode()
    assert Account.objects.filter(pk=account.pk).exists()


@pytest.mark.django_db
def test_deleting_an_unused_account_works(admin_client):
    account = AccountFactory(name="Empty")
    response = admin_client.post(reverse("admin:crm_account_delete", args=[account.pk]), {"post": "yes"})
    assert response.status_code == 302
    assert not Account.objects.exists()
