"""A record's change page as a CRM page: action buttons and a timeline (transitions: crm.admin.transitions).

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
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.urls import reverse

from crm.money import money_format
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


@dataclass
class KeyFigure:
    """One figure in a record page's header: "Value $12K" (``title``: "$12,000", on hover)."""

    label: str
    value: str
    url: str = ""
    css_class: str = ""
    title: str = ""


def money_figure(label: str, amount) -> KeyFigure:
    """An amount in the header: compact ("$12K"), the full amount on hover."""
    return KeyFigure(label, money_format(amount, compact=True), title=money_format(amount))


TimelineSource = Callable[..., list[TimelineEntry]]
ActionsProvider = Callable[..., list[RecordAction]]
# (request=, obj=) -> HTML (already escaped: a rendered template), or "" for nothing.
PanelProvider = Callable[..., str]

_timeline_sources: dict[str, list[TimelineSource]] = defaultdict(list)
_action_providers: dict[str, list[ActionsProvider]] = defaultdict(list)
_panel_providers: dict[str, list[PanelProvider]] = defaultdict(list)


def register_record_panel(model_label: str, provider: PanelProvider, *, first: bool = False) -> None:
    """Add a panel under ``model_label``'s change form (outside it, so it may hold its own forms: files
    dropped onto the page, a note): ``provider(request=, obj=)`` returns rendered HTML. ``first`` puts
    it above the panels registered before and after it (what to do next, above the composer)."""
    providers = _panel_providers[model_label]
    if provider in providers:
        return
    if first:
        providers.insert(0, provider)
    else:
        providers.append(provider)


def record_panels(request, obj) -> list[str]:
    return [
        html
        for provider in _panel_providers[obj._meta.label_lower]
        if (html := provider(request=request, obj=obj))
    ]


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

    def get_key_figures(self, request, obj) -> list[KeyFigure]:
        """The figures the page's header shows (value, probability, owner...); none by default."""
        return []

    def get_stepper(self, request, obj) -> dict | None:
        """The stage stepper of the header (a pipeline record's admin gives one); None: no stepper."""
        return None

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
            stepper = self.get_stepper(request, obj)
            if stepper and stepper.get("media") is not None and "media" in context:
                context["media"] = context["media"] + stepper["media"]
            context.update(
                key_figures=self.get_key_figures(request, obj),
                stepper=stepper,
                record_actions=actions,
                timeline=self.get_timeline(request, obj),
                timeline_sources=bool(_timeline_sources[self.model._meta.label_lower]),
                record_panels=record_panels(request, obj),
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
