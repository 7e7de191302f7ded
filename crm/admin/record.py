"""A record's change page as a CRM page: action buttons, a timeline, and the shared mark-lost page.

Other apps add to a crm record's page without crm importing them (as with register_inline):
``register_record_actions`` adds buttons (activities adds "Log a call" / "Schedule a meeting") and
``register_timeline`` adds entries (activities adds the record's activities). The pipeline engine's
stage history joins the timeline the same way: a source returning ``TimelineEntry(kind="stage")``.
"""

import datetime
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from crm.models import LostReason
from crm.selectors import stage_history


@dataclass
class RecordAction:
    """A button in a change page's object tools: a link, or a POST form carrying the CSRF token."""

    label: str
    url: str
    method: str = "get"
    css_class: str = ""


@dataclass
class TimelineEntry:
    """One dated thing that happened to a record, newest first on its page."""

    when: datetime.datetime | None
    kind: str
    title: str
    url: str = ""
    meta: str = ""
    detail: str = ""
    css_class: str = ""


TimelineSource = Callable[..., list[TimelineEntry]]
ActionsProvider = Callable[..., list[RecordAction]]

_timeline_sources: dict[str, list[TimelineSource]] = defaultdict(list)
_action_providers: dict[str, list[ActionsProvider]] = defaultdict(list)


def register_timeline(model_label: str, source: TimelineSource) -> None:
    """Add ``source(request=, obj=, limit=)`` → [TimelineEntry] to the timeline of ``model_label``."""
    if source not in _timeline_sources[model_label]:
        _timeline_sources[model_label].append(source)


def register_record_actions(model_label: str, provider: ActionsProvider) -> None:
    """Add ``provider(request=, obj=)`` → [RecordAction] to the buttons of ``model_label``'s change page."""
    if provider not in _action_providers[model_label]:
        _action_providers[model_label].append(provider)


class RecordPageMixin:
    """Change pages with the record's actions in the object tools and its timeline under the form."""

    change_form_template = "admin/crm/record_change_form.html"
    timeline_limit = 50

    def get_record_actions(self, request, obj) -> list[RecordAction]:
        """The model's own buttons; a subclass adds its transitions before the registered ones."""
        return []

    def get_timeline(self, request, obj) -> list[TimelineEntry]:
        entries = []
        for source in _timeline_sources[self.model._meta.label_lower]:
            entries.extend(source(request=request, obj=obj, limit=self.timeline_limit))
        # Newest first; undated entries go last.
        epoch = datetime.datetime.min.replace(tzinfo=datetime.UTC)
        entries.sort(key=lambda entry: entry.when or epoch, reverse=True)
        return entries[: self.timeline_limit]

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and obj.pk:
            actions = self.get_record_actions(request, obj)
            for provider in _action_providers[self.model._meta.label_lower]:
                actions.extend(provider(request=request, obj=obj))
            context.update(
                record_actions=actions,
                timeline=self.get_timeline(request, obj),
                timeline_sources=bool(_timeline_sources[self.model._meta.label_lower]),
            )
        return super().render_change_form(request, context, add, change, form_url, obj)

    def record_url(self, obj, name: str = "change") -> str:
        opts = self.model._meta
        return reverse(f"admin:{opts.app_label}_{opts.model_name}_{name}", args=[obj.pk])

    def page_context(self, request, obj, title: str, **extra) -> dict:
        """What every page about one record needs: the admin's context, breadcrumbs, the record."""
        return {
            **self.admin_site.each_context(request),
            "title": title,
            "subtitle": str(obj),
            "opts": self.model._meta,
            "original": obj,
            "has_view_permission": self.has_view_permission(request, obj),
            "change_url": self.record_url(obj),
            **extra,
        }

    def get_record_or_404(self, request, object_id, *, change: bool = True):
        obj = self.get_object(request, object_id)
        if obj is None:
            raise Http404(f"No {self.opts.verbose_name} with the id {object_id}.")
        allowed = (
            self.has_change_permission(request, obj) if change else self.has_view_permission(request, obj)
        )
        if not allowed:
            raise PermissionDenied
        return obj


class MarkLostForm(forms.Form):
    lost_reason = forms.ModelChoiceField(
        queryset=LostReason.objects.filter(is_active=True),
        required=False,
        empty_label="No reason given",
        label="Reason",
    )
    lost_note = forms.CharField(
        label="Note",
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "cols": 60}),
        help_text="What happened, for whoever picks this up later.",
    )


def apply_service_errors(form: forms.Form, exc: ValidationError, field_map: dict | None = None) -> None:
    """File a service's ValidationError on the form: under its field when the form has it, else on top."""
    field_map = field_map or {}
    if not hasattr(exc, "error_dict"):
        form.add_error(None, exc.messages)
        return
    for key, errors in exc.error_dict.items():
        field = field_map.get(key, key)
        messages_ = [message for error in errors for message in error.messages]
        form.add_error(field if field in form.fields else None, messages_)


class MarkLostAdminMixin(RecordPageMixin):
    """``<id>/mark-lost/``: a reason and a note, then the app's mark-lost service."""

    def mark_lost_record(self, *, record, user, lost_reason, lost_note):
        raise NotImplementedError

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "<path:object_id>/mark-lost/",
                self.admin_site.admin_view(self.mark_lost_view),
                name="{}_{}_mark_lost".format(*info),
            ),
            *super().get_urls(),
        ]

    def mark_lost_view(self, request, object_id):
        obj = self.get_record_or_404(request, object_id)
        form = MarkLostForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            try:
                record = self.mark_lost_record(
                    record=obj,
                    user=request.user,
                    lost_reason=form.cleaned_data["lost_reason"],
                    lost_note=form.cleaned_data["lost_note"],
                )
            except ValidationError as exc:
                apply_service_errors(form, exc)
            else:
                self.log_change(request, record, "Marked lost.")
                reason = f" ({record.lost_reason})" if record.lost_reason_id else ""
                self.message_user(request, f"“{record}” is marked lost{reason}.", messages.SUCCESS)
                return HttpResponseRedirect(self.record_url(record))
        context = self.page_context(
            request,
            obj,
            f"Mark {self.opts.verbose_name} lost",
            form=form,
            closed=obj.is_closed,
        )
        return TemplateResponse(request, "admin/crm/mark_lost.html", context)


def stage_history_timeline_entries(*, request, obj, limit: int) -> list[TimelineEntry]:
    """A lead's or opportunity's stage changes as timeline entries, the newest ``limit`` of them.

    The entry for the current stage says how long the record has been there and how long it is open.
    """
    history = stage_history(user=request.user, record=obj)
    entries = []
    for change in history.entries[-limit:]:
        meta = []
        if change.changed_by_id:
            meta.append(change.changed_by.get_full_name() or change.changed_by.get_username())
        if change.duration is not None:
            meta.append(f"{timesince_text(change.duration)} in this stage")
        if change.from_stage_name:
            title = f"Stage: {change.from_stage_name} → {change.to_stage_name}"
        else:
            title = f"Stage: entered {change.to_stage_name}"
        entries.append(
            TimelineEntry(when=change.changed_at, kind="stage", title=title, meta=" · ".join(meta))
        )
    if entries:
        days = f"{history.days_open} day{'' if history.days_open == 1 else 's'}"
        entries[-1].detail = (
            f"Was open {days} before it closed."
            if obj.is_closed
            else f"Open {days}; {timesince_text(history.time_in_stage)} in its current stage."
        )
    return entries


def timesince_text(delta: datetime.timedelta) -> str:
    """A duration as people say it: "3 days", "5 hours", "less than a minute"."""
    seconds = int(delta.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'' if count == 1 else 's'}"
    return "less than a minute"


class ReopenForm(forms.Form):
    stage = forms.ModelChoiceField(
        queryset=None,
        required=False,
        empty_label="Where it last was",
        help_text="An open stage of its pipeline. Left empty: the last open stage it was in, else the first.",
    )

    def __init__(self, *args, record, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["stage"].queryset = record.pipeline.stages.filter(is_won=False, is_lost=False).order_by(
            "sequence", "id"
        )


class ReopenAdminMixin(RecordPageMixin):
    """``<id>/reopen/``: pick an open stage (or where it last was), then the app's reopen service."""

    reopenable_statuses: tuple[str, ...] = ()

    def reopen_record(self, *, record, user, stage):
        raise NotImplementedError

    def is_reopenable(self, obj) -> bool:
        return obj.status in self.reopenable_statuses

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "<path:object_id>/reopen/",
                self.admin_site.admin_view(self.reopen_view),
                name="{}_{}_reopen".format(*info),
            ),
            *super().get_urls(),
        ]

    def reopen_action(self, request, obj) -> list[RecordAction]:
        """The Reopen button, for a record that can be reopened by this user."""
        if self.is_reopenable(obj) and self.has_change_permission(request, obj):
            return [RecordAction("Reopen", self.record_url(obj, "reopen"), css_class="crm-tool-reopen")]
        return []

    def reopen_view(self, request, object_id):
        obj = self.get_record_or_404(request, object_id)
        form = ReopenForm(request.POST if request.method == "POST" else None, record=obj)
        if request.method == "POST" and form.is_valid():
            try:
                record = self.reopen_record(record=obj, user=request.user, stage=form.cleaned_data["stage"])
            except ValidationError as exc:
                apply_service_errors(form, exc)
            else:
                self.log_change(request, record, f"Reopened in {record.stage.name}.")
                self.message_user(
                    request, f"“{record}” is open again, in {record.stage.name}.", messages.SUCCESS
                )
                return HttpResponseRedirect(self.record_url(record))
        context = self.page_context(
            request,
            obj,
            f"Reopen {self.opts.verbose_name}",
            form=form,
            reopenable=self.is_reopenable(obj),
        )
        return TemplateResponse(request, "admin/crm/reopen.html", context)
