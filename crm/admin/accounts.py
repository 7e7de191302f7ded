"""Accounts, with their contacts as rows (written by the contact services)."""

from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db import models
from django.forms.models import BaseInlineFormSet
from django.utils.html import format_html, format_html_join

from crm import selectors, services
from crm.admin.base import (
    ExtensibleInlinesMixin,
    OwnerDefaultMixin,
    ServiceHistoryAdmin,
    StaleEditGuardMixin,
    VisibleRecordsAdminMixin,
    money,
    register_inline_saver,
    save_inline_forms,
)
from crm.admin.duplicates import DuplicatesAdminMixin, MergeAdminMixin
from crm.admin.import_export import ImportExportAdminMixin
from crm.admin.record import (
    KeyFigure,
    RecordPageMixin,
    apply_service_errors,
    money_figure,
)
from crm.admin.scale import ScalableChangeListMixin
from crm.admin.tags import TagListMixin
from crm.automation.admin_actions import RunAutomationRuleMixin
from crm.filters import CHURN_BANDS
from crm.insights import churn_band_filter
from crm.marketing.admin_actions import AddToSegmentMixin
from crm.marketing.admin_filters import SegmentListFilter
from crm.models import Account, Contact


class ContactInlineFormSet(BaseInlineFormSet):
    def clean(self):
        """Validate each changed contact as contact_create/contact_update will (one primary contact per
        account, counting the other rows too), so a refusal is an error on its row."""
        super().clean()
        for form in self.forms:
            if form in self.deleted_forms or form.errors or not form.has_changed():
                continue
            try:
                # A new account has no contacts in the database yet to conflict with.
                form.instance.full_clean(exclude=["account"] if self.instance.pk is None else None)
            except ValidationError as exc:
                apply_service_errors(form, exc)
        primary = [
            form
            for form in self.forms
            if form not in self.deleted_forms and not form.errors and form.cleaned_data.get("is_primary")
        ]
        for form in primary[1:]:
            form.add_error("is_primary", "This account already has a primary contact.")


def save_contact_inline(request, formset) -> None:
    """Contacts added, changed or deleted on an account's page are written by the contact services."""
    save_inline_forms(
        request,
        formset,
        create=lambda user, data: services.contact_create(user=user, data=data),
        update=lambda user, obj, data: services.contact_update(contact=obj, user=user, data=data),
        delete=lambda user, obj: services.record_delete(instance=obj, user=user),
    )


register_inline_saver(Contact, save_contact_inline)


class ContactInline(admin.TabularInline):
    model = Contact
    formset = ContactInlineFormSet
    fields = ("first_name", "last_name", "email", "phone", "job_title", "is_primary", "is_active")
    extra = 0
    show_change_link = True


def _band(score: int) -> str:
    return "high" if score >= 70 else "medium" if score >= 40 else "low"


class ChurnRiskListFilter(admin.SimpleListFilter):
    title = "churn risk"
    parameter_name = "churn_risk"

    def lookups(self, request, model_admin):
        return CHURN_BANDS

    def queryset(self, request, queryset):
        return churn_band_filter(queryset, self.value()) if self.value() else queryset


@admin.register(Account)
class AccountAdmin(
    AddToSegmentMixin,
    RunAutomationRuleMixin,
    StaleEditGuardMixin,
    MergeAdminMixin,
    DuplicatesAdminMixin,
    RecordPageMixin,
    ImportExportAdminMixin,
    ExtensibleInlinesMixin,
    OwnerDefaultMixin,
    TagListMixin,
    ScalableChangeListMixin,
    VisibleRecordsAdminMixin,
    ServiceHistoryAdmin,
):
    actions = ["merge_selected", "run_automation_rule", "add_to_segment"]
    list_display = (
        "name",
        "account_type",
        "industry",
        "rating",
        "billing_city",
        "billing_country",
        "owner",
        "contacts",
        "opportunities",
        "open_value",
        "won_value",
        "churn",
        "tag_list",
    )
    list_filter = (
        "account_type",
        "industry",
        "rating",
        ChurnRiskListFilter,
        "is_active",
        "owner",
        "tags",
        "created_at",
        SegmentListFilter,
    )
    list_select_related = ("owner", "parent")
    search_fields = ("name", "website", "phone", "billing_city", "billing_country")
    autocomplete_fields = ("parent", "owner", "tags")
    date_hierarchy = "created_at"
    inlines = [ContactInline]
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    readonly_fields = ("created_at", "updated_at", "churn_risk_explained")
    fieldsets = (
        (None, {"fields": ("name", "account_type", "industry", "rating", "tier", "parent", "owner", "tags")}),
        ("Company", {"fields": ("website", "phone", "employees", "annual_revenue", "is_active")}),
        (
            "Billing address",
            {
                "fields": (
                    "billing_street",
                    "billing_city",
                    "billing_state",
                    "billing_zip",
                    "billing_country",
                )
            },
        ),
        ("Insights", {"fields": ("churn_risk_explained",)}),
        ("Record", {"fields": ("created_at", "updated_at"), "classes": ("collapse",)}),
    )

    def visible_records(self, user):
        return selectors.account_visible_to(user)

    def create_record(self, request, data):
        return services.account_create(user=request.user, data=data)

    def update_record(self, request, obj, data):
        return services.account_update(account=obj, user=request.user, data=data)

    def editable_records(self, user):
        return selectors.account_editable_by(user)

    def get_queryset(self, request):
        return selectors.account_annotate_aggregates(super().get_queryset(request), user=request.user)

    def get_key_figures(self, request, obj):
        """The account's roll-ups (of the records the reader sees): contacts, deals, open and won value."""
        owner = obj.owner
        figures = [
            KeyFigure("Contacts", str(getattr(obj, "contact_count", "—"))),
            KeyFigure("Deals", str(getattr(obj, "opportunity_count", "—"))),
            money_figure("Open value", getattr(obj, "open_value", None)),
            money_figure("Won value", getattr(obj, "won_value", None)),
            KeyFigure("Owner", (owner.get_full_name() or owner.get_username()) if owner else "Nobody"),
        ]
        if obj.industry:
            figures.append(KeyFigure("Industry", obj.get_industry_display()))
        return figures

    @admin.display(description="contacts", ordering="contact_count")
    def contacts(self, obj):
        return obj.contact_count

    @admin.display(description="opportunities", ordering="opportunity_count")
    def opportunities(self, obj):
        return obj.opportunity_count

    @admin.display(description="open value", ordering="open_value")
    def open_value(self, obj):
        return money(obj.open_value)

    @admin.display(description="won value", ordering="won_value")
    def won_value(self, obj):
        return money(obj.won_value)

    @admin.display(description="churn risk", ordering="churn_score")
    def churn(self, obj):
        score = getattr(obj, "churn_score", None)
        if score is None:
            return "—"
        top = (getattr(obj, "churn_reasons", None) or [{}])[0].get("text", "")
        return format_html(
            '<span class="crm-churn crm-churn-{}" title="{}">{}</span>', _band(score), top, score
        )

    @admin.display(description="churn risk")
    def churn_risk_explained(self, obj):
        score = getattr(obj, "churn_score", None)
        if obj is None or obj.pk is None:
            return "—"
        if score is None:
            return "No score: not a customer (no won deal), not scored yet, or not an account you may change."
        reasons = getattr(obj, "churn_reasons", None) or []
        items = format_html_join("", "<li>{} (+{} points)</li>", ((r["text"], r["points"]) for r in reasons))
        return format_html(
            '<strong class="crm-churn crm-churn-{}">{} / 100</strong><ul>{}</ul>'
            '<p class="help">A points model fitted on the accounts\' own history (README: Churn risk).</p>',
            _band(score),
            score,
            items or format_html("<li>{}</li>", "No warning sign."),
        )
