"""A record changelist reads its page's tags as rows, in one query (crm.selectors.attach_tags), and
shows what the prefetch showed: each record's tags in name order, and the win estimate its tags give
(issue 24: the admin changelist at the speed of its SQL)."""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from crm import services as crm_services
from crm.actors import SYSTEM
from crm.models import Account, Contact, Lead
from crm.selectors import attach_tags, record_tags
from crm.win_probability import win_estimate, win_models_by_pipeline
from sales import services as sales_services
from sales.models import Opportunity
from tests.factories import AccountFactory, ContactFactory, LeadFactory, OpportunityFactory, TagFactory

FACTORIES = {
    Lead: LeadFactory,
    Contact: ContactFactory,
    Account: AccountFactory,
    Opportunity: OpportunityFactory,
}


def changelist(model) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")


def tag_cells(html: str) -> dict[int, str]:
    """Each row's id (from its action checkbox) and the text of its tags cell."""
    cells = {}
    for row in re.findall(r"<tr>(.*?)</tr>", html, re.S):
        record = re.search(r'name="_selected_action" value="(\d+)"', row)
        tags = re.search(r'<td class="field-tag_list">(.*?)</td>', row, re.S)
        if record and tags:
            cells[int(record.group(1))] = tags.group(1)
    return cells


@pytest.fixture
def tags(db):
    # Made out of name order, with markup in one name.
    return [TagFactory(name="zeta"), TagFactory(name="<b>alpha</b>"), TagFactory(name="mid")]


@pytest.mark.django_db
@pytest.mark.parametrize("model", list(FACTORIES), ids=lambda m: m.__name__)
def test_a_changelist_shows_each_records_tags_in_name_order_read_in_one_query(
    admin_client, stages, tags, model
):
    factory = FACTORIES[model]
    extra = {"stage": stages["New"]} if model in (Lead, Opportunity) else {}
    untagged, one, three = factory(**extra), factory(**extra), factory(**extra)
    one.tags.set([tags[0]])
    three.tags.set(tags)
    through = model._meta.get_field("tags").remote_field.through._meta.db_table

    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(changelist(model))

    assert response.status_code == 200
    assert tag_cells(response.content.decode()) == {
        untagged.pk: "—",
        one.pk: "zeta",
        three.pk: "&lt;b&gt;alpha&lt;/b&gt;, mid, zeta",
    }
    on_tags = [query["sql"] for query in queries.captured_queries if f'"{through}"' in query["sql"]]
    assert len(on_tags) == 1, on_tags


@pytest.mark.django_db
@pytest.mark.parametrize("model", [Lead, Opportunity], ids=lambda m: m.__name__)
def test_a_changelist_win_estimate_counts_each_records_own_tags(admin_client, stages, settings, model):
    settings.CRM_WIN_MODEL_MIN_CLOSED = 1
    won_with, lost_with = TagFactory(name="won-with"), TagFactory(name="lost-with")
    factory = FACTORIES[model]
    for tag, close in (
        (won_with, lambda record: _mark(record, won=True)),
        (lost_with, lambda record: _mark(record, won=False)),
    ):
        for _ in range(2):
            record = factory(stage=stages["New"])
            record.tags.set([tag])
            close(record)
    open_records = []
    for tagged in ([won_with], [lost_with], []):
        record = factory(stage=stages["New"])
        record.tags.set(tagged)
        open_records.append(record)

    response = admin_client.get(changelist(model))

    page = {record.pk: record for record in response.context["cl"].result_list}
    models = win_models_by_pipeline("lead" if model is Lead else "opportunity")
    expected = {
        record.pk: win_estimate(model.objects.prefetch_related("tags").get(pk=record.pk), models).probability
        for record in open_records
    }
    assert {pk: page[pk]._win_estimate.probability for pk in expected} == expected
    # The tags tell the records apart: a test that cannot fail is no test.
    assert len(set(expected.values())) == 3


def _mark(record, *, won: bool) -> None:
    if isinstance(record, Lead):
        if won:  # a lead is won by its conversion
            sales_services.lead_convert(lead=record, user=SYSTEM)
        else:
            crm_services.lead_mark_lost(lead=record, user=SYSTEM)
    elif won:
        sales_services.opportunity_mark_won(opportunity=record, user=SYSTEM)
    else:
        sales_services.opportunity_mark_lost(opportunity=record, user=SYSTEM)


@pytest.mark.django_db
def test_record_tags_are_the_attached_ones_else_the_records_own(stages, tags):
    lead, other = LeadFactory(stage=stages["New"]), LeadFactory(stage=stages["New"])
    lead.tags.set(tags)
    page = list(Lead.objects.filter(pk__in=[lead.pk, other.pk]).order_by("pk"))

    with CaptureQueriesContext(connection) as queries:
        attach_tags(page)
        attached = [[tag.name for tag in record_tags(record)] for record in page]

    assert len(queries.captured_queries) == 1
    assert attached == [["<b>alpha</b>", "mid", "zeta"], []]
    fresh = Lead.objects.get(pk=lead.pk)
    assert [tag.name for tag in record_tags(fresh)] == ["<b>alpha</b>", "mid", "zeta"]
