"""“Add the selected to a static segment” and “… to a campaign”: bulk actions of the leads, contacts
and accounts lists."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError

from crm.admin.bulk import BulkActionsMixin
from crm.marketing import services
from crm.models import Campaign, Segment, SegmentKind


class SegmentChoiceForm(forms.Form):
    segment = forms.ModelChoiceField(queryset=Segment.objects.none())

    def __init__(self, *args, entity: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["segment"].queryset = Segment.objects.filter(entity=entity, kind=SegmentKind.STATIC)


class CampaignChoiceForm(forms.Form):
    campaign = forms.ModelChoiceField(queryset=Campaign.objects.order_by("name"))


def _report(modeladmin, request, call, done: str) -> None:
    try:
        count = call()
    except (ValidationError, PermissionDenied) as exc:
        text = " ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
        modeladmin.message_user(request, text, messages.ERROR)
        return
    modeladmin.message_user(request, done.format(count=count), messages.SUCCESS)


class AddToSegmentMixin:
    @admin.action(description="Add the selected to a static segment", permissions=["view"])
    def add_to_segment(self, request, queryset):
        if not request.user.has_perm("crm.change_segment"):
            raise PermissionDenied
        entity = self.model._meta.model_name
        form, page = BulkActionsMixin._bulk_form(
            self,
            request,
            queryset,
            SegmentChoiceForm,
            title="Add to a static segment",
            action="add_to_segment",
            apply_label="Add",
            entity=entity,
        )
        if page is not None:
            return page
        segment = form.cleaned_data["segment"]
        ids = list(queryset.values_list("pk", flat=True))

        def add():
            services.segment_members_change(segment=segment, user=request.user, add=ids)
            return len(ids)

        _report(self, request, add, f"{{count}} added to the segment “{segment}”.")
        return None


class AddToCampaignMixin:
    @admin.action(description="Add the selected to a campaign", permissions=["view"])
    def add_to_campaign(self, request, queryset):
        if not request.user.has_perm("crm.add_campaignmember"):
            raise PermissionDenied
        form, page = BulkActionsMixin._bulk_form(
            self,
            request,
            queryset,
            CampaignChoiceForm,
            title="Add to a campaign",
            action="add_to_campaign",
            apply_label="Add",
        )
        if page is not None:
            return page
        campaign = form.cleaned_data["campaign"]
        ids = list(queryset.values_list("pk", flat=True))
        key = "lead_ids" if self.model._meta.model_name == "lead" else "contact_ids"
        _report(
            self,
            request,
            lambda: services.campaign_members_add(campaign=campaign, user=request.user, **{key: ids}),
            f"{{count}} joined the campaign “{campaign}” (members already are left as they are).",
        )
        return None
