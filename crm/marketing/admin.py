"""Segments and campaigns in the admin: a segment's page shows its live count and first records, a
campaign's page its figures and ROI; members are listed per campaign, with their status."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from crm.admin.base import ServiceModelAdmin, money
from crm.filters import segment_definition_errors, segment_filter_keys
from crm.marketing import selectors, sending, services
from crm.models import Campaign, CampaignMember, EmailUnsubscribe, Segment, SegmentKind

LIST_URLS = {
    "lead": "admin:crm_lead_changelist",
    "contact": "admin:crm_contact_changelist",
    "account": "admin:crm_account_changelist",
}


def _seen_by(obj, request):
    """The record with the user whose page shows it: its figures count only what that user sees."""
    if obj is not None:
        obj._viewer = request.user
    return obj


class SegmentForm(forms.ModelForm):
    class Meta:
        model = Segment
        fields = (
            "name",
            "description",
            "entity",
            "kind",
            "definition",
            "leads",
            "contacts",
            "accounts",
            "owner",
        )

    def clean(self):
        cleaned = super().clean()
        kind, entity = cleaned.get("kind"), cleaned.get("entity")
        definition = cleaned.get("definition") or {}
        if kind == SegmentKind.DYNAMIC and entity and "definition" in cleaned:
            for message in segment_definition_errors(entity, definition):
                self.add_error("definition", message)
        return cleaned


@admin.register(Segment)
class SegmentAdmin(ServiceModelAdmin):
    form = SegmentForm
    list_display = ("name", "entity", "kind", "owner", "updated_at", "records_link")
    list_filter = ("entity", "kind")
    list_select_related = ("owner",)
    search_fields = ("name",)
    autocomplete_fields = ("leads", "contacts", "accounts", "owner")
    readonly_fields = ("filters_help", "live_count", "preview")
    fieldsets = (
        (None, {"fields": ("name", "description", "entity", "kind", "owner")}),
        ("Filters (dynamic segments)", {"fields": ("definition", "filters_help")}),
        ("Members (static segments)", {"fields": ("leads", "contacts", "accounts")}),
        ("Who is in it now", {"fields": ("live_count", "preview")}),
    )

    def get_queryset(self, request):
        return selectors.segment_list(user=request.user)

    def get_object(self, request, object_id, from_field=None):
        return _seen_by(super().get_object(request, object_id, from_field), request)

    @admin.display(description="records")
    def records_link(self, obj):
        return format_html(
            '<a href="{}?segment={}">Open the list</a>', reverse(LIST_URLS[obj.entity]), obj.pk
        )

    @admin.display(description="filters you may use")
    def filters_help(self, obj):
        entity = obj.entity if obj and obj.pk else "lead"
        return ", ".join(segment_filter_keys(entity))

    @admin.display(description="live count")
    def live_count(self, obj):
        if not obj or not obj.pk:
            return "—"
        return selectors.segment_count(segment=obj, user=obj._viewer)

    @admin.display(description="first records")
    def preview(self, obj):
        if not obj or not obj.pk:
            return "—"
        rows = selectors.segment_preview(segment=obj, user=obj._viewer)["results"]
        if not rows:
            return "No records."
        return format_html(
            "<ul>{}</ul>", format_html_join("", "<li>{} {}</li>", ((r["name"], r["email"]) for r in rows))
        )

    def create_record(self, request, data):
        return services.segment_create(user=request.user, data=data)

    def update_record(self, request, obj, data):
        return services.segment_update(segment=obj, user=request.user, data=data)

    def delete_record(self, request, obj):
        services.segment_delete(segment=obj, user=request.user)


@admin.register(Campaign)
class CampaignAdmin(ServiceModelAdmin):
    list_display = (
        "name",
        "campaign_type",
        "status",
        "start_date",
        "end_date",
        "budget",
        "actual_cost",
        "members",
        "members_link",
    )
    list_filter = ("campaign_type", "status", "start_date")
    list_select_related = ("owner",)
    search_fields = ("name",)
    autocomplete_fields = ("owner", "email_template", "segment", "consent_purpose")
    readonly_fields = ("figures", "send_preview", "send_started_at")
    actions = ["send_email", "send_test_to_me"]
    fieldsets = (
        (None, {"fields": ("name", "campaign_type", "status", "owner", "description")}),
        (
            "Email",
            {
                "fields": (
                    "email_template",
                    "segment",
                    "consent_purpose",
                    "track_opens",
                    "track_clicks",
                    "send_started_at",
                    "send_preview",
                )
            },
        ),
        (
            "Dates and money",
            {"fields": ("start_date", "end_date", "budget", "actual_cost", "expected_revenue")},
        ),
        ("Figures", {"fields": ("figures",)}),
    )

    def get_queryset(self, request):
        return selectors.campaign_list(user=request.user)

    def get_object(self, request, object_id, from_field=None):
        return _seen_by(super().get_object(request, object_id, from_field), request)

    @admin.display(description="members", ordering="member_count")
    def members(self, obj):
        return obj.member_count

    @admin.display(description="")
    def members_link(self, obj):
        url = reverse("admin:crm_campaignmember_changelist")
        return format_html('<a href="{}?campaign__id__exact={}">Members</a>', url, obj.pk)

    @admin.display(description="figures (the records you see)")
    def figures(self, obj):
        if not obj or not obj.pk:
            return "—"
        stats = selectors.campaign_stats(campaign=obj, user=obj._viewer)
        roi = "—" if stats["roi"] is None else f"{stats['roi'] * 100:.2f} %"
        rows = [
            ("Members", stats["members"]),
            ("Responses", stats["responses"]),
            ("Leads", stats["leads"]),
            ("Opportunities", stats["opportunities"]),
            ("Won opportunities", stats["won_opportunities"]),
            ("Won revenue", money(stats["won_revenue"])),
            ("Cost per lead", money(stats["cost_per_lead"])),
            ("ROI", roi),
        ]
        return format_html("<table>{}</table>", format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", rows))

    @admin.display(description="a send now (the records you see)")
    def send_preview(self, obj):
        if not obj or not obj.pk:
            return "—"
        preview = sending.campaign_send_preview(campaign=obj, user=obj._viewer)
        excluded = ", ".join(
            f"{reason.replace('_', ' ')}: {n}" for reason, n in preview["excluded"].items() if n
        )
        return format_html(
            "{} would get the email; left out: {}. Sent already: {}.",
            preview["recipients"],
            excluded or "none",
            preview["already_sent"],
        )

    @admin.action(description="Send the campaign's email to its members", permissions=["change"])
    def send_email(self, request, queryset):
        for campaign in queryset:
            try:
                result = sending.campaign_send(campaign=campaign, user=request.user)
            except ValidationError as exc:
                self.message_user(request, f"{campaign}: {' '.join(exc.messages)}", messages.ERROR)
                continue
            excluded = sum(result["excluded"].values())
            self.message_user(
                request,
                f"{campaign}: {result['queued']} queued for sending, {excluded} left out "
                "(see the members' send log).",
                messages.SUCCESS,
            )

    @admin.action(description="Send me a test of the campaign's email", permissions=["change"])
    def send_test_to_me(self, request, queryset):
        for campaign in queryset:
            try:
                email = sending.campaign_test_send(campaign=campaign, user=request.user)
            except ValidationError as exc:
                self.message_user(request, f"{campaign}: {' '.join(exc.messages)}", messages.ERROR)
                continue
            self.message_user(request, f"{campaign}: a test was sent to {email.to}.", messages.SUCCESS)

    def create_record(self, request, data):
        return services.campaign_create(user=request.user, data=data)

    def update_record(self, request, obj, data):
        return services.campaign_update(campaign=obj, user=request.user, data=data)

    def delete_record(self, request, obj):
        services.campaign_delete(campaign=obj, user=request.user)


@admin.register(CampaignMember)
class CampaignMemberAdmin(ServiceModelAdmin):
    list_display = (
        "__str__",
        "campaign",
        "lead",
        "contact",
        "status",
        "send_status",
        "excluded_reason",
        "sent_at",
    )
    list_filter = ("status", "send_status", "excluded_reason", "campaign")
    list_select_related = ("campaign", "lead", "contact")
    search_fields = ("campaign__name", "lead__name", "lead__email", "contact__last_name", "contact__email")
    autocomplete_fields = ("campaign", "lead", "contact")
    fields = ("campaign", "lead", "contact", "status")
    send_log = ("send_status", "excluded_reason", "email", "sent_at", "opened_at", "clicked_at", "error")
    show_full_result_count = False

    def get_queryset(self, request):
        from django.db.models import Q

        from crm.selectors import lead_visible_to, user_sees_everything

        members = super().get_queryset(request)
        if user_sees_everything(request.user):
            return members
        return members.filter(Q(lead__isnull=True) | Q(lead__in=lead_visible_to(request.user)))

    def get_fields(self, request, obj=None):
        return self.fields + (self.send_log if obj is not None else ())

    def get_readonly_fields(self, request, obj=None):
        return ("campaign", "lead", "contact", *self.send_log) if obj is not None else ()

    def create_record(self, request, data):
        return services.campaign_member_create(user=request.user, data=data)

    def update_record(self, request, obj, data):
        return services.campaign_member_update(member=obj, user=request.user, data=data)

    def delete_record(self, request, obj):
        services.campaign_member_delete(member=obj, user=request.user)


@admin.register(EmailUnsubscribe)
class EmailUnsubscribeAdmin(ServiceModelAdmin):
    """The addresses that unsubscribed (from a campaign's link): read only, recorded by the link."""

    list_display = ("email", "campaign", "one_click", "created_at")
    list_filter = ("one_click",)
    search_fields = ("email",)
    list_select_related = ("campaign",)
    fields = ("email", "campaign", "one_click", "created_at")
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def create_record(self, request, data):
        raise PermissionDenied

    def update_record(self, request, obj, data):
        raise PermissionDenied
