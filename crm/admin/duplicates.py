"""Duplicates in the admin: "possible duplicates" on a record's page, a warning when a new record
looks like others, a report of the records that share an email or a phone, per kind, and the merge
action that resolves them."""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count
from django.db.models.functions import Lower
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from crm.admin.base import with_changelist_tool
from crm.duplicates import MIN_PHONE_DIGITS, RULES, find_duplicates, phone_digits
from crm.merging import merge_check, merge_ensure_allowed, merge_plan, merge_survivor, record_merge
from crm.models.base import phone_digits_expression

REPORT_GROUPS = 100


class DuplicatesAdminMixin:
    """For a lead, contact or account ModelAdmin with RecordPageMixin."""

    def _match_links(self, matches):
        return format_html_join(
            "; ",
            '<a href="{}">{}</a> ({})',
            ((self.record_url(m.record), str(m.record), ", ".join(m.reasons)) for m in matches),
        )

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and obj.pk:
            context["possible_duplicates"] = [
                {"record": m.record, "url": self.record_url(m.record), "reasons": m.reasons}
                for m in find_duplicates(obj, queryset=self.get_queryset(request))
            ]
        return super().render_change_form(request, context, add, change, form_url, obj)

    def response_add(self, request, obj, post_url_continue=None):
        matches = find_duplicates(obj, queryset=self.get_queryset(request))
        if matches:
            self.message_user(
                request,
                format_html("Possible duplicates of “{}”: {}", str(obj), self._match_links(matches)),
                messages.WARNING,
            )
        return super().response_add(request, obj, post_url_continue)

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "duplicates/",
                self.admin_site.admin_view(self.duplicates_report_view),
                name="{}_{}_duplicates".format(*info),
            ),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        url = reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_duplicates")
        return super().changelist_view(request, with_changelist_tool(extra_context, "Duplicates", url))

    def duplicates_report_view(self, request):
        """Groups of records sharing an email (any case) or phone digits; the largest groups first."""
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        rules = RULES[self.model]
        scope = self.get_queryset(request)
        groups = []
        if rules.email:
            shared = (
                scope.exclude(**{rules.email: ""})
                .annotate(_key=Lower(rules.email))
                .values("_key")
                .annotate(n=Count("pk"))
                .filter(n__gt=1)
                .order_by("-n", "_key")[:REPORT_GROUPS]
            )
            keys = [row["_key"] for row in shared]
            if keys:
                members = scope.annotate(_key=Lower(rules.email)).filter(_key__in=keys).order_by("pk")
                groups += self._groups("same email", keys, members, lambda r: r._key)
        for phone_field in rules.phones:
            shared = (
                scope.exclude(**{phone_field: ""})
                .annotate(_key=phone_digits_expression(phone_field))
                .values("_key")
                .annotate(n=Count("pk"))
                .filter(n__gt=1)
                .order_by("-n", "_key")[:REPORT_GROUPS]
            )
            keys = [row["_key"] for row in shared if len(phone_digits(row["_key"])) >= MIN_PHONE_DIGITS]
            if keys:
                members = (
                    scope.annotate(_key=phone_digits_expression(phone_field))
                    .filter(_key__in=keys)
                    .order_by("pk")
                )
                groups += self._groups(f"same {phone_field}", keys, members, lambda r: r._key)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Possible duplicate {self.opts.verbose_name_plural}",
            "opts": self.opts,
            "groups": groups,
        }
        return TemplateResponse(request, "admin/crm/duplicates_report.html", context)

    def _groups(self, reason, keys, members, key_of):
        by_key = {key: [] for key in keys}
        for record in members:
            by_key.setdefault(key_of(record), []).append({"record": record, "url": self.record_url(record)})
        return [
            {"reason": reason, "key": key, "records": records}
            for key, records in by_key.items()
            if len(records) > 1
        ]


class MergeForm(forms.Form):
    survivor = forms.TypedChoiceField(coerce=int, widget=forms.RadioSelect, label="Keep")

    def __init__(self, *args, records, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["survivor"].choices = [
            (r.pk, f"{r} (#{r.pk}, added {r.created_at:%d %b %Y})") for r in records
        ]


class MergeAdminMixin:
    """The "Merge the selected" action: a confirmation page with the survivor to keep and what will
    move, then ``record_merge``; the message says what it did."""

    def has_merge_permission(self, request) -> bool:
        # Merging changes the survivor and deletes the others: both permissions, as the API's merge
        # asks (an action's ``permissions`` list is satisfied by any one of them).
        return self.has_change_permission(request) and self.has_delete_permission(request)

    @admin.action(description="Merge the selected (2–5) into one", permissions=["merge"])
    def merge_selected(self, request, queryset):
        records = list(queryset.order_by("created_at", "pk"))
        try:
            merge_check(records)
            merge_ensure_allowed(user=request.user, records=records)
        except ValidationError as exc:
            self.message_user(request, " ".join(exc.messages), messages.ERROR)
            return None
        except PermissionDenied as exc:
            self.message_user(request, f"{exc} Nothing was merged.", messages.ERROR)
            return None
        oldest = merge_survivor(records)
        form = MergeForm(
            request.POST if "apply" in request.POST else None,
            records=records,
            initial={"survivor": oldest.pk},
        )
        if form.is_valid():
            survivor = next(r for r in records if r.pk == form.cleaned_data["survivor"])
            try:
                plan = record_merge(records=records, survivor=survivor, user=request.user)
            except ValidationError as exc:
                form.add_error(None, exc.messages)
            except PermissionDenied as exc:  # the right to change them was lost since the selection
                self.message_user(request, f"{exc} Nothing was merged.", messages.ERROR)
                return None
            else:
                self.log_change(
                    request, plan.survivor, f"Merged {', '.join(str(r) for r in plan.others)} into it."
                )
                moved = ", ".join(f"{count} {what}" for what, count in plan.moved.items()) or "nothing"
                filled = ", ".join(sorted(plan.filled)) or "none"
                self.message_user(
                    request,
                    f"Merged {len(plan.others)} {self.opts.verbose_name_plural} into “{plan.survivor}”: "
                    f"moved {moved}; filled {filled}.",
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(self.record_url(plan.survivor))
        chosen = form.data.get("survivor") if form.is_bound else oldest.pk
        survivor = next((r for r in records if str(r.pk) == str(chosen)), oldest)
        try:
            plan = merge_plan(records, survivor)
        except ValidationError as exc:
            form.add_error(None, exc.messages)
            plan = None
        context = {
            **self.admin_site.each_context(request),
            "title": f"Merge {self.opts.verbose_name_plural}",
            "opts": self.opts,
            "form": form,
            "plan": plan,
            "records": records,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/crm/merge_confirm.html", context)
