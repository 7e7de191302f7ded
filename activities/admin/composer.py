"""The quick composer on a record's page: a note, a call, a task, a meeting or an email in one box,
written by the note and activity services and back to the record's page."""

import datetime

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.template.loader import render_to_string
from django.urls import path, reverse
from django.utils import timezone

from activities import selectors, services
from activities.admin.pages import _person
from activities.admin.records import _back
from activities.attachables import record_admin_url, record_type_of
from activities.models import ActivityStatus, ActivityType

KINDS = [
    ("note", "Note"),
    (ActivityType.CALL, "Call"),
    (ActivityType.TASK, "Task"),
    (ActivityType.MEETING, "Meeting"),
    (ActivityType.EMAIL, "Email"),
]
# Logged after the fact (done now) or planned (scheduled, tomorrow 10:00 unless a time is given).
DONE_KINDS = {ActivityType.CALL, ActivityType.EMAIL}


class ComposerForm(forms.Form):
    kind = forms.ChoiceField(choices=KINDS)
    record_type = forms.CharField(max_length=32)
    record_id = forms.IntegerField(min_value=1, max_value=2**63 - 1)
    subject = forms.CharField(max_length=200, required=False)
    body = forms.CharField(required=False, max_length=20_000)
    when = forms.DateTimeField(required=False, input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"])


def activity_links(record) -> dict:
    """The activity's links for a record: the record itself and the account and contact around it."""
    model = record._meta.model_name
    links = {model: record}
    if model in ("opportunity", "contact") and record.account_id:
        links["account"] = record.account
    if model == "opportunity" and record.contact_id:
        links["contact"] = record.contact
    return links


def composer_panel(*, request, obj) -> str:
    """The composer above the timeline, with the kinds the user may write."""
    record_type = record_type_of(obj)
    user = request.user
    kinds = [
        (value, label)
        for value, label in KINDS
        if user.has_perm("activities.add_note" if value == "note" else "activities.add_activity")
    ]
    if record_type is None or not kinds:
        return ""
    context = {
        "kinds": kinds,
        "record_type": record_type,
        "record": obj,
        "url": reverse("admin:activities_activity_compose"),
        "back": request.get_full_path(),
    }
    return render_to_string("admin/activities/composer.html", context, request=request)


class ComposerAdminMixin:
    """``compose/`` on the activities admin: what the composer posts."""

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("compose/", wrap(self.compose_view), name="activities_activity_compose"),
            *super().get_urls(),
        ]

    def compose_view(self, request):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        form = ComposerForm(request.POST)
        fallback = reverse("admin:activities_activity_changelist")
        if not form.is_valid():
            problems = "; ".join(f"{name}: {' '.join(errors)}" for name, errors in form.errors.items())
            self.message_user(request, f"Nothing was written. {problems}", messages.ERROR)
            return HttpResponseRedirect(_back(request, fallback))
        data = form.cleaned_data
        kind = data["kind"]
        needed = "activities.add_note" if kind == "note" else "activities.add_activity"
        if not request.user.has_perm(needed):
            raise PermissionDenied
        try:
            with transaction.atomic():
                record = selectors.record_of(
                    user=request.user, record_type=data["record_type"], record_id=data["record_id"]
                )
                fallback = record_admin_url(data["record_type"], record.pk) or fallback
                if kind == "note":
                    services.note_create(user=request.user, record=record, body=data["body"])
                    written = "Note added."
                else:
                    activity = services.activity_create(
                        user=request.user, data=self.composed_activity(kind, data, record)
                    )
                    written = f"{activity.get_activity_type_display()} “{activity.subject}” added."
        except ValidationError as exc:
            self.message_user(request, "Nothing was written. " + " ".join(exc.messages), messages.ERROR)
            return HttpResponseRedirect(_back(request, fallback))
        self.message_user(request, written, messages.SUCCESS)
        return HttpResponseRedirect(_back(request, fallback))

    @staticmethod
    def composed_activity(kind: str, data: dict, record) -> dict:
        now = timezone.now().replace(second=0, microsecond=0)
        done = kind in DONE_KINDS
        when = data["when"]
        if when is None:
            tomorrow = timezone.localtime(now) + datetime.timedelta(days=1)
            when = now if done else tomorrow.replace(hour=10, minute=0)
        label = dict(KINDS)[kind]
        return {
            **activity_links(record),
            "activity_type": kind,
            "subject": data["subject"].strip() or f"{label} with {_person(record)}",
            "description": data["body"],
            "due_date": when,
            "status": ActivityStatus.COMPLETED if done else ActivityStatus.SCHEDULED,
        }
