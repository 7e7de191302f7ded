"""Privacy requests in the admin (CRM Admins and superusers): the log of exports, erasures and
retention runs, a page to ask for a new export or erasure, and each export's JSON file to download."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from crm.admin.base import CRM_CHANGE_LIST_TEMPLATE, with_changelist_tool
from crm.models import PrivacyRequest, PrivacyRequestKind
from crm.privacy import services


def _may_manage(request) -> bool:
    if not hasattr(request, "_crm_manages_privacy"):
        request._crm_manages_privacy = services.privacy_manageable_by(request.user)
    return request._crm_manages_privacy


class PrivacyRequestForm(forms.Form):
    email = forms.EmailField(help_text="The person's address, as on their lead or contact.")
    kind = forms.ChoiceField(
        choices=[(k.value, k.label) for k in (PrivacyRequestKind.EXPORT, PrivacyRequestKind.ERASURE)],
        initial=PrivacyRequestKind.EXPORT,
        widget=forms.RadioSelect,
    )
    confirm = forms.BooleanField(
        required=False,
        label="I understand an erasure cannot be undone",
        help_text="Needed for an erasure.",
    )

    def clean(self):
        data = super().clean()
        if data.get("kind") == PrivacyRequestKind.ERASURE and not data.get("confirm"):
            self.add_error("confirm", "Tick this box to erase the person: an erasure cannot be undone.")
        return data


def export_response(privacy_request: PrivacyRequest, document: dict) -> HttpResponse:
    response = HttpResponse(services.export_json(document), content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="{services.export_filename(privacy_request)}"'
    return response


@admin.register(PrivacyRequest)
class PrivacyRequestAdmin(admin.ModelAdmin):
    """Read-only log; new requests go through the services from the "New privacy request" page."""

    list_display = ("id", "kind", "requested_by", "created_at", "total_records", "download")
    list_filter = ("kind",)
    list_select_related = ("requested_by",)
    show_full_result_count = False
    change_list_template = CRM_CHANGE_LIST_TEMPLATE
    fields = ("kind", "email", "email_hash", "requested_by", "created_at", "counts", "records")
    readonly_fields = fields

    def has_module_permission(self, request):
        return _may_manage(request)

    def has_view_permission(self, request, obj=None):
        return _may_manage(request)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="records")
    def total_records(self, obj):
        return obj.total

    @admin.display(description="export")
    def download(self, obj):
        if obj.kind != PrivacyRequestKind.EXPORT or not obj.email:
            return "—"
        return format_html(
            '<a href="{}" class="crm-privacy-download">Download JSON</a>',
            reverse("admin:crm_privacyrequest_download", args=[obj.pk]),
        )

    def get_urls(self):
        urls = [
            path("new/", self.admin_site.admin_view(self.new_view), name="crm_privacyrequest_new"),
            path(
                "<int:pk>/download/",
                self.admin_site.admin_view(self.download_view),
                name="crm_privacyrequest_download",
            ),
        ]
        return urls + super().get_urls()

    def changelist_view(self, request, extra_context=None):
        if _may_manage(request):
            extra_context = with_changelist_tool(
                extra_context, "New privacy request", reverse("admin:crm_privacyrequest_new"), "addlink"
            )
        return super().changelist_view(request, extra_context)

    def new_view(self, request):
        if not _may_manage(request):
            raise PermissionDenied
        form = PrivacyRequestForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            email, kind = form.cleaned_data["email"], form.cleaned_data["kind"]
            try:
                if kind == PrivacyRequestKind.EXPORT:
                    done, _ = services.privacy_export(user=request.user, email=email)
                    self.message_user(
                        request,
                        format_html(
                            "Export #{} is ready: <a href='{}'>download the JSON file</a> ({} records).",
                            done.pk,
                            reverse("admin:crm_privacyrequest_download", args=[done.pk]),
                            done.total,
                        ),
                        messages.SUCCESS,
                    )
                else:
                    done = services.privacy_erase(user=request.user, email=email)
                    self.message_user(
                        request,
                        f"Erasure #{done.pk}: {done.total} records anonymised ("
                        + ", ".join(f"{key.replace('_', ' ')} {n}" for key, n in done.counts.items())
                        + ").",
                        messages.SUCCESS,
                    )
                return HttpResponseRedirect(reverse("admin:crm_privacyrequest_change", args=[done.pk]))
            except ValidationError as exc:
                for field, errors in getattr(exc, "message_dict", {"__all__": exc.messages}).items():
                    form.add_error(field if field in form.fields else None, errors)
        context = {
            **self.admin_site.each_context(request),
            "title": "New privacy request",
            "opts": self.opts,
            "form": form,
        }
        return TemplateResponse(request, "admin/crm/privacyrequest/new.html", context)

    def download_view(self, request, pk):
        if not _may_manage(request):
            raise PermissionDenied
        privacy_request = PrivacyRequest.objects.filter(pk=pk).first()
        if privacy_request is None:
            raise Http404("No such privacy request.")
        try:
            document = services.privacy_export_document(user=request.user, privacy_request=privacy_request)
        except ValidationError as exc:
            self.message_user(request, " ".join(exc.messages), messages.ERROR)
            return HttpResponseRedirect(reverse("admin:crm_privacyrequest_changelist"))
        return export_response(privacy_request, document)
