"""Files and notes on record pages (a panel under the form: drop files, write a note; both in the
timeline), the files and notes lists, activity templates and the calendar feed's secret."""

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import Http404, HttpResponseRedirect
from django.template.defaultfilters import filesizeformat
from django.template.loader import render_to_string
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe

from activities import selectors, services
from activities.api.calendar import feed_state, feed_url
from activities.api.records import attachment_response
from activities.attachables import attachable_model, record_admin_url, record_type_of
from activities.models import ActivityTemplate, Attachment, Note
from crm.admin.base import ServiceModelAdmin
from crm.admin.record import TimelineEntry
from crm.selectors import record_is_changeable

RECORD_LIMIT = 50


def _back(request, fallback: str) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        return target
    return fallback


def files_and_notes_panel(*, request, obj) -> str:
    """The files of the record (download links) with a drop zone to add several at once, and a note box."""
    record_type = record_type_of(obj)
    if record_type is None:
        return ""
    user = request.user
    filters = {"record_type": record_type, "record_id": obj.pk}
    files = list(selectors.attachment_list(user=user, filters=filters)[:RECORD_LIMIT])
    context = {
        "record_type": record_type,
        "record": obj,
        "files": files,
        "can_upload": user.has_perm("activities.add_attachment"),
        "can_note": user.has_perm("activities.add_note"),
        "upload_url": reverse("admin:activities_attachment_upload"),
        "note_url": reverse("admin:activities_note_add"),
        "back": request.get_full_path(),
        "max_bytes": settings.CRM_FILE_MAX_BYTES,
    }
    return render_to_string("admin/activities/record_panel.html", context, request=request)


def notes_and_files_timeline(*, request, obj, limit: int) -> list[TimelineEntry]:
    """The record's notes (rendered, sanitised) and files as timeline entries: two queries."""
    record_type = record_type_of(obj)
    if record_type is None:
        return []
    filters = {"record_type": record_type, "record_id": obj.pk}
    entries = []
    for note in selectors.note_list(user=request.user, filters=filters)[:limit]:
        author = note.author.get_full_name() or note.author.get_username() if note.author_id else ""
        entries.append(
            TimelineEntry(
                when=note.created_at,
                kind="note",
                title="Note",
                url=reverse("admin:activities_note_change", args=[note.pk]),
                meta=author,
                detail=mark_safe(note.body_html),  # sanitised by nh3 when it was saved
            )
        )
    for attachment in selectors.attachment_list(user=request.user, filters=filters)[:limit]:
        who = attachment.uploaded_by.get_username() if attachment.uploaded_by_id else ""
        entries.append(
            TimelineEntry(
                when=attachment.created_at,
                kind="file",
                title=f"File: {attachment.name}",
                url=reverse("admin:activities_attachment_download", args=[attachment.pk]),
                meta=" · ".join(filter(None, [who, filesizeformat(attachment.size)])),
            )
        )
    return entries


class RecordLinkMixin:
    @admin.display(description="record")
    def record_link(self, obj):
        url = record_admin_url(obj.record_type, obj.record_id)
        label = f"{obj.record_type} #{obj.record_id}"
        return format_html('<a href="{}">{}</a>', url, label) if url else label


@admin.register(Attachment)
class AttachmentAdmin(RecordLinkMixin, ServiceModelAdmin):
    """Files of the records the user sees; they are added from a record's page and downloaded through a
    view that checks the record's visibility."""

    list_display = ("name", "record_link", "size_shown", "mime_type", "uploaded_by", "created_at", "download")
    list_filter = ("record_type", "mime_type")
    list_select_related = ("uploaded_by",)
    search_fields = ("name",)
    readonly_fields = ("name", "record_type", "record_id", "size", "mime_type", "uploaded_by", "created_at")
    fields = readonly_fields
    show_full_result_count = False

    def get_queryset(self, request):
        return selectors.attachment_visible_to(request.user)

    def has_add_permission(self, request):
        return False  # from a record's page (upload/), where the record is known

    def has_change_permission(self, request, obj=None):
        return False  # a file is replaced by uploading another

    def delete_record(self, request, obj):
        services.attachment_delete(user=request.user, attachment=obj)

    @admin.display(description="size", ordering="size")
    def size_shown(self, obj):
        return filesizeformat(obj.size)

    @admin.display(description="")
    def download(self, obj):
        return format_html(
            '<a href="{}">Download</a>', reverse("admin:activities_attachment_download", args=[obj.pk])
        )

    def get_urls(self):
        return [
            path(
                "upload/", self.admin_site.admin_view(self.upload_view), name="activities_attachment_upload"
            ),
            path(
                "<path:object_id>/download/",
                self.admin_site.admin_view(self.download_view),
                name="activities_attachment_download",
            ),
            *super().get_urls(),
        ]

    def download_view(self, request, object_id):
        try:
            pk = int(object_id)
            attachment = selectors.attachment_visible_to(request.user).filter(pk=pk).first()
        except (TypeError, ValueError, OverflowError):
            attachment = None
        if attachment is None or not self.has_view_permission(request, attachment):
            raise Http404("No such file.")
        return attachment_response(attachment)

    def upload_view(self, request):
        """POST (multipart) record_type, record_id and one or more ``file``: all kept, or none."""
        if request.method != "POST":
            return HttpResponseRedirect(reverse("admin:activities_attachment_changelist"))
        if not request.user.has_perm("activities.add_attachment"):
            raise PermissionDenied
        back = _back(request, reverse("admin:activities_attachment_changelist"))
        try:
            with transaction.atomic():
                record = selectors.record_of(
                    user=request.user,
                    record_type=request.POST.get("record_type", ""),
                    record_id=request.POST.get("record_id", ""),
                )
                saved = services.attachments_create(
                    user=request.user, record=record, uploads=request.FILES.getlist("file")
                )
        except ValidationError as exc:
            self.message_user(request, "Nothing uploaded. " + " ".join(exc.messages), messages.ERROR)
            return HttpResponseRedirect(back)
        names = ", ".join(attachment.name for attachment in saved)
        self.message_user(request, f"Uploaded {len(saved)} file(s): {names}.", messages.SUCCESS)
        return HttpResponseRedirect(back)


class NoteForm(forms.ModelForm):
    record_type = forms.CharField(max_length=32)
    record_id = forms.IntegerField(min_value=1, max_value=2**63 - 1)

    class Meta:
        model = Note
        fields = ("record_type", "record_id", "body")


@admin.register(Note)
class NoteAdmin(RecordLinkMixin, ServiceModelAdmin):
    """Notes on the records the user sees; written from a record's page or here."""

    form = NoteForm
    list_display = ("__str__", "record_link", "author", "created_at")
    list_filter = ("record_type",)
    list_select_related = ("author",)
    search_fields = ("body",)
    show_full_result_count = False

    def get_queryset(self, request):
        return selectors.note_visible_to(request.user)

    def get_readonly_fields(self, request, obj=None):
        return ("record_type", "record_id", "rendered", "author") if obj else ()

    def get_fields(self, request, obj=None):
        return (
            ("record_type", "record_id", "author", "body", "rendered")
            if obj
            else ("record_type", "record_id", "body")
        )

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is not None:
            kwargs["form"] = forms.ModelForm
        return super().get_form(request, obj, change, **kwargs)

    @admin.display(description="as shown")
    def rendered(self, obj):
        return mark_safe(obj.body_html)  # sanitised by nh3 when it was saved

    def has_change_permission(self, request, obj=None):
        if obj is None or obj.author_id == request.user.pk:
            return super().has_change_permission(request, obj)
        record = attachable_model(obj.record_type)._default_manager.filter(pk=obj.record_id).first()
        return (
            super().has_change_permission(request, obj)
            and record is not None
            and record_is_changeable(user=request.user, record=record)
        )

    has_delete_permission = has_change_permission

    def create_record(self, request, data):
        record = selectors.record_of(
            user=request.user, record_type=data["record_type"], record_id=data["record_id"]
        )
        return services.note_create(user=request.user, record=record, body=data.get("body", ""))

    def update_record(self, request, obj, data):
        return services.note_update(user=request.user, note=obj, body=data.get("body", obj.body))

    def delete_record(self, request, obj):
        services.note_delete(user=request.user, note=obj)

    def response_add(self, request, obj, post_url_continue=None):
        back = _back(request, "")
        if back:
            super().response_add(request, obj, post_url_continue)
            return HttpResponseRedirect(back + "#timeline")
        return super().response_add(request, obj, post_url_continue)


@admin.register(ActivityTemplate)
class ActivityTemplateAdmin(ServiceModelAdmin):
    list_display = ("name", "activity_type", "default_duration_minutes", "follow_up_days", "is_active")
    list_filter = ("activity_type", "is_active")
    search_fields = ("name", "subject")
    readonly_fields = ("created_at", "updated_at")

    def create_record(self, request, data):
        return services.activity_template_create(user=request.user, data=data)

    def update_record(self, request, obj, data):
        return services.activity_template_update(user=request.user, template=obj, data=data)

    def delete_record(self, request, obj):
        services.activity_template_delete(user=request.user, template=obj)


def calendar_feed_section(*, request) -> str:
    """The calendar feed on the user's preferences page: whether they have one, and a button that makes
    a new secret URL (shown once)."""
    return render_to_string(
        "admin/activities/calendar_feed_section.html",
        {
            "feed": feed_state(request.user),
            "new_url": request.session.pop("crm_calendar_feed_url", None),
            "regenerate_url": reverse("admin:activities_activity_calendar_feed"),
        },
        request=request,
    )


def calendar_feed_regenerate_view(model_admin, request):
    """POST: a new secret for the user's feed; back to the preferences page, which shows it once."""
    if request.method != "POST" or not model_admin.has_view_permission(request):
        raise PermissionDenied
    token = services.calendar_feed_regenerate(user=request.user)
    request.session["crm_calendar_feed_url"] = feed_url(token)
    model_admin.message_user(
        request, "Your calendar feed has a new URL; the old one no longer works.", messages.SUCCESS
    )
    return HttpResponseRedirect(reverse("admin:crm_notification_preferences") + "#calendar-feed")
