"""A deal's line items (an inline on the deal) and quotes: lines inline while a draft, the PDF, send,
revise. Every write goes through sales.services_quotes."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from crm.admin.base import (
    ServiceModelAdmin,
    VisibleRecordsAdminMixin,
    register_inline,
    register_inline_saver,
    save_inline_forms,
)
from crm.admin.record import apply_service_errors
from crm.money import money_format
from sales import services_quotes as services
from sales.models import OpportunityLine, Quote, QuoteLine
from sales.quote_links import quote_public_url
from sales.quote_pdf import quote_pdf_bytes
from sales.selectors import opportunity_visible_to
from sales.selectors_quotes import quote_visible_to

LINE_COLUMNS = (
    "product",
    "description",
    "quantity",
    "unit_price",
    "discount_percent",
    "tax_rate",
    "position",
    "net_amount",
    "tax_amount",
)


class LinesEditableInlineMixin:
    """Line rows are added, changed and deleted only while ``lines_editable(parent)`` says so."""

    def lines_editable(self, obj) -> bool:
        raise NotImplementedError

    def has_add_permission(self, request, obj=None):
        return super().has_add_permission(request, obj) and self.lines_editable(obj)

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and self.lines_editable(obj)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and self.lines_editable(obj)


# --- a deal's line items --------------------------------------------------------------------------


class OpportunityLineInline(LinesEditableInlineMixin, admin.TabularInline):
    model = OpportunityLine
    fields = LINE_COLUMNS
    readonly_fields = ("net_amount", "tax_amount")
    autocomplete_fields = ("product",)
    extra = 0
    verbose_name_plural = "line items (the deal's amount is their net total)"

    # On a saved deal only (its lines follow its creation), and read-only once it is won or lost.
    def lines_editable(self, obj) -> bool:
        return obj is not None and not obj.is_closed

    def has_view_permission(self, request, obj=None):
        return obj is not None and super().has_view_permission(request, obj)


def save_opportunity_line_inline(request, formset) -> None:
    save_inline_forms(
        request,
        formset,
        create=lambda user, data: services.opportunity_line_create(
            opportunity=data.pop("opportunity"), user=user, data=data
        ),
        update=lambda user, obj, data: services.opportunity_line_update(line=obj, user=user, data=data),
        delete=lambda user, obj: services.opportunity_line_delete(line=obj, user=user),
    )


register_inline("sales.opportunity", OpportunityLineInline)
register_inline_saver(OpportunityLine, save_opportunity_line_inline)


class LineAmountAdminMixin:
    """On a deal with line items the amount is their total: typing another is an error on the field."""

    def get_form(self, request, obj=None, change=False, **kwargs):
        form_class = super().get_form(request, obj, change, **kwargs)

        class LineAmountForm(form_class):
            def clean(self):
                cleaned = super().clean()
                if self.instance.pk and "amount" in self.changed_data and "amount" in cleaned:
                    try:
                        services.opportunity_amount_ensure_manual(
                            opportunity=self.instance, data={"amount": cleaned["amount"]}
                        )
                    except ValidationError as exc:
                        apply_service_errors(self, exc)
                return cleaned

        LineAmountForm.__name__ = form_class.__name__
        return LineAmountForm


# --- quotes ---------------------------------------------------------------------------------------


class QuoteLineInline(LinesEditableInlineMixin, admin.TabularInline):
    model = QuoteLine
    fields = LINE_COLUMNS
    readonly_fields = ("net_amount", "tax_amount")
    autocomplete_fields = ("product",)
    extra = 0

    def lines_editable(self, obj) -> bool:  # a new quote, or a draft: a sent quote is revised instead
        return obj is None or obj.is_editable


def save_quote_line_inline(request, formset) -> None:
    save_inline_forms(
        request,
        formset,
        create=lambda user, data: services.quote_line_write(quote=data.pop("quote"), user=user, data=data),
        update=lambda user, obj, data: services.quote_line_write(
            quote=obj.quote, user=user, line=obj, data=data
        ),
        delete=lambda user, obj: services.quote_line_write(quote=obj.quote, user=user, line=obj, delete=True),
    )


register_inline_saver(QuoteLine, save_quote_line_inline)


class QuoteSendForm(forms.Form):
    to = forms.EmailField(required=False, help_text="Empty: the deal's contact's email.")


@admin.register(Quote)
class QuoteAdmin(VisibleRecordsAdminMixin, ServiceModelAdmin):
    list_display = ("__str__", "opportunity", "status", "total_shown", "valid_until", "sent_at", "current")
    list_filter = ("status", "valid_until")
    list_select_related = ("opportunity",)
    search_fields = ("number", "opportunity__name")
    autocomplete_fields = ("opportunity",)
    fields = (
        "opportunity",
        "currency",
        "valid_until",
        "payment_terms",
        "notes",
        "status",
        "number",
        "version",
        "subtotal",
        "tax_total",
        "total",
        "recipient_email",
        "sent_at",
        "answered_at",
        "answered_by_name",
        "answered_from_ip",
        "superseded_at",
        "tools",
    )
    readonly_fields = (
        "status",
        "number",
        "version",
        "subtotal",
        "tax_total",
        "total",
        "recipient_email",
        "sent_at",
        "answered_at",
        "answered_by_name",
        "answered_from_ip",
        "superseded_at",
        "tools",
    )
    inlines = [QuoteLineInline]

    def visible_records(self, user):
        return quote_visible_to(user)

    def get_inlines(self, request, obj):
        return [] if obj is None else super().get_inlines(request, obj)

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and not obj.is_editable:
            return ("opportunity", *services.QUOTE_FIELDS, *self.readonly_fields)
        if obj is not None:
            return ("opportunity", *self.readonly_fields)
        return self.readonly_fields

    def has_delete_permission(self, request, obj=None):
        return False  # numbers are gap-free: a quote is kept (revise it, or leave a draft unsent)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "opportunity":
            kwargs["queryset"] = opportunity_visible_to(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def create_record(self, request, data):
        opportunity = data.pop("opportunity")
        return services.quote_create(opportunity=opportunity, user=request.user, data=data)

    def update_record(self, request, obj, data):
        return services.quote_update(quote=obj, user=request.user, data=data)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        if change and form.instance.is_editable:
            services.quote_lines_save(quote=form.instance, user=request.user)

    @admin.display(description="total", ordering="total")
    def total_shown(self, obj):
        return money_format(obj.total, currency=obj.currency)

    @admin.display(description="current", boolean=True)
    def current(self, obj):
        return obj.superseded_at is None

    @admin.display(description="quote")
    def tools(self, obj):
        if obj is None or obj.pk is None:
            return "—"
        prefix = "admin:sales_quote"
        links = [format_html('<a class="button" href="{}">PDF</a>', reverse(f"{prefix}_pdf", args=[obj.pk]))]
        if obj.superseded_at is None and obj.status in ("draft", "sent"):
            links.append(
                format_html('<a class="button" href="{}">Send…</a>', reverse(f"{prefix}_send", args=[obj.pk]))
            )
        if obj.superseded_at is None and obj.status != "accepted":
            links.append(
                format_html(
                    '<a class="button" href="{}">Revise…</a>', reverse(f"{prefix}_revise", args=[obj.pk])
                )
            )
        if obj.superseded_at is None and obj.status == "sent":
            links.append(format_html('<a href="{}">customer link</a>', quote_public_url(obj)))
        return format_html(" ".join(["{}"] * len(links)), *links)

    # --- pages: PDF, send, revise ----------------------------------------------------------------------

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<path:object_id>/pdf/", view(self.pdf_view), name="sales_quote_pdf"),
            path("<path:object_id>/send/", view(self.send_view), name="sales_quote_send"),
            path("<path:object_id>/revise/", view(self.revise_view), name="sales_quote_revise"),
            *super().get_urls(),
        ]

    def _quote(self, request, object_id, change=False) -> Quote:
        quote = self.get_object(request, object_id)
        if quote is None:
            raise Http404("No such quote.")
        if change and not self.has_change_permission(request, quote):
            raise PermissionDenied
        if not change and not self.has_view_or_change_permission(request, quote):
            raise PermissionDenied
        return quote

    def pdf_view(self, request, object_id):
        if request.method != "GET":
            return HttpResponseNotAllowed(["GET"])
        quote = self._quote(request, object_id)
        if quote.pdf:
            with quote.pdf.open("rb") as stored:
                content = stored.read()
        else:
            content = quote_pdf_bytes(quote)
        response = HttpResponse(content, content_type="application/pdf")
        response["Content-Disposition"] = f'attachment; filename="{quote.number}-v{quote.version}.pdf"'
        return response

    def _change_url(self, quote) -> str:
        return reverse("admin:sales_quote_change", args=[quote.pk])

    def send_view(self, request, object_id):
        quote = self._quote(request, object_id, change=True)
        form = QuoteSendForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                quote = services.quote_send(quote=quote, user=request.user, to=form.cleaned_data["to"])
            except ValidationError as exc:
                apply_service_errors(form, exc)
            else:
                self.message_user(
                    request, f"Quote {quote} sent to {quote.recipient_email}.", messages.SUCCESS
                )
                return HttpResponseRedirect(self._change_url(quote))
        return self._page(request, quote, "Send quote", form, "Send")

    def revise_view(self, request, object_id):
        quote = self._quote(request, object_id, change=True)
        form = forms.Form(request.POST or None)
        if request.method == "POST":
            try:
                new = services.quote_revise(quote=quote, user=request.user)
            except ValidationError as exc:
                self.message_user(request, " ".join(exc.messages), messages.ERROR)
                return HttpResponseRedirect(self._change_url(quote))
            self.message_user(request, f"Quote {new} is a new draft; {quote} is frozen.", messages.SUCCESS)
            return HttpResponseRedirect(self._change_url(new))
        return self._page(request, quote, "Revise quote", form, "Make a new version")

    def _page(self, request, quote, title, form, submit):
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": quote,
            "title": f"{title} {quote}",
            "form": form,
            "submit": submit,
        }
        return TemplateResponse(request, "admin/sales/quote/action.html", context)
