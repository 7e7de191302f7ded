"""Duplicates in the admin: "possible duplicates" on a record's page, a warning when a new record
looks like others, and a report of the records that share an email or a phone, per kind."""

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.db.models.functions import Lower
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from crm.admin_utils import with_changelist_tool
from crm.duplicates import MIN_PHONE_DIGITS, RULES, digits_expression, find_duplicates, phone_digits

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
                .annotate(_key=digits_expression(phone_field))
                .values("_key")
                .annotate(n=Count("pk"))
                .filter(n__gt=1)
                .order_by("-n", "_key")[:REPORT_GROUPS]
            )
            keys = [row["_key"] for row in shared if len(phone_digits(row["_key"])) >= MIN_PHONE_DIGITS]
            if keys:
                members = (
                    scope.annotate(_key=digits_expression(phone_field)).filter(_key__in=keys).order_by("pk")
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
