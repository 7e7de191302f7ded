"""The opportunity admin's own pages: the forecast, and winning a deal from its page."""

from django import forms
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.http import urlencode

from crm.admin_convert import DateInput
from crm.admin_utils import money, with_changelist_tool
from crm.models import Pipeline
from sales import selectors, services

GROUP_BY_LABELS = {"month": "Month", "quarter": "Quarter", "stage": "Stage", "owner": "Owner"}
# (figure, legend, stylesheet class) of the forecast chart's bars.
FORECAST_SERIES = (
    ("amount", "Open", "series-open"),
    ("weighted_amount", "Weighted", "series-weighted"),
    ("won_amount", "Won", "series-won"),
)


class OwnerChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj) -> str:
        return obj.get_full_name() or obj.get_username()


class ForecastForm(forms.Form):
    pipeline = forms.ModelChoiceField(
        queryset=Pipeline.objects.filter(is_active=True), required=False, empty_label="All pipelines"
    )
    owner = OwnerChoiceField(queryset=get_user_model().objects.none(), required=False, empty_label="Everyone")
    date_from = forms.DateField(label="Closing from", required=False, widget=DateInput)
    date_to = forms.DateField(label="to", required=False, widget=DateInput)
    group_by = forms.ChoiceField(
        choices=list(GROUP_BY_LABELS.items()), required=False, widget=forms.HiddenInput
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        user_model = get_user_model()
        self.fields["owner"].queryset = user_model.objects.filter(is_active=True).order_by(
            user_model.USERNAME_FIELD
        )

    def clean(self):
        data = super().clean()
        start, end = data.get("date_from"), data.get("date_to")
        if start and end and start > end:
            self.add_error("date_to", "The end of the period comes before its start.")
        return data


class OpportunityPagesMixin:
    """``forecast/`` and ``<id>/mark-won/`` on the opportunity admin."""

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("forecast/", wrap(self.forecast_view), name="sales_opportunity_forecast"),
            path("<path:object_id>/mark-won/", wrap(self.mark_won_view), name="sales_opportunity_mark_won"),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        forecast_url = reverse("admin:sales_opportunity_forecast")
        return super().changelist_view(request, with_changelist_tool(extra_context, "Forecast", forecast_url))

    def forecast_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        form = ForecastForm(request.GET or None)
        options = {}
        if form.is_bound:
            # Whatever is valid applies; a bad field is shown with its error and ignored.
            form.is_valid()
            options = form.cleaned_data
        group_by = options.get("group_by") or "month"
        result = selectors.forecast(
            user=request.user,
            pipeline=options.get("pipeline"),
            owner=options.get("owner"),
            date_from=options.get("date_from"),
            date_to=options.get("date_to"),
            group_by=group_by,
        )
        query = {key: value for key, value in request.GET.items() if key != "group_by" and value}
        group_links = [
            {"value": value, "label": label, "url": "?" + urlencode({**query, "group_by": value})}
            for value, label in GROUP_BY_LABELS.items()
        ]
        context = {
            **self.admin_site.each_context(request),
            "title": "Forecast",
            "opts": self.opts,
            "form": form,
            "forecast": result,
            "group_by": group_by,
            "group_label": GROUP_BY_LABELS[group_by],
            "group_links": group_links,
            "series": FORECAST_SERIES,
            "changelist_url": self.kanban_url("changelist"),
            "board_url": self.kanban_url("board"),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/sales/opportunity/forecast.html", context)

    def mark_won_view(self, request, object_id):
        """GET asks for confirmation; POST wins the deal through the service."""
        opportunity = self.get_record_or_404(request, object_id)
        if request.method == "POST":
            try:
                opportunity = services.opportunity_mark_won(opportunity=opportunity, user=request.user)
            except ValidationError as exc:
                self.message_user(request, " ".join(exc.messages), messages.ERROR)
            else:
                self.log_change(request, opportunity, "Marked won.")
                self.message_user(
                    request, f"“{opportunity}” is won: {money(opportunity.amount)} closed.", messages.SUCCESS
                )
            return HttpResponseRedirect(self.record_url(opportunity))
        context = self.page_context(
            request, opportunity, "Mark opportunity won", closed=opportunity.is_closed
        )
        return TemplateResponse(request, "admin/sales/opportunity/mark_won.html", context)
