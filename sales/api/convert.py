"""Lead conversion's API endpoint, POST /api/v1/crm/leads/{id}/convert/.

Converting creates an opportunity, so the endpoint belongs to sales; it is an action of the crm lead
viewset, registered there (crm.api.viewsets.register_viewset_action) from SalesConfig.ready, so crm
never imports sales and the URL and the OpenAPI docs are those of any lead action.
"""

from drf_spectacular.utils import extend_schema
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from crm import selectors
from crm.api.serializers import (
    AccountSerializer,
    ContactSerializer,
    LeadConvertInputSerializer,
    LeadConvertResultSerializer,
)
from crm.api.viewsets import (
    BAD_REQUEST,
    CONFLICT,
    NOT_FOUND,
    TransitionPermissions,
    record_answer,
    register_viewset_action,
    requires,
)
from sales.api.serializers import OpportunitySerializer
from sales.selectors import opportunity_list
from sales.services import lead_convert


@extend_schema(
    summary="Convert a lead",
    description="Turns an open lead into an opportunity and, as asked, a new or existing account and "
    "contact. An account of the same name (any case) and a contact of the same email are reused, "
    "never duplicated; an existing `account_id` or `contact_id` must be one the user's team may "
    "change (else 400 on that field), as must a contact reused for the lead's email that would join "
    "the account (400 on `create_contact`). The lead becomes `converted` and keeps links to what it "
    "produced. Every key "
    "is optional; a lead already converted or lost answers 409. Needs change_lead plus "
    "add_opportunity, add_account and add_contact.",
    request=LeadConvertInputSerializer,
    responses={200: LeadConvertResultSerializer, 400: BAD_REQUEST, 404: NOT_FOUND, 409: CONFLICT},
)
@action(
    detail=True,
    methods=["post"],
    permission_classes=[
        TransitionPermissions,
        requires("sales.add_opportunity", "crm.add_account", "crm.add_contact"),
    ],
)
def convert(self, request: Request, pk=None) -> Response:
    """POST /api/v1/crm/leads/{id}/convert/ (on crm.api.views.LeadViewSet: ``self``)."""
    lead = self.get_object()
    data = self.validated_input(LeadConvertInputSerializer)
    result = lead_convert(lead=lead, user=request.user, **data)
    # Each record as its own GET answers it (the result serializer nests their serializers).
    payload = {
        "lead": self.answer(result.lead),
        "account": result.account
        and record_answer(
            self, result.account, selector=selectors.account_list, serializer_class=AccountSerializer
        ),
        "contact": result.contact
        and record_answer(
            self, result.contact, selector=selectors.contact_list, serializer_class=ContactSerializer
        ),
        "opportunity": result.opportunity
        and record_answer(
            self, result.opportunity, selector=opportunity_list, serializer_class=OpportunitySerializer
        ),
    }
    return Response(payload)


def register() -> None:
    register_viewset_action("crm.lead", convert, input_serializer=LeadConvertInputSerializer)
