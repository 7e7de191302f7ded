"""My notifications in the admin: the list (only my own), mark read / all read, and my preferences page."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from crm.models import Notification, NotificationChannel, NotificationKind, UserProfile
from crm.models.notifications import time_zone_validator
from crm.notifications import selectors, services

# Sections other apps add to a user's preferences page (activities adds the calendar feed), each a
# ``provider(request=)`` returning rendered HTML with its own form, so crm never imports them.
_profile_sections: list = []


def register_profile_section(provider) -> None:
    if provider not in _profile_sections:
        _profile_sections.append(provider)


class NotificationPreferencesForm(forms.Form):
    time_zone = forms.CharField(
        required=False,
        max_length=64,
        validators=[time_zone_validator],
        help_text="Like Europe/Paris. Empty: the server's time zone. The daily digest comes at 08:00 in it.",
    )

    def __init__(self, *args, channels: dict[str, str], **kwargs):
        super().__init__(*args, **kwargs)
        for kind, label in NotificationKind.choices:
            self.fields[kind] = forms.ChoiceField(
                label=label, choices=NotificationChannel.choices, initial=channels[kind]
            )


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    """Read-only: notifications are written by notify(); each user sees and marks only their own."""

    list_display = ("title_link", "kind", "created_at", "is_read")
    list_filter = ("kind", ("read_at", admin.EmptyFieldListFilter))
    search_fields = ("title",)
    actions = ["mark_read"]
    fields = (
        "kind",
        "title",
        "body",
        "url",
        "record_type",
        "record_id",
        "read_at",
        "emailed_at",
        "created_at",
    )
    readonly_fields = fields
    change_list_template = "admin/crm/notification/change_list.html"

    def get_queryset(self, request):
        return selectors.notification_list(user=request.user)

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_staff

    def has_view_permission(self, request, obj=None):
        return self.has_module_permission(request) and (obj is None or obj.recipient_id == request.user.pk)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_mark_permission(self, request):
        return self.has_module_permission(request)

    @admin.display(description="notification", ordering="id")
    def title_link(self, obj):
        if obj.url:
            return format_html('<a href="{}">{}</a>', obj.url, obj.title)
        return obj.title

    @admin.display(description="read", boolean=True, ordering="read_at")
    def is_read(self, obj):
        return obj.read_at is not None

    @admin.action(description="Mark the selected notifications read", permissions=["mark"])
    def mark_read(self, request, queryset):
        count = services.notification_mark_read(user=request.user, notifications=list(queryset))
        self.message_user(request, f"{count} notification(s) marked read.")

    def get_urls(self):
        return [
            path(
                "read-all/", self.admin_site.admin_view(self.read_all_view), name="crm_notification_read_all"
            ),
            path(
                "preferences/",
                self.admin_site.admin_view(self.preferences_view),
                name="crm_notification_preferences",
            ),
            *super().get_urls(),
        ]

    def read_all_view(self, request):
        if request.method != "POST" or not self.has_module_permission(request):
            raise PermissionDenied
        count = services.notification_mark_all_read(user=request.user)
        self.message_user(request, f"{count} notification(s) marked read.")
        return HttpResponseRedirect(reverse("admin:crm_notification_changelist"))

    def preferences_view(self, request):
        if not self.has_module_permission(request):
            raise PermissionDenied
        channels = selectors.notification_channels(user=request.user)
        profile = UserProfile.objects.filter(user=request.user).first()
        initial = {"time_zone": profile.time_zone if profile else ""}
        form = NotificationPreferencesForm(request.POST or None, channels=channels, initial=initial)
        if request.method == "POST" and form.is_valid():
            try:
                with transaction.atomic():
                    for kind in NotificationKind.values:
                        if form.cleaned_data[kind] != channels[kind]:
                            services.notification_preference_set(
                                user=request.user, kind=kind, channel=form.cleaned_data[kind]
                            )
                    if form.cleaned_data["time_zone"] != initial["time_zone"]:
                        services.user_time_zone_set(
                            user=request.user, time_zone=form.cleaned_data["time_zone"]
                        )
            except ValidationError as exc:
                form.add_error(None, exc)
            else:
                self.message_user(request, "Your notification preferences are saved.", messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:crm_notification_preferences"))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "My notification preferences",
            "form": form,
            "profile_sections": [
                html for provider in _profile_sections if (html := provider(request=request))
            ],
        }
        return TemplateResponse(request, "admin/crm/notification/preferences.html", context)
