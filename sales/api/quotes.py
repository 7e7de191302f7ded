"""A deal's line items (``opportunities/{id}/lines/``) and quotes (``quotes/``: PDF, send, revise)."""

from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field, extend_schema_view
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from crm.api.serializers import TIMESTAMPS
from crm.api.viewsets import (
    BAD_REQUEST,
    CONFLICT,
    NOT_FOUND,
    ModelPermissions,
    ServiceModelViewSet,
    TransitionPermissions,
    crud_schema,
)
from sales import pricing
from sales import services_quotes as services
from sales.filters_quotes import QuoteFilter
from sales.models import Opportunity, OpportunityLine, Product, Quote, QuoteLine, QuoteStatus
from sales.quote_links import quote_public_url
from sales.quote_pdf import quote_pdf_bytes
from sales.selectors import opportunity_visible_to
from sales.selectors_quotes import opportunity_lines, quote_list

LINE_FIELDS = (
    "id",
    "position",
    "product_id",
    "product_sku",
    "description",
    "quantity",
    "unit_price",
    "discount_percent",
    "tax_rate",
    "net_amount",
    "tax_amount",
    "gross_amount",
)


class LineSerializer(serializers.ModelSerializer):
    product_id = serializers.PrimaryKeyRelatedField(
        source="product",
        queryset=Product.objects.all(),
        required=False,
        allow_null=True,
        help_text="A product (its name, price and tax rate fill what the line leaves empty), or null.",
    )
    product_sku = serializers.CharField(source="product.sku", read_only=True, allow_null=True)
    net_amount = serializers.DecimalField(
        max_digits=16,
        decimal_places=2,
        read_only=True,
        help_text="quantity × unit price − discount, half-up.",
    )
    tax_amount = serializers.DecimalField(
        max_digits=16, decimal_places=2, read_only=True, help_text="net × tax rate, half-up."
    )
    gross_amount = serializers.DecimalField(max_digits=16, decimal_places=2, read_only=True)

    class Meta:
        fields = LINE_FIELDS
        read_only_fields = ("id",)
        extra_kwargs = {
            "unit_price": {"required": False, "allow_null": True, "min_value": 0},
            "tax_rate": {"required": False, "allow_null": True},
            "position": {"required": False},
        }

    def validate(self, attrs):
        return {name: value for name, value in attrs.items() if not (value is None and name != "product")}


class OpportunityLineSerializer(LineSerializer):
    class Meta(LineSerializer.Meta):
        model = OpportunityLine


class QuoteLineSerializer(LineSerializer):
    id = serializers.IntegerField(read_only=True)

    class Meta(LineSerializer.Meta):
        model = QuoteLine


LINE_ID = OpenApiParameter("line_id", OpenApiTypes.INT, OpenApiParameter.PATH, description="The line's id.")


class LinePermissions(ModelPermissions):
    """A deal's lines are part of the deal: reading them needs view_opportunity, writing change_."""

    perms_map = {
        **ModelPermissions.perms_map,
        "POST": ["%(app_label)s.change_%(model_name)s"],
        "DELETE": ["%(app_label)s.change_%(model_name)s"],
    }


class OpportunityLinesViewSetMixin:
    """``opportunities/{id}/lines/`` and ``opportunities/{id}/lines/{line_id}/``."""

    @extend_schema(
        methods=["GET"],
        operation_id="opportunities_lines_list",
        summary="A deal's line items",
        filters=False,
        responses={200: OpportunityLineSerializer(many=True), 404: NOT_FOUND},
    )
    @extend_schema(
        methods=["POST"],
        operation_id="opportunities_lines_create",
        summary="Add a line item to a deal",
        description="The deal's amount becomes the net total of its lines (without tax). A won or lost "
        "deal answers 409; a negative quantity or price or a discount over 100 answers 400 on that field.",
        request=OpportunityLineSerializer,
        responses={201: OpportunityLineSerializer, 400: BAD_REQUEST, 404: NOT_FOUND, 409: CONFLICT},
    )
    @action(
        detail=True,
        methods=["get", "post"],
        url_path="lines",
        permission_classes=[LinePermissions],
        filter_backends=[],
        pagination_class=None,
    )
    def lines(self, request: Request, pk=None) -> Response:
        opportunity = self.get_object()
        if request.method == "GET":
            return Response(OpportunityLineSerializer(opportunity_lines(opportunity), many=True).data)
        data = self.validated_input(OpportunityLineSerializer)
        line = services.opportunity_line_create(opportunity=opportunity, user=request.user, data=data)
        return Response(OpportunityLineSerializer(line).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        methods=["GET"],
        operation_id="opportunities_line_retrieve",
        summary="One line item of a deal",
        parameters=[LINE_ID],
        filters=False,
        responses={200: OpportunityLineSerializer, 404: NOT_FOUND},
    )
    @extend_schema(
        methods=["PUT"],
        operation_id="opportunities_line_update",
        summary="Replace a line item of a deal",
        parameters=[LINE_ID],
        request=OpportunityLineSerializer,
        responses={200: OpportunityLineSerializer, 400: BAD_REQUEST, 404: NOT_FOUND, 409: CONFLICT},
    )
    @extend_schema(
        methods=["PATCH"],
        operation_id="opportunities_line_partial_update",
        summary="Change some fields of a line item",
        parameters=[LINE_ID],
        request=OpportunityLineSerializer,
        responses={200: OpportunityLineSerializer, 400: BAD_REQUEST, 404: NOT_FOUND, 409: CONFLICT},
    )
    @extend_schema(
        methods=["DELETE"],
        operation_id="opportunities_line_destroy",
        summary="Remove a line item",
        description="The deal's amount becomes the total of the lines left (with none left it stays, "
        "and is manual again).",
        parameters=[LINE_ID],
        responses={204: None, 404: NOT_FOUND, 409: CONFLICT},
    )
    @action(
        detail=True,
        methods=["get", "put", "patch", "delete"],
        url_path=r"lines/(?P<line_id>[0-9]{1,18})",
        permission_classes=[LinePermissions],
        filter_backends=[],
        pagination_class=None,
    )
    def line(self, request: Request, pk=None, line_id=None) -> Response:
        opportunity = self.get_object()
        line = get_object_or_404(opportunity_lines(opportunity), pk=line_id)
        if request.method == "GET":
            return Response(OpportunityLineSerializer(line).data)
        if request.method == "DELETE":
            services.opportunity_line_delete(line=line, user=request.user)
            return Response(status=status.HTTP_204_NO_CONTENT)
        serializer = OpportunityLineSerializer(
            line, data=request.data, partial=request.method == "PATCH", context=self.get_serializer_context()
        )
        serializer.is_valid(raise_exception=True)
        line = services.opportunity_line_update(line=line, user=request.user, data=serializer.validated_data)
        return Response(OpportunityLineSerializer(line).data)


# --- quotes ---------------------------------------------------------------------------------------


class TaxRateSerializer(serializers.Serializer):
    rate = serializers.DecimalField(max_digits=5, decimal_places=2)
    net = serializers.DecimalField(
        max_digits=16, decimal_places=2, help_text="Net amount taxed at this rate."
    )
    tax = serializers.DecimalField(max_digits=16, decimal_places=2)


class QuoteSerializer(serializers.ModelSerializer):
    opportunity_id = serializers.PrimaryKeyRelatedField(
        source="opportunity",
        queryset=Opportunity.objects.all(),
        help_text="The deal quoted (set on create only): its lines are copied unless `lines` is sent.",
    )
    opportunity_name = serializers.CharField(source="opportunity.name", read_only=True)
    lines = QuoteLineSerializer(many=True, required=False, help_text="When sent, they replace the lines.")
    tax_by_rate = serializers.SerializerMethodField()
    is_current = serializers.SerializerMethodField(help_text="False once revised: a frozen version.")
    pdf_url = serializers.SerializerMethodField(help_text="Download the PDF (GET).")
    acceptance_url = serializers.SerializerMethodField(
        help_text="The signed public link the customer accepts or declines at (a current sent quote only)."
    )
    created_by_id = serializers.IntegerField(read_only=True, allow_null=True)

    class Meta:
        model = Quote
        fields = (
            "id",
            "number",
            "version",
            "status",
            "opportunity_id",
            "opportunity_name",
            "currency",
            "valid_until",
            "payment_terms",
            "notes",
            "lines",
            "subtotal",
            "tax_by_rate",
            "tax_total",
            "total",
            "recipient_email",
            "sent_at",
            "answered_at",
            "answered_by_name",
            "answered_from_ip",
            "superseded_at",
            "is_current",
            "pdf_url",
            "acceptance_url",
            "created_by_id",
            *TIMESTAMPS,
        )
        read_only_fields = (
            "id",
            "number",
            "version",
            "status",
            "subtotal",
            "tax_total",
            "total",
            "recipient_email",
            "sent_at",
            "answered_at",
            "answered_by_name",
            "answered_from_ip",
            "superseded_at",
            *TIMESTAMPS,
        )
        validators: list = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        if request is not None and request.user.is_authenticated:
            self.fields["opportunity_id"].queryset = opportunity_visible_to(request.user)

    @extend_schema_field(TaxRateSerializer(many=True))
    def get_tax_by_rate(self, quote) -> list:
        figures = pricing.totals(quote.lines.all())
        rows = [{"rate": rate, "net": net, "tax": tax} for rate, (net, tax) in figures.tax_by_rate.items()]
        return TaxRateSerializer(rows, many=True).data

    def get_is_current(self, quote) -> bool:
        return quote.superseded_at is None

    def get_pdf_url(self, quote) -> str:
        return f"/api/v1/crm/quotes/{quote.pk}/pdf/"

    def get_acceptance_url(self, quote) -> str | None:
        if quote.status != QuoteStatus.SENT or quote.superseded_at is not None:
            return None
        return quote_public_url(quote)


class QuoteSendInputSerializer(serializers.Serializer):
    to = serializers.EmailField(
        required=False, allow_blank=True, help_text="Recipient. Default: the deal's contact's email."
    )


@extend_schema_view(**{k: v for k, v in crud_schema("quote", QuoteSerializer).items() if k != "destroy"})
class QuoteViewSet(ServiceModelViewSet):
    """Quotes of deals: numbered Q-<year>-<nnnn> without gaps, edited while a draft, sent by email with
    their PDF, accepted or declined by the customer online, revised into new versions."""

    serializer_class = QuoteSerializer
    filterset_class = QuoteFilter
    selector = staticmethod(quote_list)
    # Numbers are gap-free: a quote is never deleted (a draft no longer wanted is left, or revised).
    http_method_names = ["get", "post", "put", "patch", "head", "options"]
    action_serializers = {"send": QuoteSendInputSerializer}

    def create_record(self, data):
        lines = data.pop("lines", None)
        opportunity = data.pop("opportunity")
        return services.quote_create(opportunity=opportunity, user=self.request.user, data=data, lines=lines)

    def update_record(self, instance, data):
        lines = data.pop("lines", None)
        data.pop("opportunity", None)
        return services.quote_update(quote=instance, user=self.request.user, data=data, lines=lines)

    @extend_schema(
        summary="Send a quote by email",
        description="Marks a draft quote sent, stores its PDF and emails it (attached, with the link to "
        "accept or decline online) to `to` or the deal's contact. Sending a sent quote again re-sends it.",
        request=QuoteSendInputSerializer,
        responses={200: QuoteSerializer, 400: BAD_REQUEST, 404: NOT_FOUND},
    )
    @action(detail=True, methods=["post"], permission_classes=[TransitionPermissions])
    def send(self, request: Request, pk=None) -> Response:
        quote = self.get_object()
        data = self.validated_input(QuoteSendInputSerializer)
        return self.record_response(
            services.quote_send(quote=quote, user=request.user, to=data.get("to", ""))
        )

    @extend_schema(
        summary="Revise a quote",
        description="A new draft version (same number, version + 1) with the lines copied; the revised "
        "version is frozen. An accepted quote, or one already revised, answers 400.",
        request=None,
        responses={201: QuoteSerializer, 400: BAD_REQUEST, 404: NOT_FOUND},
    )
    @action(detail=True, methods=["post"], permission_classes=[TransitionPermissions])
    def revise(self, request: Request, pk=None) -> Response:
        quote = self.get_object()
        return self.record_response(
            services.quote_revise(quote=quote, user=request.user), status.HTTP_201_CREATED
        )

    @extend_schema(
        summary="Download a quote's PDF",
        description="The PDF stored when the quote was sent; a draft's is rendered now as a preview.",
        responses={(200, "application/pdf"): OpenApiTypes.BINARY, 404: NOT_FOUND},
        filters=False,
    )
    @action(detail=True, methods=["get"], filter_backends=[])
    def pdf(self, request: Request, pk=None) -> HttpResponse:
        quote = self.get_object()
        if quote.pdf:
            with quote.pdf.open("rb") as stored:
                content = stored.read()
        else:
            content = quote_pdf_bytes(quote)
        response = HttpResponse(content, content_type="application/pdf")
        response["Content-Disposition"] = f'attachment; filename="{quote.number}-v{quote.version}.pdf"'
        return response

    def perform_content_negotiation(self, request, force=False):
        if getattr(self, "action", None) == "pdf":
            renderer = self.get_renderers()[0]
            return renderer, renderer.media_type
        return super().perform_content_negotiation(request, force)
