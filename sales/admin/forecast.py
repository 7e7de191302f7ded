"""The forecast page of the opportunity admin: open, weighted and won amounts by period, stage or owner."""

from django import forms
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.http import urlencode

from crm.admin.base import DateInput, with_changelist_tool
from crm.models import Pipeline
from sales import selectors

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


class ForecastAdminMixin:
    """``forecast/`` on the opportunity admin, and its button on the changelist."""

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("forecast/", wrap(self.forecast_view), name="sales_opportunity_forecast"),
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
