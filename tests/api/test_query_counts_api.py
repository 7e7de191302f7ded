"""Every list, board, forecast and dashboard costs the same number of queries for 3 records as for 30."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from crm.actors import SYSTEM
from sales import services
from tests.api.conftest import url
from tests.factories import (
    AccountFactory,
    ActivityFactory,
    ContactFactory,
    LeadFactory,
    LostReasonFactory,
    OpportunityFactory,
    PipelineFactory,
    StageFactory,
    TagFactory,
    UserFactory,
)

ENDPOINTS = [
    "leads/",
    "opportunities/",
    "accounts/",
    "contacts/",
    "activities/",
    "pipelines/",
    "stages/",
    "tags/",
    "lost-reasons/",
    "leads/kanban/",
    "opportunities/kanban/",
    "opportunities/forecast/?group_by=stage",
    "opportunities/forecast/?group_by=owner",
    "dashboard/",
]


def add_records(n: int, stages) -> None:
    """n of every kind of record, each with the relations its serializer shows."""
    tags = [TagFactory(), TagFactory()]
    reason = LostReasonFactory()
    for i in range(n):
        owner = UserFactory()
        parent = AccountFactory(owner=owner)
        account = AccountFactory(owner=owner, parent=parent)
        account.tags.set(tags)
        contact = ContactFactory(account=account, owner=owner)
        contact.tags.set(tags)
        lead = LeadFactory(owner=owner, stage=stages["Qualified" if i % 2 else "New"])
        lead.tags.set(tags)
        opportunity = OpportunityFactory(
            account=account, contact=contact, owner=owner, stage=stages["Proposal"]
        )
        opportunity.tags.set(tags)
        if i % 3 == 0:
            services.opportunity_mark_lost(
                opportunity=OpportunityFactory(owner=owner), lost_reason=reason, user=SYSTEM
            )
        ActivityFactory(lead=lead, opportunity=opportunity, contact=contact, account=account, owner=owner)
        pipeline = PipelineFactory()
        StageFactory.create_batch(2, pipeline=pipeline)
        LostReasonFactory()


def queries(client, path: str) -> int:
    separator = "&" if "?" in path else "?"
    with CaptureQueriesContext(connection) as context:
        response = client.get(url(f"{path}{separator}page_size=100&limit=100"))
    assert response.status_code == 200, response.json()
    return len(context.captured_queries)


@pytest.mark.django_db
@pytest.mark.parametrize("path", ENDPOINTS)
def test_query_count_does_not_grow_with_records(api, stages, path, django_assert_max_num_queries):
    add_records(3, stages)
    queries(api, path)  # the first request also loads the user's permissions into their cache
    few = queries(api, path)

    add_records(27, stages)
    with django_assert_max_num_queries(few):
        many = queries(api, path)

    assert many == few
    assert few <= 12
