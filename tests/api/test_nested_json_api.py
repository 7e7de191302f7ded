"""A JSON body (or cursor) nested deeper than any real request is a 400 that says so, not a 500."""

import base64

import pytest

from tests.api.conftest import url
from tests.factories import LeadFactory

DEPTHS = [33, 1000, 100_000]


def nested(depth: int, kind: str) -> str:
    if kind == "array":
        return "[" * depth + "]" * depth
    return '{"a":' * depth + "1" + "}" * depth


@pytest.mark.django_db
@pytest.mark.parametrize("depth", DEPTHS)
@pytest.mark.parametrize("kind", ["array", "object"])
@pytest.mark.parametrize("where", ["body", "field"])
def test_a_deeply_nested_body_answers_400_with_a_detail(api, stages, depth, kind, where):
    """Issue 14 finding 18: a JSON body nested 1,000 deep (RecursionError) is a 400 naming the limit."""
    value = nested(depth, kind)
    body = value if where == "body" else f'{{"name": {value}}}'

    response = api.post(url("leads/"), body, content_type="application/json")

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert "nest" in response.json()["detail"]
    assert "32" in response.json()["detail"]


@pytest.mark.django_db
def test_a_deeply_nested_action_body_answers_400(api, stages):
    """Issue 14 finding 18: the same on an action (every JSON body goes through one parser)."""
    lead = LeadFactory(stage=stages["New"])

    response = api.post(
        url(f"leads/{lead.pk}/move-stage/"), nested(1000, "array"), content_type="application/json"
    )

    assert response.status_code == 400
    assert "nest" in response.json()["detail"]


@pytest.mark.django_db
def test_a_body_nested_as_deep_as_allowed_is_read(api, stages):
    """Issue 14 finding 18: 32 levels are read as before (here refused by the serializer, per field)."""
    response = api.post(url("leads/"), f'{{"name": {nested(31, "array")}}}', content_type="application/json")

    assert response.status_code == 400
    assert "name" in response.json()


@pytest.mark.django_db
def test_a_cursor_nesting_json_deeply_answers_400(api, stages):
    """Issue 14 finding 18: the list's cursor is JSON too; a deeply nested one is a 400."""
    token = base64.urlsafe_b64encode(nested(1000, "array").encode()).decode().rstrip("=")

    response = api.get(url("leads/"), {"cursor": token})

    assert response.status_code == 400
    assert "cursor" in response.json()
