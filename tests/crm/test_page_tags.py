"""``page_tag_rows``: a page's tags in one statement written once per model (lists, boards, changelists),
in the order the ORM's read gave them (by name, then id)."""

import pytest
from django.db import DEFAULT_DB_ALIAS

from crm.models import Lead
from crm.selectors.annotations import page_tag_rows
from sales.models import Opportunity
from tests.factories import LeadFactory, OpportunityFactory, TagFactory


@pytest.mark.django_db
@pytest.mark.parametrize("model, factory", [(Lead, LeadFactory), (Opportunity, OpportunityFactory)])
def test_a_pages_tags_are_what_the_orm_reads_in_name_order(stages, model, factory):
    zeta, alpha, beta, mid = (TagFactory(name=name) for name in ("Zeta", "alpha", "Beta", "Mid"))
    records = [factory(stage=stages["New"]) for _ in range(3)]
    records[0].tags.set([zeta, alpha, mid])
    records[1].tags.set([beta, alpha])
    ids = [record.pk for record in records]

    through = model.tags.through
    link = f"{model._meta.model_name}_id"
    expected = list(
        through.objects.filter(**{f"{link}__in": ids})
        .order_by("tag__name", "tag_id")
        .values_list(link, "tag_id", "tag__name", "tag__color")
    )
    assert page_tag_rows(model, ids, DEFAULT_DB_ALIAS, labels=True) == expected
    assert page_tag_rows(model, ids, DEFAULT_DB_ALIAS) == [row[:2] for row in expected]
    assert len(expected) == 5 and {row[0] for row in expected} == set(ids[:2])
    assert page_tag_rows(model, [], DEFAULT_DB_ALIAS) == []
    assert page_tag_rows(model, [ids[2]], DEFAULT_DB_ALIAS) == []
