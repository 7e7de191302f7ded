"""A record admin's transitions (convert, mark won, mark lost, reopen), each declared once.

A ``Transition`` says what the admin needs to offer it: its label, the form that gathers its choices
(or none: a confirmation page), the service call, who may run it and which records it applies to.
``register_transition("crm.lead", transition)`` adds it to a model's admin, from any app (sales
registers lead conversion, so crm does not import sales). ``TransitionsMixin`` gives every registered
transition the same URL (``<id>/<slug>/``, named ``admin:<app>_<model>_<name>``), a button on the
record's page and one page, ``admin/crm/transition.html`` unless the transition names its own.

The page only gathers the choices: the service decides, and its refusal comes back onto the form (or,
for a confirmation, as a message) with nothing changed.
"""

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Model
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.html import format_html

from crm.admin.record import RecordAction, RecordPageMixin, apply_service_errors
from crm.models import LostReason

FormFactory = Callable[..., forms.Form]


@dataclass(frozen=True)
class Transition:
    """One state change of a record, as the admin offers it.

    ``run(record=, user=, **choices)`` calls the service and returns the record after it; the choices
    are the form's ``service_kwargs()`` when it has one, else its ``cleaned_data``.
    ``make_form(data, record=, admin_site=)`` builds the form; None asks for a confirmation only,
    and the button then posts directly.
    """

    name: str
    label: str
    run: Callable[..., Model]
    applies: Callable[[Model], bool]
    make_form: FormFactory | None = None
    # Whether this user may run it on this record, beyond the admin's change permission.
    permitted: Callable[[Any, Model], bool] = lambda user, record: True
    # The page's title; None is the label.
    title: Callable[[Model], str] | None = None
    # The page's first paragraph (HTML made with format_html).
    intro: Callable[[Model], str] = lambda record: ""
    # What the page says when the record is not in a state the transition applies to.
    refusal: Callable[[Model], str] = lambda record: ""
    # A record it does not apply to goes back to its page (with the refusal as a message) instead.
    refused_redirects: bool = False
    log_message: Callable[[Model], str] = lambda record: ""
    success_message: Callable[[Model], str] = lambda record: f"“{record}” is changed."
    # Where a success goes: ``done_url(admin, record, form)``; None is the record's page.
    done_url: Callable[..., str] | None = None
    # A page about the outcome, at ``<id>/<slug>/done/`` named ``done_name`` (default ``<name>_done``),
    # linked from the record's page as ``done_label`` when ``done_shown(record)``.
    done_view: Callable[..., Any] | None = None
    done_name: str = ""
    done_label: str = ""
    done_shown: Callable[[Model], bool] = lambda record: False
    # Extra context for the page, from the form.
    page_context: Callable[[forms.Form], dict] = lambda form: {}
    template: str = "admin/crm/transition.html"
    css_class: str = ""
    # Buttons are ordered by position, then by registration.
    position: int = 100

    @property
    def slug(self) -> str:
        return self.name.replace("_", "-")

    @property
    def done_url_name(self) -> str:
        return self.done_name or f"{self.name}_done"


_transitions: dict[str, list[Transition]] = defaultdict(list)


def register_transition(model_label: str, transition: Transition) -> None:
    """Offer ``transition`` on the admin of ``model_label`` ("crm.lead"); a second one of the same
    name replaces the first."""
    registered = _transitions[model_label]
    registered[:] = [known for known in registered if known.name != transition.name]
    registered.append(transition)
    registered.sort(key=lambda known: known.position)


def transitions_of(model_label: str) -> list[Transition]:
    return list(_transitions[model_label])


class TransitionsMixin(RecordPageMixin):
    """The URLs, buttons and pages of the transitions registered for the admin's model."""

    def get_transitions(self) -> list[Transition]:
        return transitions_of(self.model._meta.label_lower)

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        wrap = self.admin_site.admin_view
        urls = []
        for transition in self.get_transitions():
            view = self._transition_view(transition)
            urls.append(
                path(
                    f"<path:object_id>/{transition.slug}/",
                    wrap(view),
                    name="{}_{}_".format(*info) + transition.name,
                )
            )
            if transition.done_view is not None:
                done = self._transition_done_view(transition)
                name = "{}_{}_".format(*info) + transition.done_url_name
                urls.append(path(f"<path:object_id>/{transition.slug}/done/", wrap(done), name=name))
        return [*urls, *super().get_urls()]

    def may_run(self, request, transition: Transition, obj) -> bool:
        return self.has_change_permission(request, obj) and transition.permitted(request.user, obj)

    def get_record_actions(self, request, obj):
        actions = super().get_record_actions(request, obj)
        for transition in self.get_transitions():
            if transition.applies(obj):
                if self.may_run(request, transition, obj):
                    method = "get" if transition.make_form else "post"
                    url = self.record_url(obj, transition.name)
                    actions.append(
                        RecordAction(transition.label, url, method=method, css_class=transition.css_class)
                    )
            elif transition.done_view is not None and transition.done_shown(obj):
                url = self.record_url(obj, transition.done_url_name)
                actions.append(RecordAction(transition.done_label, url))
        return actions

    def _transition_view(self, transition: Transition):
        def view(request, object_id):
            return self.transition_view(request, object_id, transition)

        return view

    def _transition_done_view(self, transition: Transition):
        def view(request, object_id):
            obj = self.get_record_or_404(request, object_id, change=False)
            return transition.done_view(self, request, obj)

        return view

    def transition_view(self, request, object_id, transition: Transition):
        obj = self.get_record_or_404(request, object_id)
        if not transition.permitted(request.user, obj):
            raise PermissionDenied
        applies = transition.applies(obj)
        if not applies and transition.refused_redirects:
            self.message_user(request, transition.refusal(obj), messages.WARNING)
            return HttpResponseRedirect(self.record_url(obj))
        posted = request.method == "POST"
        form = None
        if transition.make_form is not None:
            form = transition.make_form(
                request.POST if posted else None, record=obj, admin_site=self.admin_site
            )
        if posted and (form is None or form.is_valid()):
            try:
                record = transition.run(record=obj, user=request.user, **self._choices(form))
            except ValidationError as exc:
                if form is None:
                    self.message_user(request, " ".join(exc.messages), messages.ERROR)
                    return HttpResponseRedirect(self.record_url(obj))
                apply_service_errors(form, exc, getattr(form, "service_fields", None))
            else:
                self.log_change(request, record, transition.log_message(record))
                self.message_user(request, transition.success_message(record), messages.SUCCESS)
                if transition.done_url is not None:
                    return HttpResponseRedirect(transition.done_url(self, record, form))
                return HttpResponseRedirect(self.record_url(record))
        media = self.media + form.media if form is not None else self.media
        context = self.page_context(
            request,
            obj,
            transition.title(obj) if transition.title else transition.label,
            form=form,
            media=media,
            transition=transition,
            applies=applies,
            intro=transition.intro(obj),
            refusal="" if applies else transition.refusal(obj),
            **(transition.page_context(form) if form is not None else {}),
        )
        return TemplateResponse(request, transition.template, context)

    @staticmethod
    def _choices(form) -> dict:
        if form is None:
            return {}
        if hasattr(form, "service_kwargs"):
            return form.service_kwargs()
        return dict(form.cleaned_data)


# --- the transitions leads and opportunities share ------------------------------------------------------


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


def _status(record) -> str:
    return record.get_status_display().lower()


def mark_lost_transition(run: Callable[..., Model]) -> Transition:
    """A reason and a note, then ``run(record=, user=, lost_reason=, lost_note=)`` (the app's service)."""

    def succeeded(record) -> str:
        reason = f" ({record.lost_reason})" if record.lost_reason_id else ""
        return f"“{record}” is marked lost{reason}."

    return Transition(
        name="mark_lost",
        label="Mark lost",
        run=run,
        applies=lambda record: not record.is_closed,
        make_form=lambda data, **_: MarkLostForm(data),
        title=lambda record: f"Mark {record._meta.verbose_name} lost",
        intro=lambda record: format_html(
            "Close <strong>{}</strong> as lost. It moves to its pipeline's lost stage and no longer counts "
            "in the open pipeline.",
            record,
        ),
        refusal=lambda record: (
            f"This {record._meta.verbose_name} is already {_status(record)}: it cannot be lost again."
        ),
        log_message=lambda record: "Marked lost.",
        success_message=succeeded,
        css_class="crm-tool-lost",
        position=20,
    )


def reopen_transition(run: Callable[..., Model], *, statuses: tuple[str, ...]) -> Transition:
    """An open stage (or where it last was), then ``run(record=, user=, stage=)`` (the app's service)."""
    return Transition(
        name="reopen",
        label="Reopen",
        run=run,
        applies=lambda record: record.status in statuses,
        make_form=lambda data, *, record, **_: ReopenForm(data, record=record),
        title=lambda record: f"Reopen {record._meta.verbose_name}",
        intro=lambda record: format_html(
            "Reopen <strong>{}</strong>: it becomes open again in the stage you choose, takes that stage's "
            "probability and loses its closing date and lost reason.",
            record,
        ),
        refusal=lambda record: (
            f"This {record._meta.verbose_name} is {_status(record)}: only a lost lead, or a won or lost "
            "opportunity, can be reopened."
        ),
        log_message=lambda record: f"Reopened in {record.stage.name}.",
        success_message=lambda record: f"“{record}” is open again, in {record.stage.name}.",
        css_class="crm-tool-reopen",
        position=90,
    )


__all__ = [
    "MarkLostForm",
    "ReopenForm",
    "Transition",
    "TransitionsMixin",
    "mark_lost_transition",
    "register_transition",
    "reopen_transition",
    "transitions_of",
]
