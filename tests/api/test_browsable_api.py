"""The browsable API (session users in a browser) and OPTIONS/HEAD answer on every kind of route."""

import pytest

from tests.api.conftest import url
from tests.factories import LeadFactory, OpportunityFactory

PATHS = [
    "",
    "leads/",
    "leads/{lead}/",
    "leads/kanban/",
    "leads/{lead}/convert/",
    "leads/{lead}/move-stage/",
    "opportunities/forecast/",
    "opportunities/{opportunity}/mark-won/",
    "dashboard/",
    "accounts/",
    "pipelines/",
    "activities/",
]


@pytest.mark.django_db
@pytest.mark.parametrize("path", PATHS)
def test_html_options_and_head_answer(api, stages, path):
    target = url(path.format(lead=LeadFactory().pk, opportunity=OpportunityFactory().pk))
    is_action = path.endswith(("convert/", "move-stage/", "mark-won/"))

    assert api.get(target, HTTP_ACCEPT="text/html").status_code == (405 if is_action else 200)
    assert api.options(target).status_code == 200
    assert api.head(target).status_code == (405 if is_action else 200)


@pytest.mark.django_db
def test_options_of_mark_won_advertises_no_body(api, stages):
    response = api.options(url(f"opportunities/{OpportunityFactory().pk}/mark-won/"))
    assert response.json()["actions"]["POST"] == {}
