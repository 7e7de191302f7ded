"""The kanban selectors: stage columns with counts, totals and the first cards, at a fixed query cost."""

from decimal import Decimal

import pytest

from crm import selectors
from sales.selectors import opportunity_kanban
from tests.factories import LeadFactory, OpportunityFactory, PipelineFactory, StageFactory, UserFactory


@pytest.mark.django_db
def test_lead_kanban_columns_in_stage_order_with_counts_totals_and_first_cards(stages, pipeline):
    user = UserFactory()
    new = [LeadFactory(name=f"new {i}", expected_revenue=Decimal("100.50")) for i in range(3)]
    LeadFactory(name="qualified", stage=stages["Qualified"], expected_revenue=None)
    LeadFactory(pipeline=StageFactory(pipeline=PipelineFactory(name="Other")).pipeline)

    board = selectors.lead_kanban(user=user, limit=2)

    assert board.pipeline == pipeline
    assert [column.stage.name for column in board.columns] == ["New", "Qualified", "Proposal", "Won", "Lost"]
    assert [(column.count, column.total) for column in board.columns] == [
        (3, Decimal("301.50")),
        (1, Decimal("0.00")),
        (0, Decimal("0.00")),
        (0, Decimal("0.00")),
        (0, Decimal("0.00")),
    ]
    # Newest first (the leads' default order), two cards at most.
    assert [lead.name for lead in board.columns[0].results] == [new[2].name, new[1].name]
    assert [lead.name for lead in board.columns[1].results] == ["qualified"]


@pytest.mark.django_db
def test_lead_kanban_applies_list_filters_and_ordering(stages):
    LeadFactory(name="b hot", rating="hot")
    LeadFactory(name="a hot", rating="hot")
    LeadFactory(name="cold", rating="cold")

    board = selectors.lead_kanban(user=UserFactory(), filters={"rating": "hot", "ordering": "name"})

    assert board.columns[0].count == 2
    assert [lead.name for lead in board.columns[0].results] == ["a hot", "b hot"]


@pytest.mark.django_db
def test_opportunity_kanban_totals_amounts(stages):
    OpportunityFactory(amount=Decimal("10.25"))
    OpportunityFactory(amount=Decimal("4.75"), stage=stages["Proposal"])

    board = opportunity_kanban(user=UserFactory())

    totals = {column.stage.name: (column.count, column.total) for column in board.columns}
    assert totals["New"] == (1, Decimal("10.25"))
    assert totals["Proposal"] == (1, Decimal("4.75"))


@pytest.mark.django_db
@pytest.mark.parametrize("per_stage", [1, 8])
def test_kanban_query_count_does_not_grow_with_cards(stages, django_assert_num_queries, per_stage):
    for stage in ("New", "Qualified", "Proposal"):
        for _ in range(per_stage):
            lead = LeadFactory(stage=stages[stage])
            lead.tags.create(name=f"t{lead.pk}")
    user = UserFactory()

    # pipeline's stages, grouped totals, ranked cards, their tags (the default pipeline lookup is one more,
    # and the reader's CRM Admin membership, read once per user object)
    with django_assert_num_queries(6):
        board = selectors.lead_kanban(user=user, limit=5)
        assert [tag.name for column in board.columns for card in column.results for tag in card.tags.all()]


@pytest.mark.django_db
def test_kanban_with_a_search_nothing_matches_has_empty_columns(stages):
    LeadFactory(name="Acme")

    board = selectors.lead_kanban(user=UserFactory(), filters={"search": "zzzz-nothing"})

    assert [(column.count, column.results) for column in board.columns] == [(0, [])] * len(board.columns)


@pytest.mark.django_db
def test_the_default_pipeline_and_its_stages_are_read_as_they_are_now(stages):
    """``default_pipeline`` and ``pipeline_stages`` run statements compiled once (crm.prepared) and give
    what the ORM reads at each call: another default, a new stage, a reordering are seen at once, by the
    board and by a new lead."""
    from crm.models import Pipeline
    from crm.models.pipeline import default_pipeline, pipeline_stages

    sales = stages["New"].pipeline
    assert default_pipeline() == Pipeline.objects.default() == sales
    assert pipeline_stages(sales.pk) == list(sales.stages.order_by("sequence", "id"))

    other = PipelineFactory(name="Partners")
    second, first = (
        StageFactory(pipeline=other, name="Second", sequence=2),
        StageFactory(pipeline=other, name="First", sequence=1),
    )
    Pipeline.objects.filter(pk=sales.pk).update(is_default=False)
    Pipeline.objects.filter(pk=other.pk).update(is_default=True)
    assert default_pipeline() == other and pipeline_stages(other.pk) == [first, second]
    assert [
        column.stage for column in selectors.lead_kanban(user=UserFactory(is_superuser=True)).columns
    ] == [
        first,
        second,
    ]
    assert LeadFactory(pipeline=None, stage=None).stage == first

    type(first).objects.filter(pk=first.pk).update(sequence=3)
    assert pipeline_stages(other.pk) == [second, first]
    Pipeline.objects.filter(pk=other.pk).update(is_default=False)
    assert default_pipeline() is None
