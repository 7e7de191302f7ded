"""Saved views and the column chooser on every CRM changelist.

The list's state (the saved view in use, the columns chosen) is kept per list in the session, so it
holds while one filters, sorts and pages; filters, search and sort stay in the query string as Django
keeps them. ``?view=<id>`` opens a view (``?view=`` none), ``?_columns=a&_columns=b`` chooses columns;
both redirect to the plain changelist URL. Opening a list with no query string and no state opens the
user's default view. The page costs one more query for the views, one for the teams to share with and
one for the role, whatever the number of rows.
"""

from django.contrib import messages
from django.contrib.admin.options import IS_POPUP_VAR, TO_FIELD_VAR
from django.contrib.admin.utils import label_for_field
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q
from django.http import HttpResponseRedirect, QueryDict
from django.shortcuts import get_object_or_404
from django.urls import path, reverse

from crm.models import SalesTeam
from crm.saved_views.services import (
    definition_from_query,
    saved_view_create,
    saved_view_delete,
    saved_view_list,
    saved_view_query,
    saved_view_update,
)
from crm.saved_views.specs import PAGE_PARAMETERS
from crm.selectors import user_sees_everything

SESSION_KEY = "crm_list_views"


def _column_name(item) -> str:
    return item if isinstance(item, str) else item.__name__


class SavedViewsMixin:
    """Part of ServiceModelAdmin: every CRM changelist takes saved views and a column chooser."""

    saved_views_enabled = True

    # --- the list's state --------------------------------------------------------------------------

    def _list_key(self) -> str:
        return self.model._meta.label_lower

    def _list_state(self, request) -> dict | None:
        session = getattr(request, "session", None)
        return None if session is None else session.get(SESSION_KEY, {}).get(self._list_key())

    def _set_list_state(self, request, *, view: int | None, columns: list[str] | None) -> None:
        states = dict(request.session.get(SESSION_KEY, {}))
        states[self._list_key()] = {"view": view, "columns": columns or None}
        request.session[SESSION_KEY] = states

    def _base_columns(self, request) -> list[str]:
        return [_column_name(item) for item in super().get_list_display(request)]

    def _valid_columns(self, request, names) -> list[str]:
        base = self._base_columns(request)
        chosen = []
        for name in names:
            if name in base and name not in chosen:
                chosen.append(name)
        return chosen

    # --- columns -----------------------------------------------------------------------------------

    def get_list_display(self, request):
        base = super().get_list_display(request)
        columns = getattr(request, "_crm_columns", None)
        if not columns:
            return base
        by_name = {_column_name(item): item for item in base}
        chosen = [by_name[name] for name in columns if name in by_name]
        if not chosen:
            return base
        # Columns edited in the list stay, or their rows could not be saved.
        chosen += [by_name[name] for name in self.list_editable if by_name.get(name) not in chosen]
        return chosen

    def get_list_display_links(self, request, list_display):
        links = super().get_list_display_links(request, list_display)
        if not getattr(request, "_crm_columns", None) or not links:
            return links
        if not self.list_display_links:
            # The record's link stays on the list's own first column (its name) wherever it is shown.
            links = list(self.list_display[:1])
        names = [_column_name(item) for item in list_display]
        kept = [link for link in links if _column_name(link) in names]
        if kept:
            return kept
        return [item for item in list_display if _column_name(item) not in self.list_editable][:1]

    def _sort_display(self, request, columns: list[str] | None) -> list[str]:
        """The columns as the changelist numbers them in ``?o=`` when ``columns`` are shown."""
        request._crm_columns = columns
        names = [_column_name(item) for item in self.get_list_display(request)]
        return ["action_checkbox", *names] if self.get_actions(request) else names

    # --- the changelist ----------------------------------------------------------------------------

    def changelist_view(self, request, extra_context=None):
        if (
            request.method != "GET"
            or not self.saved_views_enabled
            or IS_POPUP_VAR in request.GET
            or TO_FIELD_VAR in request.GET
            or not self.has_view_or_change_permission(request)
        ):
            return super().changelist_view(request, extra_context)
        views = list(saved_view_list(user=request.user, list_key=self._list_key()))
        state = self._list_state(request)
        if "view" in request.GET:
            return self._open_view(request, views, request.GET["view"])
        if "_columns" in request.GET:
            return self._choose_columns(request, state or {})
        if not request.GET and state is None:
            default = next((v for v in views if v.is_default and v.owner_id == request.user.pk), None)
            if default is not None:
                return self._open_view(request, views, str(default.pk))
        state = state or {}
        request._crm_columns = self._valid_columns(request, state.get("columns") or []) or None
        active = next((view for view in views if view.pk == state.get("view")), None)
        context = dict(extra_context or {})
        context["crm_saved_views"] = self._picker(request, views, active)
        return super().changelist_view(request, context)

    def _changelist_url(self) -> str:
        opts = self.model._meta
        return reverse(f"{self.admin_site.name}:{opts.app_label}_{opts.model_name}_changelist")

    def _redirect(self, query: QueryDict | None = None) -> HttpResponseRedirect:
        encoded = query.urlencode() if query else ""
        return HttpResponseRedirect(self._changelist_url() + (f"?{encoded}" if encoded else ""))

    def _open_view(self, request, views, value: str) -> HttpResponseRedirect:
        view = next((v for v in views if str(v.pk) == value), None) if value else None
        if view is None:
            if value:
                refusal = "That view does not exist or is not shared with you."
                self.message_user(request, refusal, messages.ERROR)
            self._set_list_state(request, view=None, columns=None)
            return self._redirect()
        columns = self._valid_columns(request, view.columns) or None
        self._set_list_state(request, view=view.pk, columns=columns)
        return self._redirect(saved_view_query(view=view, display=self._sort_display(request, columns)))

    def _choose_columns(self, request, state: dict) -> HttpResponseRedirect:
        before = self._valid_columns(request, state.get("columns") or []) or None
        after = self._valid_columns(request, request.GET.getlist("_columns")) or None
        # ?o= numbers the columns shown: renumber the sort for the new columns.
        ordering = definition_from_query(query=request.GET, display=self._sort_display(request, before))[
            "ordering"
        ]
        display = self._sort_display(request, after)
        query = request.GET.copy()
        for name in ("_columns", "o"):
            query.pop(name, None)
        positions = [
            f"{'-' if item.startswith('-') else ''}{display.index(item.removeprefix('-'))}"
            for item in ordering
            if item.removeprefix("-") in display
        ]
        if positions:
            query["o"] = ".".join(positions)
        self._set_list_state(request, view=state.get("view"), columns=after)
        return self._redirect(query)

    def _picker(self, request, views, active) -> dict:
        shown = [_column_name(item) for item in self.get_list_display(request)]
        base = self._base_columns(request)
        columns = [
            {
                "name": name,
                "label": self._column_label(name),
                "shown": name in shown,
                "locked": name in self.list_editable,
            }
            for name in [*[n for n in shown if n in base], *[n for n in base if n not in shown]]
        ]
        kept = QueryDict(mutable=True)
        for name, values in request.GET.lists():
            if name not in PAGE_PARAMETERS or name in ("q", "o"):
                kept.setlist(name, values)
        opts = self.model._meta
        prefix = f"{self.admin_site.name}:{opts.app_label}_{opts.model_name}"
        mine = [view for view in views if view.owner_id == request.user.pk]
        shared = [view for view in views if view.owner_id != request.user.pk]
        can_share_everyone = user_sees_everything(request.user)
        teams = SalesTeam.objects.all()
        if not can_share_everyone:
            teams = teams.filter(Q(manager=request.user) | Q(members=request.user)).distinct()
        return {
            "mine": mine,
            "shared": shared,
            "active": active,
            "active_is_mine": active is not None and active.owner_id == request.user.pk,
            "columns": columns,
            "columns_chosen": bool(getattr(request, "_crm_columns", None)),
            "kept": [(name, value) for name, values in kept.lists() for value in values],
            "query": kept.urlencode(),
            # The teams one may share with (sales_team_visible_to's rule, without asking the role again).
            "teams": list(teams.order_by("name").values("pk", "name")),
            "can_share_everyone": can_share_everyone,
            "save_url": reverse(f"{prefix}_saveview"),
            "update_url": reverse(f"{prefix}_updateview", args=[active.pk]) if active else "",
            "delete_url": reverse(f"{prefix}_deleteview", args=[active.pk]) if active else "",
        }

    def _column_label(self, name: str) -> str:
        if name == "__str__":
            return str(self.model._meta.verbose_name)
        return str(label_for_field(name, self.model, self))

    # --- saving --------------------------------------------------------------------------------------

    def get_urls(self):
        if not self.saved_views_enabled:
            return super().get_urls()
        opts = self.model._meta
        prefix = f"{opts.app_label}_{opts.model_name}"
        wrap = self.admin_site.admin_view
        return [
            path("views/save/", wrap(self.save_view_view), name=f"{prefix}_saveview"),
            path("views/<int:view_id>/update/", wrap(self.update_view_view), name=f"{prefix}_updateview"),
            path("views/<int:view_id>/delete/", wrap(self.delete_view_view), name=f"{prefix}_deleteview"),
            *super().get_urls(),
        ]

    def _posted_definition(self, request) -> dict:
        state = self._list_state(request) or {}
        columns = self._valid_columns(request, state.get("columns") or [])
        query = QueryDict(request.POST.get("query", ""))
        definition = definition_from_query(query=query, display=self._sort_display(request, columns or None))
        return {"list_key": self._list_key(), "columns": columns, **definition}

    def _posted_sharing(self, request) -> dict:
        team_id = request.POST.get("team", "")
        team = SalesTeam.objects.filter(pk=team_id).first() if team_id.isdigit() else None
        return {
            "sharing": request.POST.get("sharing") or "private",
            "team": team,
            "is_default": request.POST.get("is_default") == "on",
        }

    def _refused(self, request, exc: ValidationError) -> HttpResponseRedirect:
        if hasattr(exc, "error_dict"):
            for field, errors in exc.message_dict.items():
                for message in errors:
                    self.message_user(request, f"View not saved: {field}: {message}", messages.ERROR)
        else:
            self.message_user(request, "View not saved: " + " ".join(exc.messages), messages.ERROR)
        return self._redirect(QueryDict(request.POST.get("query", "")))

    def _require_post(self, request):
        if request.method != "POST" or not self.has_view_or_change_permission(request):
            raise PermissionDenied

    def save_view_view(self, request):
        self._require_post(request)
        data = {
            **self._posted_definition(request),
            **self._posted_sharing(request),
            "name": request.POST.get("name", "").strip(),
        }
        try:
            view = saved_view_create(user=request.user, data=data)
        except ValidationError as exc:
            return self._refused(request, exc)
        self.message_user(request, f"View “{view.name}” saved.", messages.SUCCESS)
        return self._redirect(QueryDict(f"view={view.pk}"))

    def _own_view(self, request, view_id: int):
        return get_object_or_404(saved_view_list(user=request.user, list_key=self._list_key()), pk=view_id)

    def update_view_view(self, request, view_id: int):
        self._require_post(request)
        view = self._own_view(request, view_id)
        try:
            data = self._posted_definition(request)
            view = saved_view_update(saved_view=view, user=request.user, data=data)
        except PermissionDenied as exc:
            return self._refused(request, ValidationError(str(exc)))
        except ValidationError as exc:
            return self._refused(request, exc)
        self.message_user(request, f"View “{view.name}” updated.", messages.SUCCESS)
        return self._redirect(QueryDict(f"view={view.pk}"))

    def delete_view_view(self, request, view_id: int):
        self._require_post(request)
        view = self._own_view(request, view_id)
        try:
            saved_view_delete(saved_view=view, user=request.user)
        except PermissionDenied as exc:
            return self._refused(request, ValidationError(str(exc)))
        self.message_user(request, f"View “{view.name}” deleted.", messages.SUCCESS)
        return self._redirect(QueryDict("view="))
