"""A record admin's transitions are declared once: one registry, one mixin, one page."""

import ast
from decimal import Decimal
from pathlib import Path

import pytest
from django.contrib import admin
from django.urls import reverse

from crm.actors import SYSTEM
from crm.admin.transitions import Transition, TransitionsMixin, register_transition, transitions_of
from crm.models import Lead
from crm.services import lead_create
from sales.models import Opportunity
from tests.factories import OpportunityFactory

CRM_ADMIN = Path(__file__).resolve().parents[2] / "crm" / "admin"


def test_each_record_admin_offers_its_transitions_in_button_order():
    assert [t.name for t in transitions_of("crm.lead")] == ["convert", "mark_lost", "reopen"]
    assert [t.name for t in transitions_of("sales.opportunity")] == ["mark_won", "mark_lost", "reopen"]


def test_the_record_admins_take_their_transitions_from_one_mixin():
    for model in (Lead, Opportunity):
        model_admin = admin.site._registry[model]
        assert isinstance(model_admin, TransitionsMixin)
        names = {base.__name__ for base in type(model_admin).__mro__}
        assert not names & {"LeadConvertAdminMixin", "MarkLostAdminMixin", "ReopenAdminMixin"}


def test_registering_a_transition_of_the_same_name_replaces_it():
    label = "tests.nothing"
    first = Transition(name="close", label="Close", run=lambda **kw: None, applies=lambda record: True)
    second = Transition(name="close", label="Shut", run=lambda **kw: None, applies=lambda record: True)
    register_transition(label, first)
    register_transition(label, second)
    assert transitions_of(label) == [second]


def test_crm_admin_does_not_import_sales():
    """Lead conversion is registered by sales, so the crm admin does not reach up to it."""
    for module in CRM_ADMIN.glob("*.py"):
        tree = ast.parse(module.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                assert name.split(".")[0] != "sales", f"{module.name} imports {name}"


@pytest.mark.django_db
def test_a_transition_page_is_the_generic_one_with_the_transitions_words(admin_client, stages):
    lead = lead_create(data={"name": "Inbound"}, user=SYSTEM)
    response = admin_client.get(reverse("admin:crm_lead_mark_lost", args=[lead.pk]))
    assert response.templates[0].name == "admin/crm/transition.html"
    html = response.content.decode()
    assert "Close <strong>Inbound</strong> as lost." in html
    assert '<input type="submit" class="default" value="Mark lost">' in html


@pytest.mark.django_db
def test_a_transition_that_does_not_apply_says_why_and_offers_no_button(admin_client, stages):
    lead = lead_create(data={"name": "Still open"}, user=SYSTEM)
    html = admin_client.get(reverse("admin:crm_lead_reopen", args=[lead.pk])).content.decode()
    assert "This lead is open: only a lost lead, or a won or lost opportunity, can be reopened." in html
    assert 'value="Reopen" disabled' in html


@pytest.mark.django_db
def test_a_confirmation_transition_has_no_form_and_posts_from_the_button(admin_client, stages):
    deal = OpportunityFactory(name="Big deal", stage=stages["Proposal"], amount=Decimal("5000"))
    response = admin_client.get(reverse("admin:sales_opportunity_mark_won", args=[deal.pk]))
    assert response.context["form"] is None
    html = response.content.decode()
    assert "Win <strong>Big deal</strong>" in html and "closes now, at 100%" in html
