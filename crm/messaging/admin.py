"""Email templates in the admin (with a preview on a chosen lead or contact) and the sent-email log."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from crm.admin.base import KnownKeysAutocompleteSelect, ServiceModelAdmin
from crm.messaging import selectors, services
from crm.messaging.context import placeholder_names
from crm.models import EmailTemplate, OutgoingEmail, OutgoingEmailStatus, SequenceEnrollment

PLACEHOLDER_HELP = (
    "Placeholders: {{ recipient.first_name }}, {{ lead.name }}, {{ contact.account.name }}, "
    '{{ sender.full_name }}… and {% if lead.rating == "Hot" %}…{% endif %}. Values are escaped.'
)


class EmailTemplateForm(forms.ModelForm):
    class Meta:
        model = EmailTemplate
        fields = ("name", "subject", "body_html", "body_text", "is_active")
        help_texts = {"body_html": PLACEHOLDER_HELP}


class PreviewForm(forms.Form):
    """Choose the record to preview on: a lead or a contact, searched by name."""

    def __init__(self, *args, user, admin_site, **kwargs):
        super().__init__(*args, **kwargs)
        from crm.selectors import contact_visible_to, lead_visible_to

        for name, queryset in (("lead", lead_visible_to(user)), ("contact", contact_visible_to(user))):
            self.fields[name] = forms.ModelChoiceField(
                queryset=queryset,
                required=False,
                widget=KnownKeysAutocompleteSelect(SequenceEnrollment._meta.get_field(name), admin_site),
            )

    def clean(self):
        data = super().clean()
        if bool(data.get("lead")) == bool(data.get("contact")):
            raise forms.ValidationError("Choose a lead or a contact (one of them).")
        return data


@admin.register(EmailTemplate)
class EmailTemplateAdmin(ServiceModelAdmin):
    form = EmailTemplateForm
    list_display = ("name", "subject", "is_active", "updated_at", "preview_link")
    list_filter = ("is_active",)
    search_fields = ("name", "subject")
    readonly_fields = ("placeholders", "preview_link")
    fieldsets = (
        (None, {"fields": ("name", "subject", "body_html", "body_text", "is_active")}),
        ("Placeholders and preview", {"fields": ("placeholders", "preview_link")}),
    )

    def get_queryset(self, request):
        return selectors.email_template_list(user=request.user)

    def create_record(self, request, data):
        return services.email_template_create(user=request.user, data=data)

    def update_record(self, request, obj, data):
        return services.email_template_update(template=obj, user=request.user, data=data)

    def delete_record(self, request, obj):
        services.email_template_delete(template=obj, user=request.user)

    @admin.display(description="placeholders you may use")
    def placeholders(self, obj):
        return ", ".join("{{ " + name + " }}" for name in placeholder_names())

    @admin.display(description="preview")
    def preview_link(self, obj):
        if obj is None or obj.pk is None:
            return "Save the template first, then preview it on a lead or a contact."
        return format_html(
            '<a href="{}">Preview on a record</a>', reverse("admin:crm_emailtemplate_preview", args=[obj.pk])
        )

    def get_urls(self):
        return [
            path(
                "<path:object_id>/preview/",
                self.admin_site.admin_view(self.preview_view),
                name="crm_emailtemplate_preview",
            ),
            *super().get_urls(),
        ]

    def preview_view(self, request, object_id):
        """Render the template on a chosen record: nothing is written, nothing is sent."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        template = self.get_object(request, object_id)
        if template is None:
            raise Http404("No such email template.")
        form = PreviewForm(request.GET or None, user=request.user, admin_site=self.admin_site)
        rendered = None
        if form.is_bound and form.is_valid():
            record = form.cleaned_data["lead"] or form.cleaned_data["contact"]
            rendered = services.email_template_preview(template=template, record=record, user=request.user)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Preview “{template}”",
            "opts": self.opts,
            "original": template,
            "form": form,
            "media": self.media + form.media,
            "rendered": rendered,
        }
        return TemplateResponse(request, "admin/crm/emailtemplate/preview.html", context)


@admin.register(OutgoingEmail)
class OutgoingEmailAdmin(admin.ModelAdmin):
    """The log of emails sent from templates: read-only; failed ones show their error."""

    list_display = ("id", "to", "subject", "status", "record", "template", "created_at", "sent_at", "error")
    list_filter = ("status", "template")
    search_fields = ("=to", "subject")
    list_select_related = ("lead", "contact", "template")
    show_full_result_count = False
    fields = (
        "to",
        "subject",
        "status",
        "error",
        "lead",
        "contact",
        "template",
        "enrollment",
        "sent_by",
        "created_at",
        "sent_at",
        "body_text",
        "body_html",
    )
    readonly_fields = fields
    actions = ["retry_send"]

    def get_queryset(self, request):
        return selectors.outgoing_email_list(user=request.user)

    @admin.action(description="Send the selected failed emails again")
    def retry_send(self, request, queryset):
        retried, refused = 0, []
        for email in queryset.filter(status=OutgoingEmailStatus.FAILED):
            services.outgoing_email_retry(email=email, user=request.user)
            retried += 1
        refused = queryset.exclude(status=OutgoingEmailStatus.FAILED).count()
        self.message_user(request, f"{retried} email(s) queued again.", messages.SUCCESS)
        if refused:
            self.message_user(
                request, f"{refused} email(s) skipped: only failed emails are sent again.", messages.WARNING
            )

    @admin.display(description="record")
    def record(self, obj):
        return obj.lead or obj.contact or "—"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
