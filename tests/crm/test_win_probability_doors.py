"""Issue 15 item 6: every door that closes, reopens, deletes or edits a closed record moves the
win-probability counts, and what it leaves is what a full rebuild computes.

The counts are kept by hooks in the service layer only (``record_save`` and ``record_delete`` in
crm.services, the merge and the import writer); every door calls those services. Each case below
goes through one door, checks that the counts moved, then rebuilds them from the whole history
(what ``crm_recompute_win_probabilities`` does) and checks nothing changes.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from crm import services as crm_services
from crm.actors import SYSTEM
from crm.models import Lead, WinModel
from crm.win_probability import win_models_rebuild
from sales import services as sales_services
from tests.admin.form_data import change_form_data
from tests.api.conftest import url
from tests.conftest import make_pipeline, make_superuser
from tests.factories import AccountFactory, LeadFactory, OpportunityFactory, TagFactory, UserFactory
from tests.module_data import fresh, made_once


def models_state():
    return {
        (m.pipeline_id, m.kind): (m.won, m.lost, m.counts)
        for m in WinModel.objects.all()
        if m.won or m.lost or m.counts
    }


@pytest.fixture(scope="module")
def history(django_db_setup, django_db_blocker):
    """Some closed history in both kinds and a superuser, made once for the module
    (tests/module_data.py)."""
    with made_once(django_db_blocker):
        stages = {stage.name: stage for stage in make_pipeline().stages.all()}
        yield SimpleNamespace(stages=stages, admin_user=make_superuser(), tag=_closed_history(stages))


def _closed_history(stages):
    tag = TagFactory()
    for priority in ("low", "high"):
        lead = LeadFactory(stage=stages["New"], priority=priority, source="website")
        lead.tags.add(tag)
        crm_services.lead_mark_lost(lead=lead, user=SYSTEM)
        sales_services.lead_convert(
            lead=LeadFactory(stage=stages["Proposal"], priority=priority), user=SYSTEM
        )
        deal = OpportunityFactory(stage=stages["Proposal"], priority=priority, account=AccountFactory())
        deal.tags.add(tag)
        sales_services.opportunity_mark_won(opportunity=deal, user=SYSTEM)
        sales_services.opportunity_mark_lost(
            opportunity=OpportunityFactory(stage=stages["New"], priority=priority), user=SYSTEM
        )
    return tag


@pytest.fixture
def doors(db, history, client):
    """The history's stages and tag as fresh instances, and the API and the admin as a superuser."""
    history = fresh(history)
    api = APIClient()
    api.force_authenticate(history.admin_user)
    client.force_login(history.admin_user)
    return SimpleNamespace(api=api, admin=client, stages=history.stages, tag=history.tag)


# --- the records a case starts from -----------------------------------------------------------------


def open_lead(d):
    lead = LeadFactory(
        stage=d.stages["Qualified"],
        priority="urgent",
        source="referral",
        rating="hot",
        company_name="Northwind",
    )
    lead.tags.add(d.tag)
    return lead


def lost_lead(d):
    return crm_services.lead_mark_lost(lead=open_lead(d), user=SYSTEM)


def converted_lead(d):
    lead = open_lead(d)
    sales_services.lead_convert(lead=lead, user=SYSTEM)
    return Lead.objects.get(pk=lead.pk)


def open_deal(d):
    deal = OpportunityFactory(stage=d.stages["Qualified"], priority="urgent", account=AccountFactory())
    deal.tags.add(d.tag)
    return deal


def won_deal(d):
    return sales_services.opportunity_mark_won(opportunity=open_deal(d), user=SYSTEM)


def lost_deal(d):
    return sales_services.opportunity_mark_lost(opportunity=open_deal(d), user=SYSTEM)


# --- the doors ----------------------------------------------------------------------------------------


def api_ok(response):
    assert response.status_code in (200, 201, 204), getattr(response, "data", response)


def kind(record) -> str:
    return "leads" if isinstance(record, Lead) else "opportunities"


def admin_url(record, name: str, *args) -> str:
    opts = record._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_{name}", args=args or [record.pk])


def admin_ok(response):
    """The admin redirects after a write; a page shown again says why it refused."""
    assert response.status_code == 302, re.findall(
        r'class="errorlist[^>]*>(.*?)</ul>', response.content.decode()
    )


def admin_edit(d, record):
    """The change form as the browser posts it back, with the priority changed."""
    data = change_form_data(d.admin.get(admin_url(record, "change")))
    data["priority"] = "low"
    admin_ok(d.admin.post(admin_url(record, "change"), data))


def admin_action(d, record, action, **form):
    opts = record._meta
    data = {"action": action, "_selected_action": [record.pk], **form}
    response = d.admin.post(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"), data)
    admin_ok(response)


def board_move(d, record, stage):
    opts = record._meta
    response = d.admin.post(
        reverse(f"admin:{opts.app_label}_{opts.model_name}_board_move"),
        {"record": record.pk, "stage": d.stages[stage].pk},
    )
    assert response.status_code == 200, response.content.decode()[:2000]


def admin_convert(d, record):
    from tests.admin.test_record_pages import convert_data

    admin_ok(d.admin.post(admin_url(record, "convert"), convert_data()))
    assert Lead.objects.get(pk=record.pk).status == "converted"


def owned_won_deal(d):
    deal = won_deal(d)
    return sales_services.opportunity_update(opportunity=deal, data={"owner": UserFactory()}, user=SYSTEM)


def delete_owner(d, record):
    admin_ok(d.admin.post(reverse("admin:auth_user_delete", args=[record.owner_id]), {"post": "yes"}))


def merge(d, record):
    from crm.merging import record_merge

    survivor = LeadFactory(stage=d.stages["New"], email=record.email)
    record_merge(records=[survivor, record], survivor=survivor, user=SYSTEM)


def import_leads(d, record):
    from crm.importing import import_file
    from tests.crm.importing_helpers import csv_bytes

    rows = [["name", "email", "stage", "priority"], [record.name, record.email, "Lost", "low"]]
    result = import_file(kind="leads", data=csv_bytes(rows), filename="leads.csv", dry_run=False, user=SYSTEM)
    assert result.ok, result.errors


@dataclass(frozen=True)
class Case:
    door: str
    start: Callable
    act: Callable

    def __str__(self):
        return f"{self.door}: {self.start.__name__}"


LEADS, DEALS = "leads", "opportunities"
CASES = [
    # service
    Case("service lead_mark_lost", open_lead, lambda d, r: crm_services.lead_mark_lost(lead=r, user=SYSTEM)),
    Case("service lead_convert", open_lead, lambda d, r: sales_services.lead_convert(lead=r, user=SYSTEM)),
    Case("service lead_reopen", lost_lead, lambda d, r: crm_services.lead_reopen(lead=r, user=SYSTEM)),
    Case(
        "service lead_update closed",
        lost_lead,
        lambda d, r: crm_services.lead_update(lead=r, data={"priority": "low"}, user=SYSTEM),
    ),
    Case(
        "service lead_move_stage to Lost",
        open_lead,
        lambda d, r: crm_services.lead_move_stage(lead=r, stage=d.stages["Lost"], user=SYSTEM),
    ),
    Case(
        "service record_delete lead",
        lost_lead,
        lambda d, r: crm_services.record_delete(instance=r, user=SYSTEM),
    ),
    Case(
        "service opportunity_mark_won",
        open_deal,
        lambda d, r: sales_services.opportunity_mark_won(opportunity=r, user=SYSTEM),
    ),
    Case(
        "service opportunity_mark_lost",
        open_deal,
        lambda d, r: sales_services.opportunity_mark_lost(opportunity=r, user=SYSTEM),
    ),
    Case(
        "service opportunity_reopen",
        won_deal,
        lambda d, r: sales_services.opportunity_reopen(opportunity=r, user=SYSTEM),
    ),
    Case(
        "service opportunity_update closed",
        won_deal,
        lambda d, r: sales_services.opportunity_update(opportunity=r, data={"priority": "low"}, user=SYSTEM),
    ),
    Case(
        "service opportunity_move_stage to Won",
        open_deal,
        lambda d, r: sales_services.opportunity_move_stage(opportunity=r, stage=d.stages["Won"], user=SYSTEM),
    ),
    Case(
        "service account industry of a closed deal",
        won_deal,
        lambda d, r: crm_services.account_update(
            account=r.account, data={"industry": "finance"}, user=SYSTEM
        ),
    ),
    # API
    *(
        Case(
            f"api {kind_} {action}",
            start,
            lambda d, r, a=action: api_ok(d.api.post(url(f"{kind(r)}/{r.pk}/{a}/"), {}, format="json")),
        )
        for kind_, action, start in (
            (LEADS, "mark-lost", open_lead),
            (LEADS, "convert", open_lead),
            (LEADS, "reopen", lost_lead),
            (DEALS, "mark-won", open_deal),
            (DEALS, "mark-lost", open_deal),
            (DEALS, "reopen", won_deal),
        )
    ),
    *(
        Case(
            f"api {kind_} move-stage to {stage}",
            start,
            lambda d, r, s=stage: api_ok(
                d.api.post(url(f"{kind(r)}/{r.pk}/move-stage/"), {"stage_id": d.stages[s].pk}, format="json")
            ),
        )
        for kind_, stage, start in ((LEADS, "Lost", open_lead), (DEALS, "Won", open_deal))
    ),
    *(
        Case(
            f"api {kind_} PATCH closed",
            start,
            lambda d, r: api_ok(d.api.patch(url(f"{kind(r)}/{r.pk}/"), {"priority": "low"}, format="json")),
        )
        for kind_, start in (
            (LEADS, lost_lead),
            (LEADS, converted_lead),
            (DEALS, won_deal),
            (DEALS, lost_deal),
        )
    ),
    *(
        Case(
            f"api {kind_} DELETE closed", start, lambda d, r: api_ok(d.api.delete(url(f"{kind(r)}/{r.pk}/")))
        )
        for kind_, start in ((LEADS, lost_lead), (DEALS, won_deal))
    ),
    # admin
    *(
        Case("admin change form of a closed record", start, admin_edit)
        for start in (lost_lead, won_deal, lost_deal)
    ),
    Case("admin board move lead to Lost", open_lead, lambda d, r: board_move(d, r, "Lost")),
    Case("admin board move deal to Won", open_deal, lambda d, r: board_move(d, r, "Won")),
    Case("admin board move deal to Lost", open_deal, lambda d, r: board_move(d, r, "Lost")),
    *(
        Case(f"admin {page} page", start, lambda d, r, p=page: admin_ok(d.admin.post(admin_url(r, p), {})))
        for page, start in (
            ("mark_lost", open_lead),
            ("reopen", lost_lead),
            ("mark_won", open_deal),
            ("mark_lost", open_deal),
            ("reopen", won_deal),
            ("reopen", lost_deal),
        )
    ),
    Case("admin bulk mark_lost leads", open_lead, lambda d, r: admin_action(d, r, "mark_lost", apply="1")),
    Case("admin bulk mark_lost deals", open_deal, lambda d, r: admin_action(d, r, "mark_lost", apply="1")),
    Case("admin bulk mark_won deals", open_deal, lambda d, r: admin_action(d, r, "mark_won")),
    Case(
        "admin bulk move_to_stage Won",
        open_deal,
        lambda d, r: admin_action(d, r, "move_to_stage", apply="1", stage=d.stages["Won"].pk),
    ),
    Case(
        "admin bulk add_tags to a closed record",
        won_deal,
        lambda d, r: admin_action(d, r, "add_tags", apply="1", tags=[TagFactory().pk]),
    ),
    Case(
        "admin bulk remove_tags from a closed record",
        lost_lead,
        lambda d, r: admin_action(d, r, "remove_tags", apply="1", tags=[d.tag.pk]),
    ),
    *(
        Case(
            "admin delete page",
            start,
            lambda d, r: admin_ok(d.admin.post(admin_url(r, "delete"), {"post": "yes"})),
        )
        for start in (lost_lead, converted_lead, won_deal)
    ),
    *(
        Case("admin delete selected", start, lambda d, r: admin_action(d, r, "delete_selected", post="yes"))
        for start in (lost_lead, lost_deal)
    ),
    Case("admin convert page", open_lead, admin_convert),
    Case(
        "admin bulk assign_owner of a closed record",
        won_deal,
        lambda d, r: admin_action(d, r, "assign_owner", apply="1", owner=UserFactory().pk),
    ),
    Case(
        "admin bulk move_to_stage Lost",
        open_lead,
        lambda d, r: admin_action(d, r, "move_to_stage", apply="1", stage=d.stages["Lost"].pk),
    ),
    Case(
        "api DELETE a tag of closed records",
        lost_lead,
        lambda d, r: api_ok(d.api.delete(url(f"tags/{d.tag.pk}/"))),
    ),
    Case(
        "admin delete a tag of closed records",
        won_deal,
        lambda d, r: admin_ok(
            d.admin.post(reverse("admin:crm_tag_delete", args=[d.tag.pk]), {"post": "yes"})
        ),
    ),
    Case("admin delete the owner of a closed deal", owned_won_deal, delete_owner),
    # import, merge, convert
    Case("import a lead into the Lost stage", open_lead, import_leads),
    Case("import a change to a closed lead", lost_lead, import_leads),
    Case("merge away a closed lead", lost_lead, merge),
]


@pytest.mark.django_db
@pytest.mark.parametrize("case", CASES, ids=str)
def test_every_door_moves_the_win_counts_as_a_rebuild_would(doors, case):
    """Issue 15 item 6: through this door the counts move, and they equal a rebuild from history."""
    record = case.start(doors)
    before = models_state()

    case.act(doors, record)

    incremental = models_state()
    assert incremental != before, "the counts did not move"
    win_models_rebuild()
    assert models_state() == incremental
