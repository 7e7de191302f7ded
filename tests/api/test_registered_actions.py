"""Actions another app registers on a crm viewset (crm.api.viewsets.register_viewset_action): sales'
`convert` is routed, documented and answered exactly like an action the lead viewset declares."""

from collections import defaultdict

import pytest
from django.core.exceptions import ImproperlyConfigured
from rest_framework.decorators import action
from rest_framework.response import Response

from crm.api import viewsets
from crm.api.serializers import LeadConvertInputSerializer
from crm.api.views import LeadViewSet
from crm.models import Lead
from sales.api.convert import convert
from sales.models import Opportunity
from tests.api.conftest import url
from tests.factories import LeadFactory

CONVERT = "/api/v1/crm/leads/{id}/convert/"


@pytest.fixture
def schema(client, db):
    return client.get("/api/schema/", {"format": "json"}).json()


def test_sales_convert_is_an_action_of_the_lead_viewset():
    assert viewsets.registered_viewset_actions("crm.lead")["convert"] is convert
    assert "convert" in {extra.__name__ for extra in LeadViewSet.get_extra_actions()}
    assert LeadViewSet.action_serializers["convert"] is LeadConvertInputSerializer


def test_the_registered_action_is_documented_like_a_declared_one(schema):
    operation = schema["paths"][CONVERT]["post"]

    assert (operation["operationId"], operation["summary"], operation["tags"]) == (
        "leads_convert_create",
        "Convert a lead",
        ["leads"],
    )
    request = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    ok = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert (request, ok) == (
        "#/components/schemas/LeadConvertInputRequest",
        "#/components/schemas/LeadConvertResult",
    )
    assert {"400", "403", "404", "409"} <= set(operation["responses"])


@pytest.mark.django_db
def test_the_registered_action_answers_at_its_url(api, stages):
    lead = LeadFactory(company_name="Acme Corp", contact_name="Ann Lee")

    response = api.post(url(f"leads/{lead.pk}/convert/"), {"create_contact": False})

    assert response.status_code == 200, response.json()
    opportunity = Opportunity.objects.get()
    assert response.json()["opportunity"]["id"] == opportunity.pk
    assert response.json()["contact"] is None
    assert Lead.objects.get(pk=lead.pk).converted_opportunity == opportunity


@pytest.mark.django_db
def test_the_registered_action_names_its_input_fields_in_errors(api, stages):
    lead = LeadFactory()

    response = api.post(url(f"leads/{lead.pk}/convert/"), {"account_id": 0})

    assert response.status_code == 400
    assert set(response.json()) == {"account_id"}


@pytest.fixture
def empty_registry(monkeypatch):
    monkeypatch.setattr(viewsets, "_registered_actions", defaultdict(dict))
    monkeypatch.setattr(viewsets, "_labelled_viewsets", defaultdict(list))


@action(detail=True, methods=["post"])
def ping(self, request, pk=None):
    return Response({"pong": pk})


def test_an_action_registered_before_its_viewset_exists_is_attached_when_it_is_defined(empty_registry):
    viewsets.register_viewset_action("tests.thing", ping)

    class ThingViewSet(viewsets.ServiceModelViewSet):
        record_label = "tests.thing"

    assert ThingViewSet.ping is ping
    assert [extra.__name__ for extra in ThingViewSet.get_extra_actions()] == ["ping"]


def test_an_action_registered_after_its_viewset_exists_is_attached_at_once(empty_registry):
    class ThingViewSet(viewsets.ServiceModelViewSet):
        record_label = "tests.thing"

    viewsets.register_viewset_action("tests.thing", ping, input_serializer=LeadConvertInputSerializer)

    assert ThingViewSet.ping is ping
    assert ThingViewSet.action_serializers == {"ping": LeadConvertInputSerializer}
    assert viewsets.ServiceModelViewSet.action_serializers == {}  # the base's dict is not shared


def test_a_plain_function_or_a_name_the_viewset_already_has_is_refused(empty_registry):
    def not_routed(self, request):
        return None

    class ThingViewSet(viewsets.ServiceModelViewSet):
        record_label = "tests.thing"

        @action(detail=True, methods=["post"])
        def ping(self, request, pk=None):
            return Response()

    with pytest.raises(ImproperlyConfigured, match="not a DRF @action"):
        viewsets.register_viewset_action("tests.thing", not_routed)
    with pytest.raises(ImproperlyConfigured, match="already has"):
        viewsets.register_viewset_action("tests.thing", ping)
